// Build the project's C and Rust drivers (called by scripts/build-drivers.mjs, after build:host; also
// runnable alone). The compiling is the host's own (host/build-c-rust.ts, as `wasmdrv build` uses it),
// through the built bundle. A target is rebuilt when its output is older than its sources or its SDK;
// --force rebuilds all.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');

/** The C and Rust driver targets. */
export const TARGETS = [
  {
    name: 'edu-c',
    lang: 'c',
    src: 'guest-drivers/edu-c',
    entry: 'guest-drivers/edu-c/edu.c',
    out: 'build/drivers/edu-c.wasm',
  },
  {
    name: 'edu-rust',
    lang: 'rust',
    src: 'guest-drivers/edu-rust',
    entry: 'guest-drivers/edu-rust/src/lib.rs',
    out: 'build/drivers/edu-rust.wasm',
  },
  // Test fixtures: memory.grow past the limit (test/memory-limit.test.ts).
  {
    name: 'test-grow-c',
    lang: 'c',
    src: 'test/fixtures/drivers/grow-c',
    entry: 'test/fixtures/drivers/grow-c/grow.c',
    out: 'build/drivers/test/grow-c.wasm',
  },
  {
    name: 'test-grow-rust',
    lang: 'rust',
    src: 'test/fixtures/drivers/grow-rust',
    entry: 'test/fixtures/drivers/grow-rust/src/lib.rs',
    out: 'build/drivers/test/grow-rust.wasm',
  },
];
const SDK = { c: 'guest-drivers/sdk-c', rust: 'guest-drivers/sdk-rust' };

function newestIn(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestIn(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Build every target; returns the number that failed. */
export async function buildCRustDrivers({ force = false, only = [] } = {}) {
  const dist = join(root, 'dist', 'index.js');
  if (!existsSync(dist)) {
    console.error('build:drivers: the C and Rust drivers are built by the host bundle: run npm run build:host first');
    return 1;
  }
  const { compileDriver } = await import(dist);
  let failed = 0;
  for (const t of TARGETS) {
    if (only.length && !only.includes(t.name)) continue;
    const out = join(root, t.out);
    const inputs = Math.max(newestIn(join(root, t.src)), newestIn(join(root, SDK[t.lang])), statSync(dist).mtimeMs);
    if (!force && existsSync(out) && statSync(out).mtimeMs > inputs) continue;
    try {
      await compileDriver(t.lang, join(root, t.entry), out, join(root, 'build', 'tmp'), t.name);
      console.log(`build:drivers: ${t.name} -> ${t.out}`);
    } catch (err) {
      console.error(`build:drivers: ${err.message}`);
      failed++;
    }
  }
  return failed;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exit(
    (await buildCRustDrivers({
      force: process.argv.includes('--force'),
      only: process.argv.slice(2).filter((a) => !a.startsWith('--')),
    }))
      ? 1
      : 0,
  );
}
