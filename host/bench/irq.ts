// npm run bench, section `irq`: interrupt wake-up latency of a sandboxed driver against a C thread on
// the same eventfd and handshake page (bench/native.c), both sides pinned to CPU 0 when taskset works;
// with --plot, the CDF as an SVG.

import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadNative, nativeBinaryPath } from '../native.ts';
import { decodeResponse } from '../payload.ts';
import { canPin, pct, runC, unpin } from './c.ts';

export async function benchIrq(a: {
  bin: string;
  root: string;
  quick: boolean;
  irqFd: number;
  dmaFd: number;
  /** A request to the bench driver (op 4: wait for `rounds` interrupts). */
  request: (op: number, ...args: number[]) => Promise<Uint8Array>;
  say: (s: string) => void;
  /** Write irq-cdf.svg here (--plot). */
  plotDir?: string;
  /**
   * Run `use` with the request of the same driver loaded with irqWait 'js' (the JavaScript wait) on
   * the device, for one more round: what the native wait changes, against C in the same round.
   */
  jsWait?: (use: (request: (op: number, ...args: number[]) => Promise<Uint8Array>) => Promise<void>) => Promise<void>;
}): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  const say = a.say;
  const rounds = a.quick ? 300 : 10_000;
  const pinned = canPin();
  out.irqPinned = pinned ? 'cpu0' : 'no (taskset failed)';
  try {
    const lat = await irqLatency({
      bin: a.bin,
      root: a.root,
      rounds,
      pinned,
      irqFd: a.irqFd,
      dmaFd: a.dmaFd,
      wait: () => a.request(4, rounds),
    });
    Object.assign(out, lat.figures);
    say(`irq wake-up, pinger a thread of the waiter's process (the issue's setup)`);
    say(
      `  sandbox median ${out.irqMedianUs} us p99 ${out.irqP99Us} us   C median ${out.irqMedianUsC} us p99 ${out.irqP99UsC} us   ratios ${out.irqMedianRatio} / ${out.irqP99Ratio}  (${rounds} round trips, pinned: ${out.irqPinned})`,
    );
    say(
      `  where it goes (a JS thread in pollRead, no Wasm): poll() returns after median ${out.irqMedianUsPollReturn} us p99 ${out.irqP99UsPollReturn} us; its read() after median ${out.irqMedianUsReadReturn} us p99 ${out.irqP99UsReadReturn} us; JavaScript resumes after median ${out.irqMedianUsJsWaiter} us p99 ${out.irqP99UsJsWaiter} us`,
    );
    say(`irq wake-up, pinger another process (the waiter's address space switched in on each wake-up)`);
    say(
      `  sandbox median ${out.irqMedianUsProcess} us p99 ${out.irqP99UsProcess} us   C median ${out.irqMedianUsProcessC} us p99 ${out.irqP99UsProcessC} us   ratios ${out.irqMedianRatioProcess} / ${out.irqP99RatioProcess}`,
    );
    if (a.plotDir) {
      mkdirSync(a.plotDir, { recursive: true });
      writeCdf(join(a.plotDir, 'irq-cdf.svg'), lat.sandbox, lat.c);
    }
    // The spread: one draw says little (the tail moved 1.6-3.7x between runs on the same code).
    // Each round interleaves its two sides in blocks (sandbox, C, sandbox, C, ...): the machine drifts
    // between phases by as much as the two paths differ (a trace showed both sides' kernel wake-up
    // move together from block to block), so a round that ran one side and then the other measured
    // the drift too. Both sides of a round see the same stretches of time.
    const per = a.quick ? 200 : 2000;
    const blocks = a.quick ? 2 : 10;
    /** One interleaved round of the driver that `request` reaches. */
    const round = (request: typeof a.request) =>
      irqRound(
        {
          bin: a.bin,
          root: a.root,
          rounds: per / blocks,
          pinned,
          irqFd: a.irqFd,
          dmaFd: a.dmaFd,
          wait: () => request(4, per / blocks),
        },
        blocks,
      );
    const spread = [];
    for (let k = 0; k < 5; k++) spread.push(await round(a.request));
    for (const [k, r] of spread.entries())
      for (const [key, v] of Object.entries(r)) out[`irqRound${k + 1}${key[0].toUpperCase()}${key.slice(1)}`] = v;
    say(
      `irq wake-up, same process, five rounds of ${per}, each in ${blocks} alternating blocks of sandbox and C (median / p99 us, sandbox vs C, ratios):`,
    );
    for (const [k, r] of spread.entries())
      say(
        `  round ${k + 1}: ${r.medianUs} / ${r.p99Us}   C ${r.medianUsC} / ${r.p99UsC}   ratios ${r.medianRatio} / ${r.p99Ratio}`,
      );
    await a.jsWait?.(async (request) => {
      // A round first, not kept: the driver and its worker are new (the native rounds come after the
      // 10,000 draw, warm), and their first wake-ups run in V8's baseline tier.
      await round(request);
      const r = await round(request);
      for (const [key, v] of Object.entries(r)) out[`irqRoundJsWait${key[0].toUpperCase()}${key.slice(1)}`] = v;
      say(
        `  the same round with the JavaScript wait (irqWait 'js'): ${r.medianUs} / ${r.p99Us}   C ${r.medianUsC} / ${r.p99UsC}   ratios ${r.medianRatio} / ${r.p99Ratio}`,
      );
    });
  } finally {
    if (pinned) unpin();
  }
  return out;
}

