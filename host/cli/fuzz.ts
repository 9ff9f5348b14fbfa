// wasmdrv fuzz <driver.wasm | package> --model <edu|uart16550|generic> [options]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LoadError } from '../faults.ts';
import { crashKey, Executor, fuzzDeviceSpec, minimize } from '../fuzz/engine.ts';
import { coveragePlot, runFuzz, type FuzzCrash, type FuzzProgress } from '../fuzz/fuzz.ts';
import { instrument } from '../fuzz/instrument.ts';
import { isPackage, readPackage } from '../package/load.ts';
import { grantFor } from '../package/manifest.ts';
import type { Grant, Limits } from '../sandbox/instance.ts';
import { simModels } from '../sim/registry.ts';

export const FUZZ_USAGE = `wasmdrv fuzz <driver.wasm|package> --model <edu|uart16550|generic> [options]
  Coverage- and comparison-guided fuzzing of a driver against a device whose register values,
  interrupts and DMA writes come from the input; every export is an entry point (probe, request,
  interrupt, reset, remove, state_restore). A package is fuzzed under its manifest's grant.
  --execs N          stop after N executions (default 20000; 0 = no limit, with --seconds)
  --seconds S        stop after S seconds
  --jobs N           N worker threads sharing DIR/corpus (default 1)
  --seed S           deterministic per seed (default 1)
  --fuel N           loop iterations per driver call before it is a hang (default 2000)
  --out DIR          corpus/, crashes/ (reproducers + .json), coverage.svg (default fuzz-out)
  --stop-on-crash    stop at the first crash
  --replay FILE      run one reproducer; exit 1 if it crashes
  --minimize FILE    shrink a reproducer to FILE.min, keeping its crash
  --json             JSON lines: status every second, each crash, the summary last
  --help`;

function usage(message: string): number {
  console.error(`wasmdrv fuzz: ${message}\n${FUZZ_USAGE}`);
  return 2;
}

