// wasmdrv fuzz <driver.wasm | package> --model <edu|uart16550|generic> [options]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crashKey, Executor, minimize } from '../fuzz/engine.ts';
import { coveragePlot, runFuzz } from '../fuzz/fuzz.ts';
import { simModels } from '../sim/registry.ts';

export async function cmdFuzz(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' }, execs: { type: 'string', default: '20000' }, jobs: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' }, out: { type: 'string', default: 'fuzz-out' }, replay: { type: 'string' },
      minimize: { type: 'string' }, json: { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) throw new Error('fuzz wants one driver (.wasm or package)');
  const known = ['generic', ...simModels().map((m) => m.name).filter((m) => m === 'edu' || m === 'uart16550')];
  if (!values.model || !known.includes(values.model)) throw new Error(`fuzz wants --model ${known.join('|')}`);
  const num = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} wants a whole number, not "${v}"`);
    return n;
  };
  let driver: Uint8Array;
  try {
    driver = new Uint8Array(readFileSync(positionals[0]));
  } catch (err) {
    throw new Error(`${positionals[0]}: cannot read: ${(err as Error).message}`);
  }

  if (values.replay || values.minimize) {
    const file = (values.replay ?? values.minimize)!;
    const input = new Uint8Array(readFileSync(file));
    const ex = new Executor(driver, values.model);
    try {
      const res = ex.run(input);
      const out: Record<string, unknown> = { input: file, crash: res.crash ?? null, blocks: res.blocks.length };
      if (values.minimize) {
        if (!res.crash) throw new Error(`${file}: does not crash the driver: nothing to minimize`);
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
    driver, model: values.model, execs: num('execs', values.execs), seed: num('seed', values.seed), jobs: Math.max(1, num('jobs', values.jobs)), outDir: values.out,
    onProgress: (s) => {
      const line = `execs ${s.execs} · ${s.execsPerSec}/s · coverage ${s.coverage}/${s.blocks} · corpus ${s.corpus} · crashes ${s.crashes}`;
      if (tty) process.stderr.write(`\r${line}`);
      else if (s.execs % 10000 === 0) process.stderr.write(`${line}\n`);
    },
  });
  if (tty) process.stderr.write('\n');
  mkdirSync(values.out!, { recursive: true });
  const plot = join(values.out!, 'coverage.svg');
  writeFileSync(plot, coveragePlot(result, `${positionals[0]} on ${values.model}`));
  const summary = {
    execs: result.execs, execsPerSec: result.execsPerSec, coverage: result.coverage, blocks: result.blocks, corpus: result.corpus, plot,
    crashes: result.crashList.map((c) => ({ kind: c.kind, location: c.location, message: c.message, reproducer: c.reproducer })),
  };
  if (values.json) console.log(JSON.stringify(summary));
  else {
    console.log(`${result.execs} execs at ${result.execsPerSec}/s, coverage ${result.coverage}/${result.blocks} blocks, corpus ${result.corpus}, plot ${plot}`);
    for (const c of summary.crashes) console.log(`crash: ${c.kind} at ${c.location}: ${c.message}\n  reproducer ${c.reproducer} (replay: wasmdrv fuzz ${positionals[0]} --model ${values.model} --replay ${c.reproducer})`);
  }
  return 0;
}