/** What both wake-up measurements need: the bench binary, the device's fds and the driver's wait. */
interface IrqBench {
  bin: string;
  root: string;
  rounds: number;
  pinned: boolean;
  irqFd: number;
  dmaFd: number;
  wait: () => Promise<Uint8Array>;
}

/** The C side of the same-process wake-up: bench/native.c irq-threads (pinger and waiter threads) on a fresh eventfd. */
async function cThreads(a: IrqBench, native: ReturnType<typeof loadNative>): Promise<void> {
  const cfd = native.eventfdCreate(0);
  try {
    await runC(a.bin, ['irq-threads', String(a.rounds)], [cfd, a.dmaFd], a.pinned);
  } finally {
    native.close(cfd);
  }
}

/** The handshake page (the DMA window's first MiB) and `take`: the recorded wake-ups in µs, sorted. */
function handshake(a: IrqBench) {
  const native = loadNative();
  const page = native.mapFd(a.dmaFd, 1 << 20, 0);
  const words = new BigUint64Array(page.buffer());
  const take = () => Array.from(words.subarray(16, 16 + a.rounds), (x) => Number(x) / 1000).sort((x, y) => x - y);
  return { native, page, words, take };
}

/**
 * Interrupt wake-up: a pinger stamps CLOCK_MONOTONIC into the handshake page (the DMA window's first
 * words, see bench/native.c) and writes the eventfd; the waiter records now - stamp. Two setups:
 * the pinger a thread of the waiter's process (a JS worker for the sandbox, a pthread for C), and the
 * pinger another process (bench/native.c irq-pinger for both).
 */
async function irqLatency(a: IrqBench) {
  const { native, page, words, take } = handshake(a);
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
    await cThreads(a, native);
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
    words.fill(0n, 0, 16 + 3 * a.rounds);
    const efd = native.eventfdCreate(0);
    let js: number[], nat: number[], natRead: number[];
    try {
      const data = { addon: nativeBinaryPath(), irqFd: efd, dmaFd: a.dmaFd, rounds: a.rounds };
      const waiter = new Worker(JS_WAITER, { eval: true, workerData: data });
      const pinger2 = new Worker(PINGER, { eval: true, workerData: data });
      const codes = await Promise.all([once(waiter, 'exit'), once(pinger2, 'exit')]);
      if (codes.some(([c]) => c !== 0)) throw new Error('bench: the JS waiter or its pinger failed');
      js = take();
      const part = (k: number) =>
        Array.from(words.subarray(16 + k * a.rounds, 16 + (k + 1) * a.rounds), (x) => Number(x) / 1000).sort(
          (x, y) => x - y,
        );
      nat = part(1);
      natRead = part(2);
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
      irqMedianUsReadReturn: f(pct(natRead, 0.5)),
      irqP99UsReadReturn: f(pct(natRead, 0.99)),
      irqMedianUsJsWaiter: f(pct(js, 0.5)),
      irqP99UsJsWaiter: f(pct(js, 0.99)),
    };
    return { figures, sandbox, c };
  } finally {
    page.close();
  }
}

/**
 * One round of the same-process wake-up for the spread over rounds: `blocks` blocks of `a.rounds`
 * wake-ups each side, alternating sandbox and C; the round's figures are over all its samples.
 */
