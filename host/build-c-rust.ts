// Compiling C and Rust drivers to the wasmdrv ABI (the project's own edu-c/edu-rust through
// scripts/build-c-rust-drivers.mjs, and any folder through `wasmdrv build`):
//   C:    clang-14 --target=wasm32, freestanding, imported memory, against guest-drivers/sdk-c;
//   Rust: Debian's rustc with the wasm32-unknown-unknown std, no_std, against guest-drivers/sdk-rust;
// then finishDriver(): neither language can export an immutable Wasm global, so binaryen adds
// `wasmdrv_abi_version`, and it drops the toolchains' own exports (memory, __data_end, __heap_base),
// keeping the name section so fault stacks name the driver's functions.
// The toolchains install with scripts/install-toolchains.sh (Debian packages; root).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ABI_VERSION, OPTIONAL_EXPORTS, REQUIRED_EXPORTS } from './abi.ts';
import { packageRoot } from './native.ts';

export type DriverLang = 'c' | 'rust';

export const TOOLS = { clang: 'clang-14', wasmLd: 'wasm-ld-14', rustc: '/usr/bin/rustc' };

/** The SDK folders, in this installation. */
export function sdkDir(lang: DriverLang): string {
  return join(packageRoot(), 'guest-drivers', lang === 'c' ? 'sdk-c' : 'sdk-rust');
}

/** What is missing to build `lang` here (a sentence naming the fix), or undefined. */
export function missingToolchain(lang: DriverLang): string | undefined {
  try {
    if (lang === 'c') {
      execFileSync(TOOLS.clang, ['--version'], { stdio: 'ignore' });
      execFileSync(TOOLS.wasmLd, ['--version'], { stdio: 'ignore' });
    } else {
      const sysroot = execFileSync(TOOLS.rustc, ['--print', 'sysroot'], { encoding: 'utf8' }).trim();
      if (!existsSync(join(sysroot, 'lib', 'rustlib', 'wasm32-unknown-unknown', 'lib')))
        throw new Error('no wasm32 std');
    }
    return undefined;
  } catch {
    const what = lang === 'c' ? 'clang-14 and lld-14' : "Debian's rustc with libstd-rust-dev-wasm32";
    return `${lang === 'c' ? 'C' : 'Rust'} drivers need ${what}: run scripts/install-toolchains.sh as root (in ${packageRoot()})`;
  }
}

const ABI_EXPORTS = new Set([...Object.keys(REQUIRED_EXPORTS), ...Object.keys(OPTIONAL_EXPORTS)]);

/** Add the ABI version global and keep only ABI exports. Throws naming the problem. */
export async function finishDriver(bytes: Uint8Array, label: string): Promise<Uint8Array> {
  const binaryen = (await import('binaryen')).default;
  const m = binaryen.readBinary(bytes);
  try {
    const F = binaryen.Features;
    m.setFeatures(F.MVP | F.MutableGlobals | F.SignExt | F.BulkMemory | F.BulkMemoryOpt | F.NontrappingFPToInt);
    for (let i = m.getNumExports() - 1; i >= 0; i--) {
      const e = binaryen.getExportInfo(m.getExportByIndex(i));
      if (!ABI_EXPORTS.has(e.name)) m.removeExport(e.name);
    }
    for (const name of Object.keys(REQUIRED_EXPORTS)) {
      if (!m.getExport(name)) throw new Error(`${label}: the driver does not export ${name}`);
    }
    m.addGlobal('wasmdrv_abi_version', binaryen.i32, false, m.i32.const(ABI_VERSION));
    m.addGlobalExport('wasmdrv_abi_version', 'wasmdrv_abi_version');
    if (!m.validate()) throw new Error(`${label}: the finished module does not validate`);
    binaryen.setDebugInfo(true);
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/**
 * Compile `entry` (a .c file, or a crate's src/lib.rs) to a finished driver at `outFile`.
 * `tmpDir` holds the raw module (and, for Rust, the SDK's rlib). Throws with the compiler's output.
 */
export async function compileDriver(
  lang: DriverLang,
  entry: string,
  outFile: string,
  tmpDir: string,
  label: string,
): Promise<Uint8Array> {
  const missing = missingToolchain(lang);
  if (missing) throw new Error(`${label}: ${missing}`);
  mkdirSync(tmpDir, { recursive: true });
  mkdirSync(dirname(outFile), { recursive: true });
  const raw = join(tmpDir, `${label}.raw.wasm`);
  // clang runs a `wasm-opt` it finds on PATH after linking (npm run puts binaryen's first), and that
  // drops the name section: the same build then names its functions or not depending on how it was
  // started. The tools run with no wasm-opt on their PATH.
  const path = (process.env.PATH ?? '')
    .split(':')
    .filter((d) => d && !existsSync(join(d, 'wasm-opt')))
    .join(':');
  const run = (cmd: string, args: string[]) => {
    try {
      execFileSync(cmd, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        encoding: 'utf8',
        env: { ...process.env, PATH: path },
      });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${label}: ${cmd} failed:\n${(e.stderr || e.stdout || e.message).trim()}`);
    }
  };
  if (lang === 'c') {
    run(TOOLS.clang, [
      '--target=wasm32',
      '-O2',
      '-ffreestanding',
      '-nostdlib',
      '-mbulk-memory',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-I',
      sdkDir('c'),
      '-Wl,--no-entry',
      '-Wl,--import-memory',
      entry,
      '-o',
      raw,
    ]);
  } else {
    const rlib = join(tmpDir, 'libwasmdrv.rlib');
    const common = [
      '--edition',
      '2021',
      '--target',
      'wasm32-unknown-unknown',
      '-C',
      'opt-level=s',
      '-C',
      'panic=abort',
      '-D',
      'warnings',
    ];
    run(TOOLS.rustc, [
      ...common,
      '--crate-type',
      'rlib',
      '--crate-name',
      'wasmdrv',
      join(sdkDir('rust'), 'src', 'lib.rs'),
      '-o',
      rlib,
    ]);
    run(TOOLS.rustc, [
      ...common,
      '--crate-type',
      'cdylib',
      '--crate-name',
      label.replace(/[^a-z0-9_]/gi, '_'),
      '-C',
      'lto',
      '-C',
      'strip=debuginfo',
      '-C',
      'link-arg=--import-memory',
      '--extern',
      `wasmdrv=${rlib}`,
      entry,
      '-o',
      raw,
    ]);
  }
  const bytes = await finishDriver(new Uint8Array(readFileSync(raw)), label);
  writeFileSync(outFile, bytes);
  return bytes;
}
