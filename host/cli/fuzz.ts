// wasmdrv fuzz <driver.wasm | package> --model <edu|uart16550|generic> [options]: coverage- and
// comparison-guided fuzzing against a device whose register values, interrupts and DMA writes come from
// the input; every export is an entry point. A package is fuzzed under its manifest's grant.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { LoadError } from '../faults.ts';
import { fuzzDeviceSpec } from '../fuzz/device.ts';
import { crashKey, Executor } from '../fuzz/engine.ts';
import { minimize } from '../fuzz/minimize.ts';
import type { FuzzCrash, FuzzProgress } from '../fuzz/fuzz.ts';
import { runFuzz } from '../fuzz/jobs.ts';
import { coveragePlot } from '../fuzz/plot.ts';
import { instrument } from '../fuzz/instrument.ts';
import { isPackage, readPackage } from '../package/load.ts';
import { grantFor } from '../package/manifest.ts';
import type { Grant, Limits } from '../grant.ts';
import { simModels } from '../sim/registry.ts';
import { action, readUserFile, UsageError, wholeNumber } from './common.ts';
import { progressBar } from './progress.ts';

interface FuzzOptions {
  model: string;
  execs: number;
  jobs: number;
  seed: number;
  out: string;
  replay?: string;
  minimize?: string;
  json?: boolean;
  seconds?: number;
  fuel?: number;
  stopOnCrash?: boolean;
  plot?: boolean;
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--seconds wants a positive number, not "${v}"`);
  return n;
}

export function register(program: Command): void {
  const known = [
    'generic',
    ...simModels()
      .map((m) => m.name)
      .filter((m) => m === 'edu' || m === 'uart16550' || m === 'e1000'),
  ];
  program
    .command('fuzz')
    .summary('coverage-guided fuzzing of a driver with device-side inputs')
    .description(
      "Coverage- and comparison-guided fuzzing of a driver against a device whose register values, interrupts and DMA writes come from the input; every export is an entry point (probe, request, interrupt, reset, remove, state_restore). A package is fuzzed under its manifest's grant. Reproducers (with their execution index and time) go to DIR/crashes, with --plot coverage over time to DIR/coverage.svg. Exit 1 when --replay or --minimize reproduces a crash.",
    )
    .argument('<driver>', 'a .wasm driver or a .wdrv package')
    .addOption(new Option('--model <model>', 'the device model the inputs drive').choices(known).makeOptionMandatory())
    .option(
      '--execs <n>',
      'stop after N executions (0: no limit, with --seconds or --stop-on-crash)',
      wholeNumber(0),
      20000,
    )
    .option('--seconds <s>', 'stop after S seconds', seconds)
    .option('--jobs <n>', 'worker threads sharing DIR/corpus', wholeNumber(1), 1)
    .option('--seed <s>', 'deterministic per seed', wholeNumber(0), 1)
    .option('--fuel <n>', 'loop iterations per driver call before it is a hang (default 2000)', wholeNumber(1))
    .option('--out <dir>', 'corpus/, crashes/ (reproducers + .json), coverage.svg', 'fuzz-out')
    .option('--plot', 'write coverage over time as DIR/coverage.svg')
    .option('--stop-on-crash', 'stop at the first crash')
    .option('--replay <file>', 'run one reproducer; exit 1 if it crashes')
    .option('--minimize <file>', 'shrink a reproducer to FILE.min, keeping its crash')
    .option('--json', 'JSON lines: status every second, each crash, the summary last')
    .action(action(fuzz));
}

async function fuzz(driverPath: string, values: FuzzOptions): Promise<number> {
  const path = driverPath;
  const model = values.model;
  const nums: Record<string, number | undefined> = {
    execs: values.execs,
    jobs: values.jobs,
    seed: values.seed,
    seconds: values.seconds,
    fuel: values.fuel,
  };
  const driver = readUserFile(path, 'driver file');
  // A package: its manifest's grant and limits, as `wasmdrv run` would enforce them.
  let grant: Grant | undefined;
  let skipRequests: number[] | undefined;
  let limits: Partial<Limits> | undefined;
  if (isPackage(driver)) {
    const pkg = readPackage(driver, path);
    try {
      ({ grant, limits } = grantFor(pkg.manifest, fuzzDeviceSpec(model), path));
      skipRequests = pkg.manifest.fuzz?.skipRequests;
    } catch (err) {
      throw new LoadError((err as Error).message);
    }
  }
  let inst;
  try {
    inst = await instrument(driver, path);
  } catch (err) {
    throw new LoadError((err as Error).message);
  }
  const fuel = nums.fuel || undefined;

  if (values.replay || values.minimize) {
    const file = (values.replay ?? values.minimize)!;
    const input = readUserFile(file, 'fuzz input');
    const ex = new Executor(inst, model, { grant, limits, fuel, skipRequests });
    try {
      const res = ex.run(input);
      const out: Record<string, unknown> = { input: file, crash: res.crash ?? null, edges: res.edges };
      if (values.minimize) {
        if (!res.crash) throw new LoadError(`${file}: does not crash the driver: nothing to minimize`);
        const small = minimize(ex, input);
        const dest = `${file}.min`;
        writeFileSync(dest, small);
        Object.assign(out, {
          minimized: dest,
          from: input.length,
          to: small.length,
          sameCrash: crashKey(ex.run(small).crash!) === crashKey(res.crash),
        });
      }
      if (values.json) console.log(JSON.stringify(out));
      else {
        console.log(
          res.crash
            ? `${file}: ${res.crash.kind} at ${res.crash.location}: ${res.crash.message}`
            : `${file}: no crash (${res.edges} edges)`,
        );
        if (values.minimize) console.log(`minimized ${input.length} -> ${out.to as number} bytes: ${out.minimized}`);
      }
      return res.crash ? 1 : 0;
    } finally {
      ex.close();
    }
  }

  const execs = nums.execs === 0 ? Infinity : (nums.execs ?? 20000);
  if (!Number.isFinite(execs) && nums.seconds === undefined && !values.stopOnCrash)
    throw new UsageError('--execs 0 (no limit) needs --seconds or --stop-on-crash');
  // A bar on a terminal only (progress.ts): piped, --json or under CI, crash lines and the summary alone.
  // Its end is the execution count, or the time limit when the count has none.
  const bySeconds = !Number.isFinite(execs) && nums.seconds !== undefined;
  const bar = progressBar(
    'fuzz',
    bySeconds ? nums.seconds : execs,
    `${bySeconds ? 'execs {execs} · ' : ''}{rate}/s · coverage {coverage} edges · corpus {corpus} · crashes {crashes}`,
    values,
  );
  const result = await runFuzz({
    driver,
    model,
    execs,
    seconds: nums.seconds,
    stopOnCrash: values.stopOnCrash,
    seed: nums.seed ?? 1,
    jobs: Math.max(1, nums.jobs ?? 1),
    outDir: values.out,
    grant,
    limits,
    fuel,
    skipRequests,
    onProgress: (s: FuzzProgress) => {
      if (values.json) console.log(JSON.stringify({ event: 'status', ...s }));
      else
        bar.update(bySeconds ? Math.floor(s.ms / 1000) : s.execs, {
          execs: s.execs,
          rate: s.execsPerSec,
          coverage: s.coverage,
          corpus: s.corpus,
          crashes: s.crashes,
        });
    },
    onCrash: (c: FuzzCrash) => {
      const info = {
        kind: c.kind,
        location: c.location,
        message: c.message,
        exec: c.exec,
        ms: c.ms,
        job: c.job,
        reproducer: c.reproducer,
      };
      if (values.json) console.log(JSON.stringify({ event: 'crash', ...info }));
      else
        bar.log(
          `crash: ${c.kind} at ${c.location} (execution ${c.exec} of job ${c.job}, after ${(c.ms / 1000).toFixed(1)} s)`,
        );
    },
  }).finally(() => bar.stop());
  mkdirSync(values.out!, { recursive: true });
  const plot = values.plot ? join(values.out!, 'coverage.svg') : undefined;
  if (plot) writeFileSync(plot, coveragePlot(result, `${path} on ${model}`));
  const summary = {
    execs: result.execs,
    execsPerSec: result.execsPerSec,
    coverage: result.coverage,
    blocks: result.blocks,
    corpus: result.corpus,
    plot,
    crashes: result.crashList.map((c) => ({
      kind: c.kind,
      location: c.location,
      message: c.message,
      exec: c.exec,
      ms: c.ms,
      reproducer: c.reproducer,
    })),
  };
  if (values.json) console.log(JSON.stringify({ event: 'done', ...summary }));
  else {
    console.log(
      `${result.execs} execs at ${result.execsPerSec}/s, coverage ${result.coverage} edges (${result.blocks} sites), corpus ${result.corpus}${plot ? `, plot ${plot}` : ''}`,
    );
    for (const c of summary.crashes)
      console.log(
        `crash: ${c.kind} at ${c.location}: ${c.message}\n  found at execution ${c.exec} after ${(c.ms / 1000).toFixed(1)} s; reproducer ${c.reproducer} (replay: wasmdrv fuzz ${path} --model ${model} --replay ${c.reproducer})`,
      );
  }
  return 0;
}
