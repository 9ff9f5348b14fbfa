// wasmdrv keygen | pack | sign | verify | inspect — driver packages (host/package/).
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ABI_VERSION } from '../abi.ts';
import { packageRoot } from '../native.ts';
import { defaultTrustDir, readPackage, refusalFor } from '../package/load.ts';
import { describeGrant, grantFor, matches, parseManifest } from '../package/manifest.ts';
import { appendSection, generateKeys, MANIFEST_SECTION, signPackage, stripSection } from '../package/sign.ts';
import { isOpenSource } from '../package/licenses.ts';
import { checkModule } from '../sandbox/instance.ts';
import { DEFAULT_LIMITS } from '../sandbox/instance.ts';
import { readWasm } from '../wasm.ts';
import { Host } from '../host.ts';
import { describeConfinement, manifestConfinement } from '../devices/confinement.ts';

function read(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new Error(`${path}: cannot read: ${(err as Error).message}`);
  }
}

export async function cmdKeygen(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { out: { type: 'string', default: '.' }, name: { type: 'string', default: 'wasmdrv' } } });
  const k = generateKeys();
  mkdirSync(values.out!, { recursive: true });
  const keyFile = join(values.out!, `${values.name}.key`);
  const pubFile = join(values.out!, `${values.name}.pub`);
  if (existsSync(keyFile)) throw new Error(`${keyFile} exists: refusing to overwrite a private key`);
  writeFileSync(keyFile, k.privatePem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(pubFile, k.publicPem);
  console.log(`key ${k.id}: private ${keyFile} (keep it secret), public ${pubFile} (put it in a trust store)`);
  return 0;
}

/** The asconfig.json target whose entry lives in `dir`: its outFile is the driver's .wasm. */
function wasmFor(dir: string): string | undefined {
  const root = packageRoot();
  try {
    const cfg = JSON.parse(readFileSync(join(root, 'asconfig.json'), 'utf8'));
    for (const t of Object.values(cfg.targets as Record<string, { entry: string; outFile: string }>)) {
      if (resolve(root, dirname(t.entry)) === resolve(dir)) return resolve(root, t.outFile);
    }
  } catch {
    /* no asconfig */
  }
  return undefined;
}

export async function cmdPack(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { wasm: { type: 'string' }, out: { type: 'string' }, key: { type: 'string' } } });
  if (positionals.length !== 1) throw new Error('pack wants one directory holding manifest.json');
  const dir = positionals[0];
  const manifestPath = join(dir, 'manifest.json');
  const manifestText = readFileSync(manifestPath, 'utf8');
  const m = parseManifest(manifestText, manifestPath);
  const wasm = values.wasm ?? wasmFor(dir);
  if (!wasm) throw new Error(`${dir}: no --wasm given and no asconfig.json target builds from this directory`);
  let bytes = stripSection(stripSection(read(wasm), MANIFEST_SECTION), 'wasmdrv.signature');
  try {
    readWasm(bytes);
  } catch (err) {
    throw new Error(`${wasm}: not a valid Wasm module: ${(err as Error).message}`);
  }
  bytes = appendSection(bytes, MANIFEST_SECTION, new TextEncoder().encode(JSON.stringify(m)));
  if (values.key) bytes = signPackage(bytes, readFileSync(values.key, 'utf8'));
  const out = values.out ?? `${m.name}-${m.version}.wdrv`;
  mkdirSync(dirname(resolve(out)), { recursive: true });
  writeFileSync(out, bytes);
  console.log(`packed ${m.name} ${m.version} from ${wasm} into ${out} (${bytes.length} bytes${values.key ? ', signed' : ', unsigned'})`);
  return 0;
}

export async function cmdSign(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { key: { type: 'string' }, out: { type: 'string' } } });
  if (positionals.length !== 1 || !values.key) throw new Error('sign wants a package and --key FILE');
  const signed = signPackage(read(positionals[0]), readFileSync(values.key, 'utf8'));
  writeFileSync(values.out ?? positionals[0], signed);
  console.log(`signed ${values.out ?? positionals[0]}`);
  return 0;
}

