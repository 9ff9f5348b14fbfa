// npm run bench, section `e1000`: forwarding with the real e1000 driver (guest-drivers/e1000, loaded
// through Host.load under its manifest's grant) against an ixy-style C driver, on one device.
//
// The device is bench/native.c `e1000-device`, another process: BAR0 and the DMA memory are memfds
// mapped by it, by the sandboxed driver and by the C driver alike, with the 82540EM's register offsets
// and legacy descriptors. It polls (a memfd has no access side effects): it fills every RX buffer the
// driver gives it with a numbered 64-byte frame and takes every TX descriptor the driver hands over,
// checking that each frame is the next one, intact, and writing DD back. The driver reflects RX to TX.
//
// Three drivers in the same run, per batch size:
//   - sandbox, descriptor firewall on: the device spec as a UIO device gives it (no IOMMU), so the host
//     owns the real rings and every RDT/TDT write is checked and copied (host/sandbox/ring-firewall.ts);
//   - sandbox, firewall off: the same spec declared IOMMU-confined (as under VFIO);
//   - C: bench/native.c `e1000-driver`.
// The sandboxed driver forwards inside one request (op 6, forward); the same forwarding driven from
// here through the driver's receive and send requests (two round trips to the driver's worker per
// batch) is measured too, to show what the request path costs.
// Then batch 32 once more in interleaved rounds (`interleaved`): the three drivers in turn, 20 ms each,
// each on a device of its own, pinned; the firewall's overhead from the rounds' ratios.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { DeviceHandle, DeviceSpec } from '../device-spec.ts';
import type { Driver } from '../driver.ts';
import type { Fault } from '../faults.ts';
import { Host } from '../host.ts';
import { loadNative } from '../native.ts';
import { E1000_DMA_BYTES, E1000Client } from '../net/e1000.ts';
import { grantFor, parseManifest } from '../package/manifest.ts';
import { E1000_BAR0_SIZE as BAR0_SIZE, RDBAL, STATUS, TDH, TDT } from '../sim/e1000-defs.ts';
import { canPin, pct, unpin } from './c.ts';
import { fastPathCpuCost, jsFirewallCpuCost } from './e1000-firewall.ts';

type RunC = (bin: string, args: string[], fds: number[], pin: boolean) => Promise<string>;

const DMA_SIZE = E1000_DMA_BYTES;
/** The bus address bench/native.c's e1000-device is told its DMA memory sits at. */
export const E1000_DEVICE_BUS = 0x1000_0000;
/** The register that stops bench/native.c's e1000-device (E_BENCH). */
export const E1000_DEVICE_QUIT = 0x1f000;
const BUS = E1000_DEVICE_BUS;
const BENCH_QUIT = E1000_DEVICE_QUIT;
/** Its pause word (set: it sleeps) and its answer (set while it is paused). */
const BENCH_PAUSE = E1000_DEVICE_QUIT + 4;
const BENCH_PAUSED = E1000_DEVICE_QUIT + 8;
/** The CPU it moves to when it next leaves a pause, plus one (0: it stays where it is). */
const BENCH_CPU = E1000_DEVICE_QUIT + 12;

/** The DeviceSpec of bench/native.c's e1000-device over its BAR0, DMA and interrupt fds. */
export function e1000DeviceSpec(fds: { regs: number; dma: number; irq: number }, iommu = false): DeviceSpec {
  return {
    id: iommu ? 'bench:e1000:iommu' : 'bench:e1000',
    name: `bench e1000 (bench/native.c e1000-device${iommu ? ', declared IOMMU-confined' : ''})`,
    pci: { vendor: 0x8086, device: 0x100e },
    regions: [{ name: 'BAR0', size: BAR0_SIZE, source: { kind: 'fd', fd: fds.regs, offset: 0 } }],
    ports: [],
    dma: [{ name: 'dma', size: DMA_SIZE, bus: BigInt(BUS), source: { kind: 'fd', fd: fds.dma, offset: 0 } }],
    irq: { kind: 'eventfd', eventfd: fds.irq },
    ...(iommu ? { dmaConfinement: 'iommu' as const } : {}),
  };
}
const BATCHES = [1, 8, 32, 64] as const;

