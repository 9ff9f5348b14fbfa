// Build every driver target in asconfig.json with asc (npm run build:drivers).
// A target is rebuilt when its output is older than asconfig.json, the SDK, or any file in the
// entry's directory. Pass --force to rebuild everything.
import asc from 'assemblyscript/asc';
import { buildCRustDrivers, TARGETS as C_RUST_TARGETS } from './build-c-rust-drivers.mjs';
import { readFileSync, readdirSync, statSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
process.chdir(root);
const config = JSON.parse(readFileSync('asconfig.json', 'utf8'));
const force = process.argv.includes('--force');
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));

function newestIn(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestIn(p) : statSync(p).mtimeMs);
  }
  return t;
}

// Every driver may import from any other (test fixtures re-export the edu driver): any change under
// guest-drivers/ rebuilds them all.
const sdkTime = Math.max(newestIn('guest-drivers'), statSync('asconfig.json').mtimeMs);
let failed = 0;
for (const [name, target] of Object.entries(config.targets)) {
  if (only.length && !only.includes(name)) continue;
  const out = target.outFile;
  const inputs = Math.max(sdkTime, newestIn(dirname(target.entry)));
  if (!force && existsSync(out) && statSync(out).mtimeMs > inputs) continue;
  mkdirSync(dirname(out), { recursive: true });
  const { error, stderr } = await asc.main([target.entry, '--config', 'asconfig.json', '--target', name]);
  if (error) {
    failed++;
    console.error(`build:drivers: ${name} (${target.entry}) failed:\n${stderr.toString()}`);
  } else {
    console.log(`build:drivers: ${name} -> ${out}`);
  }
}
// The C and Rust drivers (guest-drivers/edu-c, guest-drivers/edu-rust), built with clang and rustc.
const cRust = C_RUST_TARGETS.map((t) => t.name).filter((n) => !only.length || only.includes(n));
if (cRust.length) failed += await buildCRustDrivers({ force, only: cRust });
process.exit(failed ? 1 : 0);