async function irqRound(a: IrqBench, blocks: number) {
  const { native, page, words } = handshake(a);
  const raw = () => Array.from(words.subarray(16, 16 + a.rounds), (x) => Number(x) / 1000);
  const s: number[] = [],
    c: number[] = [];
  try {
    // One pinger thread for the round (a new one per block would put its start and warm-up into
    // every block's first wake-ups); it waits on `gate` between blocks, C runs meanwhile.
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const pinger = new Worker(PINGER, {
      eval: true,
      workerData: {
        addon: nativeBinaryPath(),
        irqFd: a.irqFd,
        dmaFd: a.dmaFd,
        rounds: a.rounds,
        blocks,
        gate: gate.buffer,
      },
    });
    const done = once(pinger, 'exit');
    for (let b = 0; b < blocks; b++) {
      words.fill(0n, 0, 16 + a.rounds);
      Atomics.store(gate, 0, b + 1);
      Atomics.notify(gate, 0);
      if (decodeResponse(await a.wait()).u32[0] !== a.rounds) throw new Error('bench: the driver missed wake-ups');
      s.push(...raw());
      words.fill(0n, 0, 16 + a.rounds);
      await cThreads(a, native);
      c.push(...raw());
    }
    const [code] = await done;
    if (code !== 0) throw new Error(`bench: the pinger thread exited with ${code}`);
    s.sort((x, y) => x - y);
    c.sort((x, y) => x - y);
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
const out = new Float64Array(3); // [1] stamped as poll() returned, [2] after the read
for (let i = 1; i <= d.rounds; i++) {
  Atomics.store(pg, 0, BigInt(i));
  const bits = native.pollRead(fds, 5000, 8, out);
  const t = process.hrtime.bigint();
  if (!(bits & 0x80000000)) throw new Error('waiter: no wake-up in round ' + i);
  pg[16 + i - 1] = t - pg[1];
  pg[16 + d.rounds + i - 1] = BigInt(Math.round(out[1])) - pg[1];
  pg[16 + 2 * d.rounds + i - 1] = BigInt(Math.round(out[2])) - pg[1];
}
map.close();
`;

/** The pinger thread: bench/native.c irq_pinger in JavaScript (CommonJS: an eval worker). */
const PINGER = `
const { workerData: d } = require('node:worker_threads');
const native = require(d.addon);
const map = native.mapFd(d.dmaFd, 1 << 20, 0);
// Nothing allocated in the loops: the pinger's scavenges would run on the measured CPU (the process is
// pinned). So no BigInt (Atomics.load on a BigUint64Array makes one per spin) and no clock that returns
// its value (performance.now() made a heap number per read): the words are read and written as u32
// halves (little-endian) and the clock is read into a Float64Array by native code.
// The stamp and the eventfd write are one native call (eventfdWriteStamped), as bench/native.c's pinger
// does them back to back: monotonicInto's return, the stores and eventfdWrite's argument checks between
// the two added ~0.2 us to every wake-up measured (docs/benchmarks.md, "The interrupt tail").
const w = new Uint32Array(map.buffer(), 0, 6); // [0,1] the waiter's ready round, [2,3] the stamp, [4,5] the round
const words = new BigUint64Array(map.buffer(), 0, 3);
const clk = new Float64Array(1);
// d.gate (irqRound): one pinger for a round's blocks; block b starts once the main thread set gate[0] > b.
const gate = d.gate ? new Int32Array(d.gate) : undefined;
for (let b = 0; b < (d.blocks ?? 1); b++) {
if (gate) while (Atomics.load(gate, 0) <= b) Atomics.wait(gate, 0, b);
for (let i = 1; i <= d.rounds; i++) {
  native.monotonicInto(clk, 0);
  const deadline = clk[0] + 5e9;
  while (Atomics.load(w, 0) !== i) {
    native.monotonicInto(clk, 0);
    if (clk[0] > deadline) throw new Error('pinger: waiter not ready for ' + i);
  }
  native.monotonicInto(clk, 0);
  const settle = clk[0] + 20000; // give the waiter time to block in its wait
  do native.monotonicInto(clk, 0);
  while (clk[0] < settle);
  w[5] = 0;
  w[4] = i;
  native.eventfdWriteStamped(d.irqFd, words, 1);
}
}
map.close();
`;

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