interface DeviceReport {
  generated: number;
  transmitted: number;
  errors: number;
  dmaErrors: number;
  resets: number;
  firstError: string;
}

/** One memory-backed e1000 of bench/native.c's `e1000-device`: its BAR0, DMA memory and (unused) eventfd. */
interface BenchDevice {
  reg: Uint32Array;
  fds: { regs: number; dma: number; irq: number };
  spec(iommu: boolean): DeviceSpec;
}

/** A running `e1000-device` process on a BenchDevice. */
interface RunningDevice {
  /** Stop it polling (it sleeps) and wait until it says it has: no DMA is under way after this. */
  pause(): Promise<void>;
  /** Let it poll again, and wait until it does. */
  resume(): Promise<void>;
  /** Wait until it has sent what is still in the TX ring (TDH catches up with TDT). */
  drained(): Promise<void>;
  /** Stop it and check what it counted against what the drivers forwarded (`claimed`). */
  finish(claimed: number): Promise<DeviceReport>;
}

const until = async (what: string, cond: () => boolean, ms = 5000) => {
  for (const t1 = performance.now(); !cond(); await new Promise((r) => setTimeout(r, 1)))
    if (performance.now() - t1 > ms) throw new Error(`bench: the e1000 device did not ${what} within ${ms} ms`);
};