export async function cmdFuzz(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        model: { type: 'string' }, execs: { type: 'string', default: '20000' }, jobs: { type: 'string', default: '1' },
        seed: { type: 'string', default: '1' }, out: { type: 'string', default: 'fuzz-out' }, replay: { type: 'string' },
        minimize: { type: 'string' }, json: { type: 'boolean' }, seconds: { type: 'string' }, fuel: { type: 'string' },
        'stop-on-crash': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(FUZZ_USAGE);
    return 0;
  }
  if (positionals.length !== 1) return usage('wants one driver (.wasm or package)');
  const known = ['generic', ...simModels().map((m) => m.name).filter((m) => m === 'edu' || m === 'uart16550')];
  if (!values.model || !known.includes(values.model)) return usage(`wants --model ${known.join('|')}`);
  const model = values.model;
  const nums: Record<string, number> = {};
  for (const name of ['execs', 'jobs', 'seed', 'seconds', 'fuel'] as const) {
    const v = values[name];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || (name !== 'seconds' && !Number.isInteger(n))) return usage(`--${name} wants a ${name === 'seconds' ? '' : 'whole '}number, not "${v}"`);
    nums[name] = n;
  }
  const path = positionals[0];
  let driver: Uint8Array;
  try {
    driver = new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new LoadError(`${path}: cannot read: ${(err as Error).message}`);
  }
  // A package: its manifest's grant and limits, as `wasmdrv run` would enforce them.
  let grant: Grant | undefined;
  let limits: Partial<Limits> | undefined;
  if (isPackage(driver)) {
    const pkg = readPackage(driver, path);
    try {
      ({ grant, limits } = grantFor(pkg.manifest, fuzzDeviceSpec(model), path));
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
    let input: Uint8Array;
    try {
      input = new Uint8Array(readFileSync(file));
    } catch (err) {
      throw new LoadError(`${file}: cannot read: ${(err as Error).message}`);
    }
    const ex = new Executor(inst, model, { grant, limits, fuel });
    try {
      const res = ex.run(input);
      const out: Record<string, unknown> = { input: file, crash: res.crash ?? null, edges: res.edges };
      if (values.minimize) {
        if (!res.crash) throw new LoadError(`${file}: does not crash the driver: nothing to minimize`);
        const small = minimize(ex, input);
        const dest = `${file}.min`;
        writeFileSync(dest, small);
        Object.assign(out, { minimized: dest, from: input.length, to: small.length, sameCrash: crashKey(ex.run(small).crash!) === crashKey(res.crash) });
      }
      if (values.json) console.log(JSON.stringify(out));
      else {
        console.log(res.crash ? `${file}: ${res.crash.kind} at ${res.crash.location}: ${res.crash.message}` : `${file}: no crash (${res.edges} edges)`);
        if (values.minimize) console.log(`minimized ${input.length} -> ${out.to as number} bytes: ${out.minimized}`);
      }
      return res.crash ? 1 : 0;
    } finally {
      ex.close();
    }
  }

  const tty = process.stderr.isTTY && !values.json;
  const line = (s: FuzzProgress) => `${(s.ms / 1000).toFixed(0)} s · execs ${s.execs} · ${s.execsPerSec}/s · coverage ${s.coverage} edges · corpus ${s.corpus} · crashes ${s.crashes}`;
  const execs = nums.execs === 0 ? Infinity : nums.execs ?? 20000;
  if (!Number.isFinite(execs) && nums.seconds === undefined && !values['stop-on-crash']) return usage('--execs 0 (no limit) needs --seconds or --stop-on-crash');
  const result = await runFuzz({
    driver, model, execs, seconds: nums.seconds, stopOnCrash: values['stop-on-crash'], seed: nums.seed ?? 1, jobs: Math.max(1, nums.jobs ?? 1),
    outDir: values.out, grant, limits, fuel,
    onProgress: (s) => {
      if (values.json) console.log(JSON.stringify({ event: 'status', ...s }));
      else if (tty) process.stderr.write(`\r${line(s)}\x1b[K`);
      else process.stderr.write(`${line(s)}\n`);
    },
    onCrash: (c: FuzzCrash) => {
      const info = { kind: c.kind, location: c.location, message: c.message, exec: c.exec, ms: c.ms, job: c.job, reproducer: c.reproducer };
      if (values.json) console.log(JSON.stringify({ event: 'crash', ...info }));
      else process.stderr.write(`${tty ? '\r\x1b[K' : ''}crash: ${c.kind} at ${c.location} (execution ${c.exec} of job ${c.job}, after ${(c.ms / 1000).toFixed(1)} s)\n`);
    },
  });
  if (tty) process.stderr.write('\n');
  mkdirSync(values.out!, { recursive: true });
  const plot = join(values.out!, 'coverage.svg');
  writeFileSync(plot, coveragePlot(result, `${path} on ${model}`));
  const summary = {
    execs: result.execs, execsPerSec: result.execsPerSec, coverage: result.coverage, blocks: result.blocks, corpus: result.corpus, plot,
    crashes: result.crashList.map((c) => ({ kind: c.kind, location: c.location, message: c.message, exec: c.exec, ms: c.ms, reproducer: c.reproducer })),
  };
  if (values.json) console.log(JSON.stringify({ event: 'done', ...summary }));
  else {
    console.log(`${result.execs} execs at ${result.execsPerSec}/s, coverage ${result.coverage} edges (${result.blocks} sites), corpus ${result.corpus}, plot ${plot}`);
    for (const c of summary.crashes) console.log(`crash: ${c.kind} at ${c.location}: ${c.message}\n  found at execution ${c.exec} after ${(c.ms / 1000).toFixed(1)} s; reproducer ${c.reproducer} (replay: wasmdrv fuzz ${path} --model ${model} --replay ${c.reproducer})`);
  }
  return 0;
}
