// npm run bench: the sandbox against native C on the same machine, in the same run, on the same memory.
// Every figure is printed beside its baseline and as a ratio; with --json the last line is one object.

import { benchE1000 } from './e1000.ts';
import { benchLanguages } from './languages.ts';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { measureFuzz } from '../fuzz/fuzz.ts';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { Host } from '../host.ts';
import { loadNative, nativeBinaryPath, packageRoot } from '../native.ts';
import { measureReload } from '../reload.ts';
import { decodeResponse } from '../payload.ts';
import type { Driver } from '../driver.ts';

export interface BenchOptions {
  quick: boolean;
  json: boolean;
  /** Write the interrupt latency CDF (irq-cdf.svg) into `out`. */
  plot: boolean;
  /** Where the results (results.json, and the plot) go. Default: bench-results/ in the current directory. */
  out?: string;
  /** Told when each section starts (the CLI's progress bar): its name, how many started before it, of how many. */
  onSection?: (section: BenchSection, started: number, total: number) => void;
  /** Where the report's lines go (default: stdout); the CLI sends them above its bar on a terminal. */
  log?: (line: string) => void;
  /** Run only these sections (default: all). */
  only?: BenchSection[];
}

export const BENCH_SECTIONS = ['regs', 'dma', 'irq', 'ring', 'e1000', 'lifecycle', 'languages'] as const;
export type BenchSection = (typeof BENCH_SECTIONS)[number];

const le32 = (...v: number[]) => new Uint8Array(Uint32Array.from(v).buffer);
const u64At = (b: Uint8Array, at: number) => Number(new DataView(b.buffer, b.byteOffset).getBigUint64(at, true));
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

function compileC(root: string): string {
  const dir = join(root, '.bench');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'native');
  try {
    execFileSync('cc', ['-O2', '-Wall', '-pthread', join(root, 'bench', 'native.c'), '-o', out], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  } catch (err) {
    throw new Error(`bench: cannot compile bench/native.c with cc: ${(err as Error).message}`);
  }
  return out;
}

/** Run the C baseline with `fds` inherited as fd 3, 4, ...; resolves with its stdout. */
async function runC(bin: string, args: string[], fds: number[], pin: boolean): Promise<string> {
  const cmd = pin ? 'taskset' : bin;
  const argv = pin ? ['-c', '0', bin, ...args] : args;
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit', ...fds] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`bench: ${bin} ${args.join(' ')} exited with ${code}`);
  return out;
}

function canPin(): boolean {
  try {
    execFileSync('taskset', ['-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function unpin(): void {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', `0-${cpus().length - 1}`, String(process.pid)], { stdio: 'ignore' });
  } catch {
    /* nothing to undo */
  }
}

