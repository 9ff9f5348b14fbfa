// Build the C and Rust drivers (called by scripts/build-drivers.mjs; also runnable alone):
//   C:    clang-14 --target=wasm32, freestanding, imported memory      (guest-drivers/sdk-c)
//   Rust: Debian's rustc with the wasm32-unknown-unknown std, no_std   (guest-drivers/sdk-rust)
// then scripts/wasmdrv-finish.mjs adds the ABI version global and keeps only ABI exports.
// The toolchains come from scripts/install-toolchains.sh. A target is rebuilt when its output is older
// than its sources or its SDK; --force rebuilds all.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { finishDriver } from './wasmdrv-finish.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The C and Rust driver targets. */
export const TARGETS = [
  { name: 'edu-c', lang: 'c', src: 'guest-drivers/edu-c', entry: 'guest-drivers/edu-c/edu.c', out: 'build/drivers/edu-c.wasm' },
  { name: 'edu-rust', lang: 'rust', src: 'guest-drivers/edu-rust', entry: 'guest-drivers/edu-rust/src/lib.rs', out: 'build/drivers/edu-rust.wasm' },
];

const SDK = { c: 'guest-drivers/sdk-c', rust: 'guest-drivers/sdk-rust' };
export const TOOLS = { clang: 'clang-14', rustc: '/usr/bin/rustc' };

function newestIn(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestIn(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** What is missing to build `lang`, or undefined. */
export function missingToolchain(lang) {
  try {
    if (lang === 'c') {
      execFileSync(TOOLS.clang, ['--version'], { stdio: 'ignore' });
      execFileSync('wasm-ld-14', ['--version'], { stdio: 'ignore' });
    } else {
      const sysroot = execFileSync(TOOLS.rustc, ['--print', 'sysroot'], { encoding: 'utf8' }).trim();
      if (!existsSync(join(sysroot, 'lib', 'rustlib', 'wasm32-unknown-unknown', 'lib'))) throw new Error('no wasm32 std');
    }
    return undefined;
  } catch {
    return lang === 'c' ? 'clang-14 and lld-14' : 'Debian\'s rustc with libstd-rust-dev-wasm32';
  }
}

function compile(t) {
  const tmp = join(root, 'build', 'tmp');
  mkdirSync(tmp, { recursive: true });
  const raw = join(tmp, `${t.name}.raw.wasm`);
  if (t.lang === 'c') {
    execFileSync(TOOLS.clang, ['--target=wasm32', '-O2', '-ffreestanding', '-nostdlib', '-mbulk-memory', '-Wall', '-Wextra', '-Werror',
      '-I', join(root, SDK.c), '-Wl,--no-entry', '-Wl,--import-memory', join(root, t.entry), '-o', raw], { stdio: ['ignore', 'inherit', 'inherit'] });
  } else {
    const rlib = join(tmp, 'libwasmdrv.rlib');
    const common = ['--edition', '2021', '--target', 'wasm32-unknown-unknown', '-C', 'opt-level=s', '-C', 'panic=abort', '-D', 'warnings'];
    execFileSync(TOOLS.rustc, [...common, '--crate-type', 'rlib', '--crate-name', 'wasmdrv', join(root, SDK.rust, 'src', 'lib.rs'), '-o', rlib], { stdio: ['ignore', 'inherit', 'inherit'] });
    execFileSync(TOOLS.rustc, [...common, '--crate-type', 'cdylib', '--crate-name', t.name.replace(/-/g, '_'), '-C', 'lto', '-C', 'strip=debuginfo',
      '-C', 'link-arg=--import-memory', '--extern', `wasmdrv=${rlib}`, join(root, t.entry), '-o', raw], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  writeFileSync(join(root, t.out), finishDriver(readFileSync(raw), t.name));
}

/** Build every target; returns the number that failed. */
export function buildCRustDrivers({ force = false, only = [] } = {}) {
  let failed = 0;
  for (const t of TARGETS) {
    if (only.length && !only.includes(t.name)) continue;
    const out = join(root, t.out);
    const inputs = Math.max(newestIn(join(root, t.src)), newestIn(join(root, SDK[t.lang])), statSync(fileURLToPath(import.meta.url)).mtimeMs);
    if (!force && existsSync(out) && statSync(out).mtimeMs > inputs) continue;
    const missing = missingToolchain(t.lang);
    if (missing) {
      console.error(`build:drivers: ${t.name} needs ${missing}: run scripts/install-toolchains.sh (as root)`);
      failed++;
      continue;
    }
    mkdirSync(dirname(out), { recursive: true });
    try {
      compile(t);
      console.log(`build:drivers: ${t.name} -> ${t.out}`);
    } catch (err) {
      console.error(`build:drivers: ${t.name} (${t.entry}) failed: ${err.message}`);
      failed++;
    }
  }
  return failed;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exit(buildCRustDrivers({ force: process.argv.includes('--force'), only: process.argv.slice(2).filter((a) => !a.startsWith('--')) }) ? 1 : 0);
}