/** verify: signature, manifest, ABI, imports against the grant, and (with --device) the device. */
export async function cmdVerify(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { trust: { type: 'string' }, device: { type: 'string' }, 'allow-unsigned': { type: 'boolean' } } });
  if (positionals.length !== 1) throw new Error('verify wants one package');
  const where = positionals[0];
  const pkg = readPackage(read(where), where, values.trust ?? defaultTrustDir());
  const problems: string[] = [];
  const refusal = refusalFor(pkg.signature, where, values['allow-unsigned'] ?? false);
  if (refusal) problems.push(refusal);
  if (pkg.manifest.abi !== ABI_VERSION) problems.push(`${where}: built for ABI v${pkg.manifest.abi}, this host speaks v${ABI_VERSION}`);
  if (values.device) {
    const host = new Host();
    try {
      const dev = host.openDevice(values.device);
      if (!matches(pkg.manifest, dev.spec)) problems.push(`${where}: ${pkg.manifest.name} does not drive device ${dev.spec.id}`);
      else {
        const g = grantFor(pkg.manifest, dev.spec, where);
        checkModule(pkg.bytes, { regions: dev.spec.regions, ports: dev.spec.ports, dmaCount: dev.spec.dma.length, hasIrq: !!dev.spec.irq }, g.grant, { ...DEFAULT_LIMITS, ...g.limits }, where);
      }
    } catch (err) {
      problems.push((err as Error).message);
    } finally {
      await host.close();
    }
  }
  for (const p of problems) console.error(`verify: ${p}`);
  if (!problems.length) console.log(`${where}: ${pkg.manifest.name} ${pkg.manifest.version}: signature ${pkg.signature.status}${pkg.signature.status === 'valid' ? ` (key ${pkg.signature.key})` : ''}, manifest valid${values.device ? `, fits ${values.device}` : ''}`);
  return problems.length ? 1 : 0;
}

export async function cmdInspect(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { trust: { type: 'string' }, json: { type: 'boolean' } } });
  if (positionals.length !== 1) throw new Error('inspect wants one package');
  const bytes = read(positionals[0]);
  const pkg = readPackage(bytes, positionals[0], values.trust ?? defaultTrustDir());
  const info = readWasm(bytes);
  const m = pkg.manifest;
  const out = {
    name: m.name, version: m.version, license: m.license, openSource: isOpenSource(m.license), abi: m.abi, description: m.description,
    match: m.match, size: bytes.length, signature: pkg.signature,
    imports: info.imports.map((i) => `${i.module}.${i.name}`), exports: info.exports.map((e) => e.name),
    grants: describeGrant(m), limits: { ...DEFAULT_LIMITS, ...m.limits }, dmaConfinement: manifestConfinement(m),
  };
  if (values.json) {
    console.log(JSON.stringify(out));
    return 0;
  }
  console.log(`${m.name} ${m.version} — ${m.description ?? ''}`);
  console.log(`  license    ${m.license}${out.openSource ? '' : ' (not open source: loading it taints the host)'}`);
  console.log(`  ABI        v${m.abi}`);
  console.log(`  size       ${bytes.length} bytes (${basename(positionals[0])})`);
  console.log(`  signature  ${pkg.signature.status}${'key' in pkg.signature ? ` (key ${pkg.signature.key})` : ''}`);
  console.log(`  drives     ${m.match.map((x) => (x.pci ? `pci ${x.pci.vendor}:${x.pci.device}` : x.uio ? `uio "${x.uio}"` : `sim:${x.sim}`)).join(', ')}`);
  console.log(`  imports    ${out.imports.join(' ')}`);
  console.log(`  exports    ${out.exports.join(' ')}`);
  console.log('  grants');
  for (const g of out.grants) console.log(`    ${g}`);
  console.log(`  limits     ${Object.entries(out.limits).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`  DMA        on vfio devices ${describeConfinement(out.dmaConfinement.vfio)}; on uio (PCI) devices ${describeConfinement(out.dmaConfinement.uio)}${out.dmaConfinement.uio === 'none' ? ' (refused unless --allow-unconfined-dma ' + m.name + ')' : ''}`);
  return 0;
}
