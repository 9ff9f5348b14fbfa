// Pack and sign the shipped drivers (npm run build:packages): build/packages/<name>.wdrv.
// The signing key is a development key generated on first use into .keys/ (gitignored: a private key
// is never committed); its public half goes into .keys/trust/, the trust store the tests and the demo use.
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// The same packDriver as `wasmdrv pack` (host/package/pack.ts), from the built host.
const { generateKeys, packDriver, parseManifest } = await import(join(root, 'dist', 'index.js'));
const keyFile = join(root, '.keys', 'dev.key');
const trustDir = join(root, '.keys', 'trust');
if (!existsSync(keyFile)) {
  const k = generateKeys();
  mkdirSync(trustDir, { recursive: true });
  writeFileSync(keyFile, k.privatePem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(join(trustDir, 'dev.pub'), k.publicPem);
  console.log(`build:packages: new development key ${k.id} in .keys/`);
}
const key = readFileSync(keyFile, 'utf8');

mkdirSync(join(root, 'build', 'packages'), { recursive: true });
// [package, manifest]: the C and Rust edu drivers ship under the edu manifest, renamed.
for (const [name, of] of [
  ['edu', 'edu'],
  ['uart16550', 'uart16550'],
  ['e1000', 'e1000'],
  ['edu-c', 'edu'],
  ['edu-rust', 'edu'],
]) {
  const manifestPath = join(root, 'guest-drivers', of, 'manifest.json');
  const manifest = { ...parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath), name };
  const wasmPath = join(root, 'build', 'drivers', `${name}.wasm`);
  const pkg = packDriver(new Uint8Array(readFileSync(wasmPath)), manifest, key, wasmPath);
  writeFileSync(join(root, 'build', 'packages', `${name}.wdrv`), pkg);
  console.log(`build:packages: ${name} -> build/packages/${name}.wdrv`);
}
