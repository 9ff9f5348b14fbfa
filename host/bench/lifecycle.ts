// npm run bench, section `lifecycle`: what a driver's life costs: reload swap, crash to serving again,
// warm load, host memory per driver, and the fuzzer's execution rate on edu and the UART.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { measureFuzz } from '../fuzz/fuzz.ts';
import { Host } from '../host.ts';
import { measureReload } from '../reload.ts';

export async function benchLifecycle(a: {
  root: string;
  quick: boolean;
  say: (s: string) => void;
  /** Measured by bench.ts as it loads its driver, printed here beside the reload figures. */
  loadToProbedMs: number | string;
}): Promise<Record<string, number | string>> {
  const { root, say } = a;
  const out: Record<string, number | string> = {};
  const rl = await measureReload(a.quick ? 50 : 500);
  out.reloadSwapMedianMs = +rl.median.toFixed(3);
  out.reloadSwapP99Ms = +rl.p99.toFixed(3);
  say(
    `load to probed  ${a.loadToProbedMs} ms   reload swap median ${out.reloadSwapMedianMs} ms p99 ${out.reloadSwapP99Ms} ms`,
  );
  out.crashToServingMs = await crashToServing(root, a.quick ? 3 : 20);
  say(`crash to serving again (restart, reset, probe, first answer) median ${out.crashToServingMs} ms`);
  out.loadWarmToProbedMs = await warmLoad(root, a.quick ? 3 : 10);
  say(`load to probed, warm (driver compiled, spare worker booted) median ${out.loadWarmToProbedMs} ms`);
  for (const n of a.quick ? [1, 5] : [1, 10, 100]) {
    const f = footprint(root, n);
    out[`rssPerDriverMiB${n}`] = f;
    say(`host memory per loaded edu driver (RSS growth / ${n})  ${f} MiB`);
  }
  // The fuzzer: one job, persistent instance with snapshot restore (docs/fuzzing.md). Wall-clock
  // execs/s, and execs per CPU second of the process (V8's compiler threads included).
  for (const [name, model] of [
    ['edu', 'edu'],
    ['uart16550', 'uart16550'],
  ] as const) {
    const f = await measureFuzz(
      new Uint8Array(readFileSync(join(root, 'build', 'drivers', `${name}.wasm`))),
      a.quick ? 3000 : 60_000,
      model,
    );
    const key = name === 'edu' ? '' : 'Uart';
    out[`fuzz${key}ExecsPerSec`] = f.execsPerSec;
    out[`fuzz${key}CpuExecsPerSec`] = f.cpuExecsPerSec;
    const p = f.profile;
    const total = p.mutateMs + p.execMs + p.otherMs;
    say(
      `fuzz ${name.padEnd(10)} ${f.execsPerSec} execs/s on one core (${f.cpuExecsPerSec} per CPU second), ${(p.calls / Math.max(1, f.execs)).toFixed(1)} driver calls/exec; ` +
        `time: executing ${((100 * p.execMs) / total).toFixed(0)}%, mutating ${((100 * p.mutateMs) / total).toFixed(0)}%, corpus ${((100 * p.otherMs) / total).toFixed(0)}%`,
    );
  }
  return out;
}

async function crashToServing(root: string, n: number): Promise<number> {
  const host = new Host();
  try {
    const drv = await host.load(join(root, 'build', 'drivers', 'test', 'broken.wasm'), 'sim:edu:crash', {
      name: 'crash',
      restart: { backoffMs: 0, maxBackoffMs: 0, budget: n + 1 },
    });
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await drv.request(6).catch(() => {});
      await drv.request(0, Uint8Array.of(1));
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return +times[times.length >> 1].toFixed(2);
  } finally {
    await host.close();
  }
}

/** Load the edu driver onto fresh simulated devices, the module compiled and a spare worker booted. */
async function warmLoad(root: string, n: number): Promise<number> {
  const host = new Host();
  try {
    const path = join(root, 'build', 'drivers', 'edu.wasm');
    await host.load(path, 'sim:edu:warm0', { name: 'warm0' });
    const times: number[] = [];
    for (let i = 1; i <= n; i++) {
      await new Promise((r) => setTimeout(r, 150)); // the spare boots
      const t0 = performance.now();
      await host.load(path, `sim:edu:warm${i}`, { name: `warm${i}` });
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return +times[times.length >> 1].toFixed(2);
  } finally {
    await host.close();
  }
}

/** RSS growth per driver for `n` edu drivers on simulated devices, in a process of its own (MiB). */
function footprint(root: string, n: number): number {
  const script = `
    import { Host } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
    const host = new Host();
    const path = ${JSON.stringify(join(root, 'build', 'drivers', 'edu.wasm'))};
    // one load first: the addon, the compiled module and the spare worker are not per-driver costs
    await host.load(path, 'sim:edu:base', { name: 'base' });
    await new Promise((r) => setTimeout(r, 300));
    const before = process.memoryUsage().rss;
    for (let i = 0; i < ${n}; i++) await host.load(path, 'sim:edu:f' + i, { name: 'f' + i });
    await new Promise((r) => setTimeout(r, 300));
    console.log(JSON.stringify({ perDriver: (process.memoryUsage().rss - before) / ${n} / 1048576 }));
    await host.close();
  `;
  const r = JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .at(-1)!,
  );
  return +r.perDriver.toFixed(2);
}