export async function runBench(o: BenchOptions): Promise<Record<string, number | string>> {
  const root = packageRoot();
  const native = loadNative();
  const bin = compileC(root);
  const out: Record<string, number | string> = {};
  const say = (s: string) => {
    if (!o.json) (o.log ?? console.log)(s);
  };
  const wanted = BENCH_SECTIONS.filter((s) => !o.only || o.only.includes(s));
  const started = new Set<BenchSection>();
  const want = (s: BenchSection) => {
    if (!wanted.includes(s)) return false;
    if (!started.has(s)) o.onSection?.(s, started.size, wanted.length);
    started.add(s);
    return true;
  };
  const host = new Host();
  try {
    const dev = host.openDevice('sim:bench');
    const regsFd = (dev.spec.regions[0].source as { fd: number }).fd;
    const dmaFd = (dev.spec.dma[0].source as { fd: number }).fd;
    const irqFd = (dev.spec.irq as { eventfd: number }).eventfd;
    const t0 = performance.now();
    const drv: Driver = await host.load(join(root, 'build', 'drivers', 'bench.wasm'), dev, {
      name: 'bench',
      limits: { deadlineMs: 120_000 },
    });
    out.loadToProbedMs = +(performance.now() - t0).toFixed(2);
    // --- register access ---------------------------------------------------------------------------
    // The default driver above serves registers through the Wasm gate recording every access; the
    // same loops also run with reads left out of the recorder and with the gate off (JS imports).
    const n = o.quick ? 200_000 : 5_000_000;
    let drv2 = drv;
    if (want('regs')) {
      const regLoops = async (d: Driver) => {
        const rq = async (op: number, ...args: number[]) => d.request(op, le32(...args));
        // Twice: the first call runs in V8's baseline tier, the second in its optimising one.
        for (let k = 0; ; k++) {
          const rd = await rq(1, n);
          const wr = await rq(2, n);
          if (k === 1) return { read: +(u64At(rd, 0) / n).toFixed(2), write: +(u64At(wr, 0) / n).toFixed(2) };
        }
      };
      const gated = await regLoops(drv);
      out.regReadNs = gated.read;
      out.regWriteNs = gated.write;
      await drv.stop();
      for (const [mode, key] of [
        ['record-writes', 'RecordWrites'],
        ['off', 'JsImports'],
      ] as const) {
        const d = await host.load(join(root, 'build', 'drivers', 'bench.wasm'), dev, {
          name: `bench-${mode}`,
          registerGate: mode,
          limits: { deadlineMs: 120_000 },
        });
        const r = await regLoops(d);
        out[`regReadNs${key}`] = r.read;
        out[`regWriteNs${key}`] = r.write;
        await d.stop();
      }
      const c = JSON.parse(await runC(bin, ['regs', String(n * 10)], [regsFd], false));
      out.regReadNsC = +c.readNs.toFixed(3);
      out.regWriteNsC = +c.writeNs.toFixed(3);
      const m = native.mapFd(regsFd, 4096, 0);
      const u32 = new Uint32Array(m.buffer());
      let sum = 0;
      const j0 = process.hrtime.bigint();
      for (let i = 0; i < n * 10; i++) sum += u32[i & 7];
      out.regReadNsJs = +(Number(process.hrtime.bigint() - j0) / (n * 10)).toFixed(3);
      m.close();
      void sum;
      const over = (k: string) => (+out[k] - +out.regReadNsC).toFixed(1);
      const overW = (k: string) => (+out[k] - +out.regWriteNsC).toFixed(1);
      say(`register read   C ${out.regReadNsC} ns   plain JS on the mapping ${out.regReadNsJs} ns`);
      say(`  gate, every access recorded (default)   ${out.regReadNs} ns   overhead ${over('regReadNs')} ns`);
      say(
        `  gate, writes recorded                   ${out.regReadNsRecordWrites} ns   overhead ${over('regReadNsRecordWrites')} ns`,
      );
      say(
        `  gate off (JS imports)                   ${out.regReadNsJsImports} ns   overhead ${over('regReadNsJsImports')} ns`,
      );
      say(`register write  C ${out.regWriteNsC} ns`);
      say(`  gate (default)                          ${out.regWriteNs} ns   overhead ${overW('regWriteNs')} ns`);
      say(
        `  gate off (JS imports)                   ${out.regWriteNsJsImports} ns   overhead ${overW('regWriteNsJsImports')} ns`,
      );
      drv2 = await host.load(join(root, 'build', 'drivers', 'bench.wasm'), dev, {
        name: 'bench',
        limits: { deadlineMs: 120_000 },
      });
    }
    const req = async (op: number, ...args: number[]) => drv2.request(op, le32(...args));

    // --- DMA window vs plain linear memory --------------------------------------------------------
    const mn = o.quick ? 1_000_000 : 50_000_000;
    if (want('dma')) {
      // warm up both loops first: the optimising tier compiles in the background
      for (let k = 0; k < 3; k++) await req(3, mn / 20, k & 1);
      await new Promise((res) => setTimeout(res, 100));
      const plain = u64At(await req(3, mn, 0), 0);
      const win = u64At(await req(3, mn, 1), 0);
      out.dmaWindowNs = +(win / mn).toFixed(3);
      out.linearMemoryNs = +(plain / mn).toFixed(3);
      out.dmaWindowRatio = +(win / plain).toFixed(3);
      say(
        `DMA window load ${out.dmaWindowNs} ns   linear memory ${out.linearMemoryNs} ns   ratio ${out.dmaWindowRatio}`,
      );
    }

    // --- interrupt wake-up latency (both sides pinned to CPU 0 when taskset works) ---------------
    if (want('irq')) {
      const rounds = o.quick ? 300 : 10_000;
      const pinned = canPin();
      out.irqPinned = pinned ? 'cpu0' : 'no (taskset failed)';
      try {
        const lat = await irqLatency({ bin, root, rounds, pinned, irqFd, dmaFd, wait: () => req(4, rounds) });
        Object.assign(out, lat.figures);
        say(`irq wake-up, pinger a thread of the waiter's process (the issue's setup)`);
        say(
          `  sandbox median ${out.irqMedianUs} us p99 ${out.irqP99Us} us   C median ${out.irqMedianUsC} us p99 ${out.irqP99UsC} us   ratios ${out.irqMedianRatio} / ${out.irqP99Ratio}  (${rounds} round trips, pinned: ${out.irqPinned})`,
        );
        say(
          `  where it goes (a JS thread in pollRead, no Wasm): poll() returns after median ${out.irqMedianUsPollReturn} us p99 ${out.irqP99UsPollReturn} us; JavaScript resumes after median ${out.irqMedianUsJsWaiter} us p99 ${out.irqP99UsJsWaiter} us`,
        );
        say(`irq wake-up, pinger another process (the waiter's address space switched in on each wake-up)`);
        say(
          `  sandbox median ${out.irqMedianUsProcess} us p99 ${out.irqP99UsProcess} us   C median ${out.irqMedianUsProcessC} us p99 ${out.irqP99UsProcessC} us   ratios ${out.irqMedianRatioProcess} / ${out.irqP99RatioProcess}`,
        );
        if (o.plot) {
          mkdirSync(outDir(o), { recursive: true });
          writeCdf(join(outDir(o), 'irq-cdf.svg'), lat.sandbox, lat.c);
        }
        // The spread: one draw says little (the tail moved 1.6-3.7x between runs on the same code).
        const per = o.quick ? 200 : 2000;
        const spread = [];
        for (let k = 0; k < 5; k++)
          spread.push(await irqRound({ bin, root, rounds: per, pinned, irqFd, dmaFd, wait: () => req(4, per) }));
        for (const [k, r] of spread.entries())
          for (const [key, v] of Object.entries(r)) out[`irqRound${k + 1}${key[0].toUpperCase()}${key.slice(1)}`] = v;
        say(`irq wake-up, same process, five rounds of ${per} (median / p99 us, sandbox vs C, ratios):`);
        for (const [k, r] of spread.entries())
          say(
            `  round ${k + 1}: ${r.medianUs} / ${r.p99Us}   C ${r.medianUsC} / ${r.p99UsC}   ratios ${r.medianRatio} / ${r.p99Ratio}`,
          );
      } finally {
        if (pinned) unpin();
      }
    }

    // --- ring forwarding (device: bench/native.c ring-device, fair to both drivers) -------------
    const ms = o.quick ? 150 : 1000;
    for (const batch of want('ring') ? [1, 8, 32, 64] : []) {
      const wasmDev = runC(bin, ['ring-device', String(ms + 400)], [regsFd, dmaFd], false);
      await new Promise((res) => setTimeout(res, 50));
      const fw = u64At(await req(5, ms, batch), 0);
      await wasmDev;
      const cDev = runC(bin, ['ring-device', String(ms + 400)], [regsFd, dmaFd], false);
      await new Promise((res) => setTimeout(res, 50));
      const cfw = JSON.parse(
        await runC(bin, ['ring-driver', String(ms), String(batch)], [regsFd, dmaFd], false),
      ).forwarded;
      const dv = JSON.parse(await cDev);
      if (dv.errors) throw new Error(`bench: the ring device saw ${dv.errors} out-of-order or corrupt packets`);
      out[`ringMppsBatch${batch}`] = +(fw / ms / 1000).toFixed(3);
      out[`ringMppsBatch${batch}C`] = +(cfw / ms / 1000).toFixed(3);
      out[`ringRatioBatch${batch}`] = +(fw / cfw).toFixed(3);
      say(
        `ring batch ${String(batch).padStart(2)}   sandbox ${out[`ringMppsBatch${batch}`]} Mpps   C ${out[`ringMppsBatch${batch}C`]} Mpps   ratio ${out[`ringRatioBatch${batch}`]}`,
      );
    }
  } finally {
    await host.close();
  }

  // --- forwarding with the real e1000 driver (device: bench/native.c e1000-device) --------------
  if (want('e1000')) Object.assign(out, await benchE1000({ root, bin, quick: o.quick, say, runC }));

  // --- lifecycle figures -------------------------------------------------------------------------
  if (want('lifecycle')) {
    const rl = await measureReload(o.quick ? 50 : 500);
    out.reloadSwapMedianMs = +rl.median.toFixed(3);
    out.reloadSwapP99Ms = +rl.p99.toFixed(3);
    say(
      `load to probed  ${out.loadToProbedMs} ms   reload swap median ${out.reloadSwapMedianMs} ms p99 ${out.reloadSwapP99Ms} ms`,
    );
    out.crashToServingMs = await crashToServing(root, o.quick ? 3 : 20);
    say(`crash to serving again (restart, reset, probe, first answer) median ${out.crashToServingMs} ms`);
    out.loadWarmToProbedMs = await warmLoad(root, o.quick ? 3 : 10);
    say(`load to probed, warm (driver compiled, spare worker booted) median ${out.loadWarmToProbedMs} ms`);
    for (const n of o.quick ? [1, 5] : [1, 10, 100]) {
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
        o.quick ? 3000 : 60_000,
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
  }
  if (want('languages')) Object.assign(out, await benchLanguages(root, !!o.quick, say));
  out.machine = `${cpus().length} x ${cpus()[0]?.model ?? '?'}, node ${process.version}`;
  if (o.json) console.log(JSON.stringify(out));
  // The user's folder, never a tracked file: a full run, a --quick run and an --only run each keep their own.
  mkdirSync(outDir(o), { recursive: true });
  const file = o.only ? 'partial.json' : o.quick ? 'quick.json' : 'results.json';
  writeFileSync(join(outDir(o), file), `${JSON.stringify(out, null, 2)}\n`);
  return out;
}

const outDir = (o: BenchOptions) => resolve(o.out ?? 'bench-results');

/**
 * Interrupt wake-up: a pinger stamps CLOCK_MONOTONIC into the handshake page (the DMA window's first
 * words, see bench/native.c) and writes the eventfd; the waiter records now - stamp. Two setups:
 * the pinger a thread of the waiter's process (a JS worker for the sandbox, a pthread for C), and the
 * pinger another process (bench/native.c irq-pinger for both).
 */
async function irqLatency(a: {
  bin: string;
  root: string;
  rounds: number;
  pinned: boolean;
  irqFd: number;
  dmaFd: number;
  wait: () => Promise<Uint8Array>;
}) {
  const native = loadNative();
  const page = native.mapFd(a.dmaFd, 1 << 20, 0);
  const words = new BigUint64Array(page.buffer());
  const take = () => Array.from(words.subarray(16, 16 + a.rounds), (x) => Number(x) / 1000).sort((x, y) => x - y);
  const checked = (r: Uint8Array) => {
    if (decodeResponse(r).u32[0] !== a.rounds) throw new Error('bench: the driver missed wake-ups');
  };
  try {
    // 1. pinger thread in this process: a worker running the same loop as bench/native.c irq-pinger
    words.fill(0n, 0, 16 + a.rounds);
    const pinger = new Worker(PINGER, {
      eval: true,
      workerData: { addon: nativeBinaryPath(), irqFd: a.irqFd, dmaFd: a.dmaFd, rounds: a.rounds },
    });
    const pingerDone = once(pinger, 'exit');
    checked(await a.wait());
    const [code] = await pingerDone;
    if (code !== 0) throw new Error(`bench: the pinger thread exited with ${code}`);
    const sandbox = take();
    words.fill(0n, 0, 16 + a.rounds);
    const cfd = native.eventfdCreate(0);
    try {
      await runC(a.bin, ['irq-threads', String(a.rounds)], [cfd, a.dmaFd], a.pinned);
    } finally {
      native.close(cfd);
    }
    const c = take();
    // 2. pinger in another process
    words.fill(0n, 0, 16 + a.rounds);
    const p1 = runC(a.bin, ['irq-pinger', String(a.rounds)], [a.irqFd, a.dmaFd], a.pinned);
    checked(await a.wait());
    await p1;
    const sandboxP = take();
    words.fill(0n, 0, 16 + a.rounds);
    const cfd2 = native.eventfdCreate(0);
    try {
      await Promise.all([
        runC(a.bin, ['irq-waiter', String(a.rounds)], [cfd2, a.dmaFd], a.pinned),
        runC(a.bin, ['irq-pinger', String(a.rounds)], [cfd2, a.dmaFd], a.pinned),
      ]);
    } finally {
      native.close(cfd2);
    }
    const cP = take();
    // 3. the floor under the sandbox's path: a JS thread doing what irq_wait does natively (pollRead),
    //    with no Wasm and no bookkeeping; pollRead stamps the clock as poll() returns, so the wake-up
    //    splits into the kernel's part and the return into JavaScript.
    words.fill(0n, 0, 16 + 2 * a.rounds);
    const efd = native.eventfdCreate(0);
    let js: number[], nat: number[];
    try {
      const data = { addon: nativeBinaryPath(), irqFd: efd, dmaFd: a.dmaFd, rounds: a.rounds };
      const waiter = new Worker(JS_WAITER, { eval: true, workerData: data });
      const pinger2 = new Worker(PINGER, { eval: true, workerData: data });
      const codes = await Promise.all([once(waiter, 'exit'), once(pinger2, 'exit')]);
      if (codes.some(([c]) => c !== 0)) throw new Error('bench: the JS waiter or its pinger failed');
      js = take();
      nat = Array.from(words.subarray(16 + a.rounds, 16 + 2 * a.rounds), (x) => Number(x) / 1000).sort((x, y) => x - y);
    } finally {
      native.close(efd);
    }
    const f = (v: number) => +v.toFixed(2);
    const figures = {
      irqMedianUs: f(pct(sandbox, 0.5)),
      irqP99Us: f(pct(sandbox, 0.99)),
      irqMedianUsC: f(pct(c, 0.5)),
      irqP99UsC: f(pct(c, 0.99)),
      irqMedianRatio: f(pct(sandbox, 0.5) / pct(c, 0.5)),
      irqP99Ratio: f(pct(sandbox, 0.99) / pct(c, 0.99)),
      irqMedianUsProcess: f(pct(sandboxP, 0.5)),
      irqP99UsProcess: f(pct(sandboxP, 0.99)),
      irqMedianUsProcessC: f(pct(cP, 0.5)),
      irqP99UsProcessC: f(pct(cP, 0.99)),
      irqMedianRatioProcess: f(pct(sandboxP, 0.5) / pct(cP, 0.5)),
      irqP99RatioProcess: f(pct(sandboxP, 0.99) / pct(cP, 0.99)),
      irqMedianUsPollReturn: f(pct(nat, 0.5)),
      irqP99UsPollReturn: f(pct(nat, 0.99)),
      irqMedianUsJsWaiter: f(pct(js, 0.5)),
      irqP99UsJsWaiter: f(pct(js, 0.99)),
    };
    return { figures, sandbox, c };
  } finally {
    page.close();
  }
}

/** One round of the same-process wake-up, sandbox then C, for the spread over rounds. */
async function irqRound(a: {
  bin: string;
  root: string;
  rounds: number;
  pinned: boolean;
  irqFd: number;
  dmaFd: number;
  wait: () => Promise<Uint8Array>;
}) {
  const native = loadNative();
  const page = native.mapFd(a.dmaFd, 1 << 20, 0);
  const words = new BigUint64Array(page.buffer());
  const take = () => Array.from(words.subarray(16, 16 + a.rounds), (x) => Number(x) / 1000).sort((x, y) => x - y);
  try {
    words.fill(0n, 0, 16 + a.rounds);
    const pinger = new Worker(PINGER, {
      eval: true,
      workerData: {
        addon: nativeBinaryPath(),
        irqFd: a.irqFd,
        dmaFd: a.dmaFd,
        rounds: a.rounds,
      },
    });
    const done = once(pinger, 'exit');
    if (decodeResponse(await a.wait()).u32[0] !== a.rounds) throw new Error('bench: the driver missed wake-ups');
    await done;
    const s = take();
    words.fill(0n, 0, 16 + a.rounds);
    const cfd = native.eventfdCreate(0);
    try {
      await runC(a.bin, ['irq-threads', String(a.rounds)], [cfd, a.dmaFd], a.pinned);
    } finally {
      native.close(cfd);
    }
    const c = take();
    const f = (v: number) => +v.toFixed(2);
    return {
      medianUs: f(pct(s, 0.5)),
      p99Us: f(pct(s, 0.99)),
      medianUsC: f(pct(c, 0.5)),
      p99UsC: f(pct(c, 0.99)),
      medianRatio: f(pct(s, 0.5) / pct(c, 0.5)),
      p99Ratio: f(pct(s, 0.99) / pct(c, 0.99)),
    };
  } finally {
    page.close();
  }
}

/** A JS thread waiting the way irq_wait does (native pollRead), without Wasm: the floor of that path. */
const JS_WAITER = `
const { workerData: d } = require('node:worker_threads');
const native = require(d.addon);
const map = native.mapFd(d.dmaFd, 1 << 20, 0);
const pg = new BigUint64Array(map.buffer());
const fds = new Int32Array([d.irqFd, -1]);
const out = new Float64Array(2);
for (let i = 1; i <= d.rounds; i++) {
  Atomics.store(pg, 0, BigInt(i));
  const bits = native.pollRead(fds, 5000, 8, out);
  const t = process.hrtime.bigint();
  if (!(bits & 0x80000000)) throw new Error('waiter: no wake-up in round ' + i);
  pg[16 + i - 1] = t - pg[1];
  pg[16 + d.rounds + i - 1] = BigInt(Math.round(out[1])) - pg[1];
}
map.close();
`;

/** The pinger thread: bench/native.c irq_pinger in JavaScript (CommonJS: an eval worker). */
const PINGER = `
const { workerData: d } = require('node:worker_threads');
const native = require(d.addon);
const map = native.mapFd(d.dmaFd, 1 << 20, 0);
const pg = new BigUint64Array(map.buffer());
// No allocation in the loops (performance.now(), one BigInt per round): the pinger's own garbage
// collections would land on the measured CPU.
for (let i = 1; i <= d.rounds; i++) {
  const want = BigInt(i);
  const deadline = performance.now() + 5000;
  while (Atomics.load(pg, 0) !== want) if (performance.now() > deadline) throw new Error('pinger: waiter not ready for ' + i);
  const settle = performance.now() + 0.02; // give the waiter time to block in its wait
  while (performance.now() < settle);
  pg[1] = process.hrtime.bigint();
  pg[2] = want;
  native.eventfdWrite(d.irqFd, 1);
}
map.close();
`;

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

/** A latency CDF as SVG: x = µs (log), y = fraction of wake-ups. */
function writeCdf(file: string, sandbox: number[], c: number[]): void {
  const W = 640,
    H = 360,
    L = 60,
    B = 40;
  const lo = Math.max(0.1, Math.min(sandbox[0], c[0])),
    hi = Math.max(sandbox.at(-1)!, c.at(-1)!);
  const x = (v: number) =>
    L + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1)) * (W - L - 20);
  const y = (f: number) => H - B - f * (H - B - 20);
  const line = (d: number[]) =>
    d
      .filter((_, i) => i % Math.max(1, Math.floor(d.length / 400)) === 0)
      .map((v, i, a) => `${x(v).toFixed(1)},${y((i + 1) / a.length).toFixed(1)}`)
      .join(' ');
  const ticks = [1, 10, 100, 1000, 10000].filter((t) => t >= lo && t <= hi * 1.01);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="16" text-anchor="middle">Interrupt wake-up latency CDF (${sandbox.length} round trips each)</text>
<line x1="${L}" y1="${H - B}" x2="${W - 20}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="20" x2="${L}" y2="${H - B}" stroke="black"/>
${ticks.map((t) => `<text x="${x(t)}" y="${H - B + 16}" text-anchor="middle">${t} µs</text>`).join('\n')}
${[0, 0.5, 0.99, 1].map((f) => `<text x="${L - 6}" y="${y(f) + 4}" text-anchor="end">${f}</text>`).join('\n')}
<polyline fill="none" stroke="#c0392b" stroke-width="2" points="${line(sandbox)}"/>
<polyline fill="none" stroke="#2c3e50" stroke-width="2" points="${line(c)}"/>
<text x="${W - 200}" y="${H - B - 40}" fill="#c0392b">sandboxed driver (Wasm wait)</text>
<text x="${W - 200}" y="${H - B - 24}" fill="#2c3e50">C thread (poll + read)</text>
</svg>
`;
  writeFileSync(file, svg);
}