export async function benchE1000(a: {
  root: string;
  bin: string;
  quick: boolean;
  say: (s: string) => void;
  runC: RunC;
}): Promise<Record<string, number | string>> {
  const { root, bin, say } = a;
  const native = loadNative();
  const ms = a.quick ? 150 : 1000;
  const out: Record<string, number | string> = {};
  const num = (k: string) => out[k] as number;
  const manifestPath = join(root, 'guest-drivers', 'e1000', 'manifest.json');
  const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath);
  const driver = join(root, 'build', 'drivers', 'e1000.wasm');
  const fds: number[] = [];
  const maps: { close(): void }[] = [];
  const host = new Host();
  // A fault would restart the driver mid-run and the figures would mean nothing: the run fails instead.
  const faults: string[] = [];
  host.on('fault', (f: Fault) => faults.push(`${f.kind} in ${f.phase}: ${f.message}`));
  // The device polls and so do the drivers: they need a CPU each (on one, each waits for the other's
  // time slice). Not pinned: pinned to CPU 1, the device on a loaded machine waited >100 ms for it and
  // the driver's probe gave up on CTRL.RST; unpinned, the scheduler spreads two spinners on two CPUs
  // (mostly: the interleaved rounds, after the loads, pin; see there).
  const device = (name: string): BenchDevice => {
    const regs = native.memfdCreate(`wasmdrv-bench-e1000-bar0-${name}`, BAR0_SIZE);
    fds.push(regs);
    const dma = native.memfdCreate(`wasmdrv-bench-e1000-dma-${name}`, DMA_SIZE);
    fds.push(dma);
    const irq = native.eventfdCreate(0); // the polled device never raises it
    fds.push(irq);
    const map = native.mapFd(regs, BAR0_SIZE, 0);
    maps.push(map);
    const d = { regs, dma, irq };
    return { reg: new Uint32Array(map.buffer()), fds: d, spec: (iommu) => e1000DeviceSpec(d, iommu) };
  };
  /** Start the device process on `dev` and wait until it has come out of reset (STATUS.LU). */
  const start = async (dev: BenchDevice, runMs: number): Promise<RunningDevice> => {
    const { reg } = dev;
    reg.fill(0);
    const proc = a.runC(
      bin,
      ['e1000-device', String(runMs), `0x${BUS.toString(16)}`],
      [dev.fds.regs, dev.fds.dma],
      false,
    );
    let exited = false;
    proc.then(
      () => (exited = true),
      () => (exited = true),
    );
    const t0 = performance.now();
    while (!(Atomics.load(reg, STATUS >> 2) & 2)) {
      if (exited || performance.now() - t0 > 5000) break;
      await new Promise((r) => setTimeout(r, 1));
    }
    const drained = async () => {
      for (const t1 = performance.now(); performance.now() - t1 < 5000; ) {
        if (Atomics.load(reg, TDH >> 2) === Atomics.load(reg, TDT >> 2)) return;
        await new Promise((r) => setTimeout(r, 1));
      }
    };
    return {
      pause: async () => {
        Atomics.store(reg, BENCH_PAUSE >> 2, 1);
        await until('pause', () => exited || Atomics.load(reg, BENCH_PAUSED >> 2) === 1);
      },
      resume: async () => {
        Atomics.store(reg, BENCH_PAUSE >> 2, 0);
        await until('resume', () => exited || Atomics.load(reg, BENCH_PAUSED >> 2) === 0);
      },
      drained,
      finish: async (claimed) => {
        Atomics.store(reg, BENCH_PAUSE >> 2, 0);
        await drained();
        Atomics.store(reg, BENCH_QUIT >> 2, 1);
        const dev = JSON.parse(await proc) as DeviceReport;
        if (faults.length) throw new Error(`bench: the e1000 driver faulted: ${faults.join('; ')}`);
        if (dev.errors || dev.dmaErrors)
          throw new Error(
            `bench: the e1000 device saw ${dev.errors} out-of-order or corrupt frames and ${dev.dmaErrors} descriptors outside its DMA memory${dev.firstError ? ` (first: ${dev.firstError})` : ''}`,
          );
        if (dev.transmitted !== claimed)
          throw new Error(
            `bench: the e1000 device transmitted ${dev.transmitted} frames, the driver forwarded ${claimed}`,
          );
        return dev;
      },
    };
  };
  /** Run the device process around `work`; returns what it counted. */
  const withDevice = async (dev: BenchDevice, work: (d: RunningDevice) => Promise<number>): Promise<DeviceReport> => {
    const d = await start(dev, 60_000);
    let claimed = 0;
    try {
      claimed = await work(d);
    } catch (err) {
      Atomics.store(dev.reg, BENCH_QUIT >> 2, 1);
      throw err;
    }
    return d.finish(claimed);
  };
  /** Load the e1000 driver on `dev` (the firewall on unless `iommu`), checking which ring the device runs. */
  const load = async (dev: BenchDevice, iommu: boolean, name: string): Promise<Driver> => {
    const handle: DeviceHandle = { spec: dev.spec(iommu), close: () => {} };
    const { grant, limits } = grantFor(manifest, handle.spec, manifestPath);
    // The probe waits 100 ms for the device to clear CTRL.RST; a device process that the scheduler
    // of a loaded machine kept off the CPU for longer fails it: try again (the device is idle then).
    let drv: Driver | undefined;
    for (let attempt = 1; !drv; attempt++) {
      try {
        drv = await host.load(driver, handle, { name, grant, limits });
      } catch (err) {
        if (attempt === 3 || !/failed with status -3/.test((err as Error).message)) throw err;
      }
    }
    // The firewall on: the device runs the host's real ring (the window's last pages), not the driver's.
    const rxRing = Atomics.load(dev.reg, RDBAL >> 2);
    if ((rxRing === BUS) !== iommu) {
      await drv.stop();
      throw new Error(
        `bench: the descriptor firewall should be ${iommu ? 'off' : 'on'}, but the device's RX ring is at 0x${rxRing.toString(16)}`,
      );
    }
    return drv;
  };
  /** The C driver for `runMs` at `batch` on `dev`: frames forwarded. Its reset drops what the previous one left in the TX ring: the device sends that first. */
  const runCDriver = async (
    dev: BenchDevice,
    d: RunningDevice,
    runMs: number,
    batch: number,
    pin = false,
  ): Promise<number> => {
    await d.drained();
    const r = JSON.parse(
      await a.runC(
        bin,
        ['e1000-driver', String(runMs), String(batch), `0x${BUS.toString(16)}`],
        [dev.fds.regs, dev.fds.dma],
        pin,
      ),
    );
    return r.forwarded as number;
  };
  /**
   * Batch 32 again, the firewall on, off and C in turn: `rounds` rounds of one short window of each,
   * every driver on a device of its own, the two devices not being measured paused (they sleep), the
   * order rotated from round to round. The sequential figures above measure each driver seconds apart,
   * and on a shared 2-vCPU machine the forwarding rate of the same code moves 2-5x within seconds (the
   * driver and the device pass cache lines to each other, so where the hypervisor places the two vCPUs
   * counts). Windows of 20 ms, one after the other, mostly see the same placement: each round's
   * firewall on / off ratio compares like with like, and the geometric mean over the rounds is the
   * figure (a slow round and a fast one weigh alike), with the quartiles of the rounds beside it.
   */
  const interleaved = async (): Promise<Record<string, number | string>> => {
    const rounds = a.quick ? 10 : 150;
    const win = 20;
    const kinds = ['on', 'off', 'c'] as const;
    type Kind = (typeof kinds)[number];
    const devs: Record<Kind, BenchDevice> = { on: device('on'), off: device('off'), c: device('c') };
    const run: Partial<Record<Kind, RunningDevice>> = {};
    const drv: Partial<Record<'on' | 'off', Driver>> = {};
    const claimed: Record<Kind, number> = { on: 0, off: 0, c: 0 };
    const mpps: Record<Kind, number[]> = { on: [], off: [], c: [] };
    let done = false;
    let pinned = false;
    try {
      for (const k of kinds) {
        const d = await start(devs[k], 600_000);
        run[k] = d;
        if (k !== 'c') {
          const x = await load(devs[k], k === 'off', `e1000-bench-interleaved-${k}`);
          drv[k] = x;
          claimed[k] += await new E1000Client(x).forward(32, a.quick ? 20 : 200); // warm up, as above
        }
        await d.pause();
      }
      // One placement for all three drivers: this process (the driver's worker with it) and the C
      // driver on CPU 0, the device on CPU 1. Left to the scheduler, a device woken from its pause
      // sometimes landed on the driver's CPU, and for the window the two spinners shared it (~0.01 Mpps).
      pinned = process.env.WASMDRV_E1000_PIN !== '0' && cpus().length >= 2 && canPin();
      if (pinned) for (const k of kinds) Atomics.store(devs[k].reg, BENCH_CPU >> 2, 2);
      const steal0 = cpuStat();
      for (let i = 0; i < rounds; i++) {
        for (let j = 0; j < kinds.length; j++) {
          const k = kinds[(i + j) % kinds.length];
          const d = run[k]!;
          await d.resume();
          const n =
            k === 'c' ? await runCDriver(devs.c, d, win, 32, pinned) : await new E1000Client(drv[k]!).forward(32, win);
          await d.pause();
          claimed[k] += n;
          mpps[k].push(n / win / 1000);
        }
      }
      const steal1 = cpuStat();
      if (pinned) unpin();
      pinned = false;
      for (const k of ['on', 'off'] as const) {
        const d = run[k]!;
        await d.resume();
        await d.drained(); // before the driver stops: its remove() stops the transmitter
        const sent = Number((await new E1000Client(drv[k]!).stats()).txFrames);
        if (sent < claimed[k])
          throw new Error(
            `bench: the e1000 driver (interleaved, firewall ${k}) counted ${sent} frames sent, forwarded ${claimed[k]}`,
          );
        await drv[k]!.stop();
        drv[k] = undefined;
        claimed[k] = sent;
      }
      const verified = (await Promise.all(kinds.map((k) => run[k]!.finish(claimed[k])))).reduce(
        (sum, r) => sum + r.transmitted,
        0,
      );
      done = true;
      const q = (xs: number[], p: number) =>
        xs.length
          ? pct(
              [...xs].sort((x, y) => x - y),
              p,
            )
          : Number.NaN;
      // a round whose denominator forwarded nothing (a loaded machine's window) says nothing: left out
      const ratios = (x: number[], y: number[]) => x.flatMap((v, i) => (v > 0 && y[i] > 0 ? [v / y[i]] : []));
      /** The geometric mean of the rounds' ratios: a slow round and a fast one weigh alike. */
      const gmean = (rs: number[]) => Math.exp(rs.reduce((sum, r) => sum + Math.log(r), 0) / rs.length);
      const onOff = ratios(mpps.on, mpps.off);
      const overhead = onOff.map((r) => 100 * (1 - r));
      const f = (x: number, d = 3) => +x.toFixed(d);
      const res: Record<string, number | string> = {
        e1000InterleavedRounds: rounds,
        e1000InterleavedRoundsUsed: onOff.length,
        e1000InterleavedWindowMs: win,
        e1000InterleavedFramesVerified: verified,
        e1000InterleavedMppsFirewallBatch32: f(q(mpps.on, 0.5)),
        e1000InterleavedMppsNoFirewallBatch32: f(q(mpps.off, 0.5)),
        e1000InterleavedMppsBatch32C: f(q(mpps.c, 0.5)),
        e1000InterleavedBestMppsFirewallBatch32: f(Math.max(...mpps.on)),
        e1000InterleavedBestMppsNoFirewallBatch32: f(Math.max(...mpps.off)),
        e1000InterleavedBestMppsBatch32C: f(Math.max(...mpps.c)),
        e1000InterleavedOverheadPctBatch32: f(100 * (1 - gmean(onOff)), 1),
        e1000InterleavedOverheadPctMedianBatch32: f(q(overhead, 0.5), 1),
        e1000InterleavedOverheadPctP25Batch32: f(q(overhead, 0.25), 1),
        e1000InterleavedOverheadPctP75Batch32: f(q(overhead, 0.75), 1),
        e1000InterleavedRatioBatch32: f(gmean(ratios(mpps.on, mpps.c))),
        e1000InterleavedRatioNoFirewallBatch32: f(gmean(ratios(mpps.off, mpps.c))),
        e1000InterleavedStealPct: f(
          (100 * (steal1.steal - steal0.steal)) / Math.max(1, steal1.total - steal0.total),
          1,
        ),
        // every round's rates, firewall on / off / C (Mpps), for results.json
        e1000InterleavedRoundsMpps: mpps.on
          .map((on, i) => `${on.toFixed(2)}/${mpps.off[i].toFixed(2)}/${mpps.c[i].toFixed(2)}`)
          .join(' '),
      };
      say(
        `e1000 batch 32, ${rounds} interleaved rounds of ${win} ms (firewall on, off and C in turn, each on a device of its own, the others paused; ${onOff.length} rounds with frames): firewall overhead ${res.e1000InterleavedOverheadPctBatch32}% (the rounds' ratios' geometric mean; median ${res.e1000InterleavedOverheadPctMedianBatch32}%, quartiles ${res.e1000InterleavedOverheadPctP25Batch32} to ${res.e1000InterleavedOverheadPctP75Batch32}%)`,
      );
      say(
        `  Mpps median / best: on ${res.e1000InterleavedMppsFirewallBatch32} / ${res.e1000InterleavedBestMppsFirewallBatch32}   off ${res.e1000InterleavedMppsNoFirewallBatch32} / ${res.e1000InterleavedBestMppsNoFirewallBatch32}   C ${res.e1000InterleavedMppsBatch32C} / ${res.e1000InterleavedBestMppsBatch32C}   ratios to C ${res.e1000InterleavedRatioBatch32} / ${res.e1000InterleavedRatioNoFirewallBatch32}   CPU stolen by the hypervisor ${res.e1000InterleavedStealPct}%`,
      );
      return res;
    } finally {
      if (pinned) unpin();
      if (!done) for (const k of kinds) Atomics.store(devs[k].reg, BENCH_QUIT >> 2, 1);
      for (const x of Object.values(drv)) await x?.stop();
    }
  };
  try {
    const dev = device('sequential');
    for (const [mode, iommu] of [
      ['Firewall', false],
      ['NoFirewall', true],
    ] as const) {
      const report = await withDevice(dev, async (d) => {
        const drv = await load(dev, iommu, `e1000-bench-${mode}`);
        try {
          const nic = new E1000Client(drv);
          let total = 0;
          await nic.forward(32, a.quick ? 20 : 200); // warm up: V8's optimising tier compiles in the background
          const s0 = drv.stats();
          for (const batch of BATCHES) {
            const n = await nic.forward(batch, ms);
            total += n;
            out[`e1000Mpps${mode}Batch${batch}`] = +(n / ms / 1000).toFixed(3);
          }
          // With the firewall on, every register write while forwarding is an RDT or TDT doorbell: the
          // share of them the Wasm path served (1: none fell back to JavaScript). A count, not a time.
          const s1 = drv.stats();
          if (!iommu)
            out.e1000FastDoorbellShare = +(
              (s1.ringFastDoorbells - s0.ringFastDoorbells) /
              Math.max(1, s1.regWrites - s0.regWrites)
            ).toFixed(4);
          // One request's round trip to the driver's worker (MAC: no register access), median.
          const rtt: number[] = [];
          for (let i = 0; i < (a.quick ? 50 : 500); i++) {
            const t0 = performance.now();
            await nic.mac();
            rtt.push((performance.now() - t0) * 1000);
          }
          rtt.sort((x, y) => x - y);
          out[`e1000RequestRoundTripUs${mode}`] = +rtt[rtt.length >> 1].toFixed(1);
          for (const batch of [1, 32]) {
            const n = await forwardByRequests(nic, batch, ms);
            total += n;
            out[`e1000RequestsMpps${mode}Batch${batch}`] = +(n / ms / 1000).toFixed(4);
          }
          // what the driver queued in all (the warm-up too) is what the device must have transmitted
          await d.drained(); // before the driver stops: its remove() stops the transmitter
          const sent = Number((await nic.stats()).txFrames);
          if (sent < total) throw new Error(`bench: the e1000 driver counted ${sent} frames sent, forwarded ${total}`);
          return sent;
        } finally {
          await drv.stop();
        }
      });
      // every frame the driver sent, the device received in order and intact (finish checked)
      out[`e1000FramesVerified${mode}`] = report.transmitted;
    }
    const cReport = await withDevice(dev, async (d) => {
      let total = 0;
      for (const batch of BATCHES) {
        const n = await runCDriver(dev, d, ms, batch);
        total += n;
        out[`e1000MppsBatch${batch}C`] = +(n / ms / 1000).toFixed(3);
      }
      return total;
    });
    out.e1000FramesVerifiedC = cReport.transmitted;
    // The firewall alone (e1000-firewall.ts), CPU time of one thread: the path that runs with the gate
    // compiled in (the Wasm doorbell), and the JavaScript one (WASMDRV_RING_FAST=0 or the instance gate).
    const { grant } = grantFor(manifest, dev.spec(false), manifestPath);
    const wasmNs = await fastPathCpuCost(manifest, grant, manifestPath, DMA_SIZE, BUS, [1, 8, 32], a.quick);
    for (const batch of [1, 8, 32]) {
      out[`e1000FirewallCpuNsPerFrameBatch${batch}`] = wasmNs[batch];
      out[`e1000FirewallJsCpuNsPerFrameBatch${batch}`] = jsFirewallCpuCost(
        manifest,
        manifestPath,
        DMA_SIZE,
        BUS,
        batch,
        a.quick,
      );
    }
    for (const batch of BATCHES) {
      const c = num(`e1000MppsBatch${batch}C`);
      const on = num(`e1000MppsFirewallBatch${batch}`);
      const off = num(`e1000MppsNoFirewallBatch${batch}`);
      out[`e1000RatioBatch${batch}`] = +(on / c).toFixed(3);
      out[`e1000RatioNoFirewallBatch${batch}`] = +(off / c).toFixed(3);
      out[`e1000FirewallOverheadPctBatch${batch}`] = +((100 * (off - on)) / off).toFixed(1);
      // what the firewall adds per forwarded frame (its RX and TX doorbells, checks, copies, write-backs)
      out[`e1000FirewallNsPerFrameBatch${batch}`] = +(1000 / on - 1000 / off).toFixed(1);
      say(
        `e1000 batch ${String(batch).padStart(2)}   firewall on ${on} Mpps   off ${off} Mpps   C ${c} Mpps   ratios to C ${out[`e1000RatioBatch${batch}`]} / ${out[`e1000RatioNoFirewallBatch${batch}`]}   firewall overhead ${out[`e1000FirewallOverheadPctBatch${batch}`]}% (${out[`e1000FirewallNsPerFrameBatch${batch}`]} ns per frame; one draw each, seconds apart)`,
      );
    }
    say(`e1000 doorbells served by the Wasm path while forwarding with the firewall: ${out.e1000FastDoorbellShare}`);
    say(
      `e1000 descriptor firewall alone, CPU time per forwarded frame (an RX and a TX descriptor checked, copied, written back; one thread, no device): Wasm doorbell (the path that runs) batch 1 ${out.e1000FirewallCpuNsPerFrameBatch1} ns, 8 ${out.e1000FirewallCpuNsPerFrameBatch8} ns, 32 ${out.e1000FirewallCpuNsPerFrameBatch32} ns; JavaScript doorbell ${out.e1000FirewallJsCpuNsPerFrameBatch1} / ${out.e1000FirewallJsCpuNsPerFrameBatch8} / ${out.e1000FirewallJsCpuNsPerFrameBatch32} ns`,
    );
    for (const batch of [1, 32]) {
      for (const mode of ['Firewall', 'NoFirewall']) {
        const mpps = num(`e1000RequestsMpps${mode}Batch${batch}`);
        // a batch is a receive and a send request: the time of one batch, all of it the request path's
        out[`e1000RequestsUsPerBatch${mode}Batch${batch}`] = +(batch / mpps).toFixed(1);
      }
      say(
        `e1000 batch ${String(batch).padStart(2)} through receive + send requests (2 round trips per batch; one empty request ${out.e1000RequestRoundTripUsFirewall} / ${out.e1000RequestRoundTripUsNoFirewall} us)   firewall on ${out[`e1000RequestsMppsFirewallBatch${batch}`]} Mpps (${out[`e1000RequestsUsPerBatchFirewallBatch${batch}`]} us per batch)   off ${out[`e1000RequestsMppsNoFirewallBatch${batch}`]} Mpps (${out[`e1000RequestsUsPerBatchNoFirewallBatch${batch}`]} us)`,
      );
    }
    Object.assign(out, await interleaved());
  } finally {
    for (const m of maps) m.close();
    await host.close();
    for (const fd of fds) native.close(fd);
  }
  return out;
}

/** The machine's CPU time so far (all CPUs, clock ticks) and the part the hypervisor stole (/proc/stat). */
function cpuStat(): { total: number; steal: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    return { total: f.reduce((x, y) => x + y, 0), steal: f[7] ?? 0 };
  } catch {
    return { total: 0, steal: 0 };
  }
}

/** Forward from outside the driver: receive a batch, send it back, until `ms` have passed. */
async function forwardByRequests(nic: E1000Client, batch: number, ms: number): Promise<number> {
  let n = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    let frames = await nic.recv(batch, 0);
    n += frames.length;
    // a full TX ring takes part of a batch: send the rest, so the device sees every frame in order
    while (frames.length) frames = frames.slice(await nic.send(frames));
  }
  return n;
}
