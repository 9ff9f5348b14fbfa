// npm run bench: the sandbox against native C on the same machine, in the same run, on the same memory.
// Every figure is printed beside its baseline and as a ratio; with --json the last line is one object.
// The sections of their own: irq.ts, e1000.ts, lifecycle.ts, languages.ts; the C baseline: c.ts.

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import type { Driver } from '../driver.ts';
import { Host } from '../host.ts';
import { loadNative, packageRoot } from '../native.ts';
import { compileC, le32, runC, u64At } from './c.ts';
import { benchE1000 } from './e1000.ts';
import { benchIrq } from './irq.ts';
import { benchLanguages } from './languages.ts';
import { benchLifecycle } from './lifecycle.ts';

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
        // A short run of both loops first, below V8's tier-up budget, so that when the request
        // function tiers up its inliner has call counts for the register calls of both loops (it
        // inlines only call sites that have run); then four runs, the best of each kept: the first
        // runs in V8's baseline tier, and on a busy machine the optimised code may come a run later.
        await rq(1, 10_000);
        await rq(2, 10_000);
        let read = Infinity,
          write = Infinity;
        for (let k = 0; k < 4; k++) {
          read = Math.min(read, u64At(await rq(1, n), 0) / n);
          write = Math.min(write, u64At(await rq(2, n), 0) / n);
        }
        return { read: +read.toFixed(2), write: +write.toFixed(2) };
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
      // the recorder's work done by cc -O2 around the same access: the floor of a recorded access here
      out.regReadRecordedNsC = +c.readRecordedNs.toFixed(3);
      out.regWriteRecordedNsC = +c.writeRecordedNs.toFixed(3);
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
        `  C doing the same recording (the floor)   ${out.regReadRecordedNsC} ns   overhead ${over('regReadRecordedNsC')} ns   (the gate ${(+out.regReadNs - +out.regReadRecordedNsC).toFixed(1)} ns above it)`,
      );
      say(
        `  gate, writes recorded                   ${out.regReadNsRecordWrites} ns   overhead ${over('regReadNsRecordWrites')} ns`,
      );
      say(
        `  gate off (JS imports)                   ${out.regReadNsJsImports} ns   overhead ${over('regReadNsJsImports')} ns`,
      );
      say(`register write  C ${out.regWriteNsC} ns`);
      say(`  gate (default)                          ${out.regWriteNs} ns   overhead ${overW('regWriteNs')} ns`);
      say(
        `  C doing the same recording (the floor)   ${out.regWriteRecordedNsC} ns   overhead ${overW('regWriteRecordedNsC')} ns   (the gate ${(+out.regWriteNs - +out.regWriteRecordedNsC).toFixed(1)} ns above it)`,
      );
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

    // --- interrupt wake-up latency (irq.ts) ------------------------------------------------------
    if (want('irq')) {
      const plotDir = o.plot ? outDir(o) : undefined;
      // The JavaScript wait's round needs the device to itself: an idle driver's worker reads the
      // interrupt eventfd too. The default driver comes back for the sections after this one.
      const jsWait = async (use: (r: (op: number, ...args: number[]) => Promise<Uint8Array>) => Promise<void>) => {
        await drv2.stop();
        const d = await host.load(join(root, 'build', 'drivers', 'bench.wasm'), dev, {
          name: 'bench-js-wait',
          irqWait: 'js',
          limits: { deadlineMs: 120_000 },
        });
        try {
          if (d.status().irqWait !== 'js') throw new Error('bench: irqWait js gave the native wait');
          await use((op, ...args) => d.request(op, le32(...args)));
        } finally {
          await d.stop();
          drv2 = await host.load(join(root, 'build', 'drivers', 'bench.wasm'), dev, {
            name: 'bench',
            limits: { deadlineMs: 120_000 },
          });
        }
      };
      if (drv2.status().irqWait !== 'native') throw new Error('bench: the bench driver should wait natively');
      Object.assign(
        out,
        await benchIrq({ bin, root, quick: o.quick, irqFd, dmaFd, request: req, say, plotDir, jsWait }),
      );
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

  // --- lifecycle figures (lifecycle.ts) ---------------------------------------------------------
  if (want('lifecycle'))
    Object.assign(out, await benchLifecycle({ root, quick: o.quick, say, loadToProbedMs: out.loadToProbedMs }));
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
