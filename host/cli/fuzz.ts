// wasmdrv fuzz <driver.wasm | package> --model <edu|uart16550|generic> [options]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { crashKey, Executor, minimize } from '../fuzz/engine.ts';
import { coveragePlot, runFuzz } from '../fuzz/fuzz.ts';
import { simModels } from '../sim/registry.ts';
import { action, CliError, readUserFile, wholeNumber } from './common.ts';

interface FuzzOptions { model: string; execs: number; jobs: number; seed: number; out: string; replay?: string; minimize?: string; json?: boolean }

export function register(program: Command): void {
  const known = ['generic', ...simModels().map((m) => m.name).filter((m) => m === 'edu' || m === 'uart16550')];
  program
    .command('fuzz')
    .summary('coverage-guided fuzzing of a driver with device-side inputs')
    .description('Coverage-guided fuzzing with device-side inputs (register values, interrupt timing, DMA contents, requests), deterministic per seed; reproducers in DIR/crashes, plot DIR/coverage.svg. Exit 1 when --replay or --minimize reproduces a crash.')
    .argument('<driver>', 'a .wasm driver or a .wdrv package')
    .addOption(new Option('--model <model>', 'the device model the inputs drive').choices(known).makeOptionMandatory())
    .option('--execs <n>', 'executions', wholeNumber(0), 20000)
    .option('--jobs <n>', 'parallel workers', wholeNumber(1), 1)
    .option('--seed <s>', 'random seed', wholeNumber(0), 1)
    .option('--out <dir>', 'output directory (corpus, crashes, coverage.svg)', 'fuzz-out')
    .option('--replay <file>', 'run one input and report its crash, if any')
    .option('--minimize <file>', 'shrink a crashing input to a smaller one with the same crash')
    .option('--json', 'the summary as one JSON line')
    .action(action(fuzz));
}

async function fuzz(driverPath: string, values: FuzzOptions): Promise<number> {
  const driver = readUserFile(driverPath, 'driver file');

  if (values.replay || values.minimize) {
    const file = (values.replay ?? values.minimize)!;
    const input = readUserFile(file, 'fuzz input');
    const ex = new Executor(driver, values.model);
    try {
      const res = ex.run(input);
      const out: Record<string, unknown> = { input: file, crash: res.crash ?? null, blocks: res.blocks.length };
      if (values.minimize) {
        if (!res.crash) throw new CliError(`${file}: does not crash the driver: nothing to minimize`);
        const small = minimize(ex, input);
        const dest = `${file}.min`;
        writeFileSync(dest, small);
        Object.assign(out, { minimized: dest, from: input.length, to: small.length, sameCrash: crashKey(ex.run(small).crash!) === crashKey(res.crash) });
      }
      if (values.json) console.log(JSON.stringify(out));
      else console.log(res.crash ? `${file}: ${res.crash.kind} at ${res.crash.location}: ${res.crash.message}` : `${file}: no crash (${res.blocks.length} blocks)`, values.minimize ? `\nminimized ${input.length} -> ${(out.to as number)} bytes: ${out.minimized}` : '');
      return res.crash ? 1 : 0;
    } finally {
      ex.close();
    }
  }

  const tty = process.stderr.isTTY;
  const result = await runFuzz({
    driver, model: values.model, execs: values.execs, seed: values.seed, jobs: values.jobs, outDir: values.out,
    onProgress: (s) => {
      const line = `execs ${s.execs} · ${s.execsPerSec}/s · coverage ${s.coverage}/${s.blocks} · corpus ${s.corpus} · crashes ${s.crashes}`;
      if (tty) process.stderr.write(`\r${line}`);
      else if (s.execs % 10000 === 0) process.stderr.write(`${line}\n`);
    },
  });
  if (tty) process.stderr.write('\n');
  mkdirSync(values.out, { recursive: true });
  const plot = join(values.out, 'coverage.svg');
  writeFileSync(plot, coveragePlot(result, `${driverPath} on ${values.model}`));
  const summary = {
    execs: result.execs, execsPerSec: result.execsPerSec, coverage: result.coverage, blocks: result.blocks, corpus: result.corpus, plot,
    crashes: result.crashList.map((c) => ({ kind: c.kind, location: c.location, message: c.message, reproducer: c.reproducer })),
  };
  if (values.json) console.log(JSON.stringify(summary));
  else {
    console.log(`${result.execs} execs at ${result.execsPerSec}/s, coverage ${result.coverage}/${result.blocks} blocks, corpus ${result.corpus}, plot ${plot}`);
    for (const c of summary.crashes) console.log(`crash: ${c.kind} at ${c.location}: ${c.message}\n  reproducer ${c.reproducer} (replay: wasmdrv fuzz ${driverPath} --model ${values.model} --replay ${c.reproducer})`);
  }
  return 0;
}
