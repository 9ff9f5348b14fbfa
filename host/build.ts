// Build one driver folder anywhere on disk (`wasmdrv build DIR`): DIR/manifest.json names the driver,
// DIR/index.ts is its entry, the output is DIR/build/NAME.wasm. The compiler flags are the project's
// (asconfig.json "options", the same every in-tree driver gets), and the SDK is the package
// `wasmdrv-sdk` (guest-drivers/sdk): found in the driver's own node_modules, or else in this
// installation's.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { packageRoot } from './native.ts';
import { compileDriver, type DriverLang } from './build-c-rust.ts';

/** The SDK's package name: a driver imports its helpers from here. */
export const SDK_PACKAGE = 'wasmdrv-sdk';

export interface DriverFolder {
  dir: string;
  name: string;
  /** index.ts (AssemblyScript), index.c (C) or src/lib.rs with a Cargo.toml (Rust). */
  lang: 'as' | DriverLang;
  entry: string;
  outFile: string;
}

/** Where a driver folder's pieces are; throws naming the missing file. */
export function driverFolder(dir: string): DriverFolder {
  const abs = resolve(dir);
  const manifestPath = join(abs, 'manifest.json');
  let name = basename(abs);
  if (existsSync(manifestPath)) {
    try {
      const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { name?: unknown };
      if (typeof m.name === 'string' && m.name) name = m.name;
    } catch (err) {
      throw new Error(`${manifestPath}: not valid JSON: ${(err as Error).message}`);
    }
  }
  const outFile = join(abs, 'build', `${name}.wasm`);
  for (const [lang, file] of [
    ['as', 'index.ts'],
    ['c', 'index.c'],
    ['rust', join('src', 'lib.rs')],
  ] as const) {
    if (existsSync(join(abs, file))) return { dir: abs, name, lang, entry: join(abs, file), outFile };
  }
  throw new Error(
    `${abs}: no driver entry: a driver folder holds manifest.json and index.ts (AssemblyScript), index.c (C) or src/lib.rs (Rust)`,
  );
}

/** The asc arguments for a driver: the project's options, with the SDK's abort handler by package path. */
export function ascArguments(
  configToArguments: (o: Record<string, unknown>) => string[],
  own: Record<string, unknown> = {},
): string[] {
  const root = packageRoot();
  const options = {
    ...(JSON.parse(readFileSync(join(root, 'asconfig.json'), 'utf8')).options as Record<string, unknown>),
    ...own,
  };
  // In-tree drivers import the SDK by relative path (guest-drivers/sdk/index); a package import puts
  // it under ~lib/wasmdrv-sdk/index instead.
  options.use = [`abort=~lib/${SDK_PACKAGE}/index/sdkAbort`];
  return [...configToArguments(options), '--path', join(root, 'node_modules')];
}

export interface BuildResult {
  outFile: string;
  bytes: Uint8Array;
}

/**
 * A driver folder's own asc options: "options" of DIR/asconfig.json (initialMemory, say, for a driver
 * that reserves a large DMA area), over the project's. `use` (the SDK's abort handler) stays ours.
 */
function folderOptions(dir: string): Record<string, unknown> {
  const file = join(dir, 'asconfig.json');
  if (!existsSync(file)) return {};
  let c: { options?: Record<string, unknown> };
  try {
    c = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  const { use: _use, ...options } = c.options ?? {};
  return options;
}

/** Compile a driver folder with asc's JS API. Throws with the compiler's diagnostics on failure. */
export async function buildDriver(dir: string, o: { outFile?: string } = {}): Promise<BuildResult> {
  const f = driverFolder(dir);
  const outFile = resolve(o.outFile ?? f.outFile);
  if (f.lang !== 'as') {
    const bytes = await compileDriver(f.lang, f.entry, outFile, join(f.dir, 'build', 'tmp'), f.name);
    return { outFile, bytes };
  }
  const sdk = join(packageRoot(), 'node_modules', SDK_PACKAGE, 'index.ts');
  if (!existsSync(sdk) && !existsSync(join(f.dir, 'node_modules', SDK_PACKAGE))) {
    throw new Error(
      `${SDK_PACKAGE}: not installed (neither ${sdk} nor ${join(f.dir, 'node_modules', SDK_PACKAGE)}): run npm install`,
    );
  }
  // assemblyscript is a development tool: load it only when a build is asked for.
  type Asc = {
    main(args: string[], o?: Record<string, unknown>): Promise<{ error: Error | null; stderr: { toString(): string } }>;
    configToArguments(o: Record<string, unknown>): string[];
  };
  let asc: Asc;
  try {
    asc = (await import('assemblyscript/asc')) as unknown as Asc;
  } catch {
    throw new Error('assemblyscript: not installed (wasmdrv build compiles with it): npm install assemblyscript');
  }
  mkdirSync(join(outFile, '..'), { recursive: true });
  const { error, stderr } = await asc.main(
    [
      f.entry,
      ...ascArguments(asc.configToArguments, folderOptions(f.dir)),
      '--outFile',
      outFile,
      '--noColors',
      '--baseDir',
      f.dir,
    ],
    {},
  );
  if (error) throw new Error(`${f.entry}: build failed:\n${stderr.toString().trim()}`);
  return { outFile, bytes: new Uint8Array(readFileSync(outFile)) };
}
