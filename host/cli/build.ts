// wasmdrv build <dir>: compile one driver folder (DIR/index.ts -> DIR/build/NAME.wasm) with asc.
import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { buildDriver } from '../build.ts';
import { readWasm } from '../wasm/read.ts';
import { action, CliError, UsageError } from './common.ts';

export function register(program: Command): void {
  program
    .command('build')
    .summary('compile one driver folder (manifest.json + index.ts, index.c or src/lib.rs) to DIR/build/NAME.wasm')
    .description(
      "Compiles the driver in DIR into DIR/build/NAME.wasm (NAME from DIR/manifest.json): index.ts with AssemblyScript (the project's asconfig.json options, the wasmdrv-sdk package), index.c with clang-14 against guest-drivers/sdk-c, src/lib.rs with rustc against guest-drivers/sdk-rust (docs/languages.md). The folder can be anywhere.",
    )
    .argument('[dir]', 'the driver folder', '.')
    .option('--out <file>', 'write the .wasm here instead')
    .action(
      action(async (dir: string, o: { out?: string }) => {
        if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${dir}: no such driver folder`);
        let r: Awaited<ReturnType<typeof buildDriver>>;
        try {
          r = await buildDriver(dir, { outFile: o.out });
        } catch (err) {
          throw new CliError((err as Error).message);
        }
        const info = readWasm(r.bytes);
        console.log(
          `built ${r.outFile} (${r.bytes.length} bytes; imports ${info.imports.map((i) => `${i.module}.${i.name}`).join(' ')})`,
        );
        return 0;
      }),
    );
}
