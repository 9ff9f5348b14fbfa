// A device opened in the current thread: mapped regions, granted ports, DMA window sources, the
// interrupt source, and (for a simulated device) the model object over its shared state.
//
// Everything here is per thread: a driver's worker opens its own session, because mappings are
// handed out per thread and ioperm grants are per thread.

import { loadNative, type Mapping, type Native } from '../native.ts';
import type { DeviceSpec, DmaSpec } from '../device-spec.ts';
import type { SimContext, SimModel, Width } from '../sim/model.ts';
import { simModelClass } from '../sim/registry.ts';
import { SimAccess } from '../sim/access.ts';
import { SIM_IRQ_BYTES, SIM_VCLOCK_OFFSET, SimIrqLine } from '../sim/irq.ts';
import { DmaRecord, SIM_DMA_RECORD_BYTES, dmaRecordOffset } from '../sim/dma-record.ts';
import { type IrqSource, openIrqSource } from './irq-source.ts';

export type { IrqSource } from './irq-source.ts';

export interface RegionAccess {
  name: string;
  size: number;
  /** Typed views for memory-backed regions (one access of its width, never DataView). */
  u8?: Uint8Array;
  u16?: Uint16Array;
  u32?: Uint32Array;
  u64?: BigUint64Array;
  /** Model region index for simulated register files; -1 for memory-backed regions. */
  sim: number;
}

export interface PortAccess {
  name: string;
  base: number;
  size: number;
  sim: number;
}

/** Nanoseconds on a clock shared by every thread of the process. */
export function monotonicNs(): number {
  return Number(process.hrtime.bigint());
}

export interface SessionOptions {
  /** Device time source (ns). Defaults to the process-wide monotonic clock. */
  clock?: () => number;
  /**
   * Virtual device time (the campaign and the fuzzer): time stands still while the driver runs and
   * jumps forward when it waits, to the device's next event or the wait's timeout. Runs are
   * deterministic and never block on real time.
   */
  virtual?: boolean;
  /** Virtual time only: device time one clock_ns read costs (default 1 us). */
  clockStepNs?: number;
  /** Called for a simulated device's guest errors. */
  onGuestError?: (message: string) => void;
}

export class DeviceSession {
  readonly regions: RegionAccess[] = [];
  readonly ports: PortAccess[] = [];
  readonly irq: IrqSource | null;
  readonly model: SimModel | null = null;
  readonly access: SimAccess | null = null; // the model behind its declared access rules (sim/access.ts)
  readonly now: () => number;
  /** Set when device time is virtual: waits call advance() instead of blocking. */
  readonly virtual: boolean;
  readonly clockStepNs: number;
  /** now() is the process's monotonic clock (not virtual, not a caller's): clock_ns may read it directly. */
  readonly monotonic: boolean;
  private vnow = 1_000_000;
  /** Virtual time only, simulated devices: the device's clock in its shared state (SIM_VCLOCK_OFFSET). */
  private readonly vclock: Float64Array | null = null;
  /** fd to poll besides the interrupt: a simulated device fed from outside; -1 when none. */
  readonly kickFd: number;
  private readonly mappings: Mapping[] = [];
  private readonly native: Native;
  private readonly dmaViews: { bus: bigint; size: number; bytes: Uint8Array }[] = [];
  /** A simulated device's record of every DMA it performs (sim/dma-record.ts); null when its state has none. */
  private dmaRecord: DmaRecord | null = null;
  private ioGranted: { base: number; size: number }[] = [];
  private closed = false;
  private readonly onGuestError?: (message: string) => void;
  /** What the guest-error callback threw (the driver's limiter: log-flood), raised once the model has returned. */
  private guestFault: { error: unknown } | undefined;

  constructor(
    readonly spec: DeviceSpec,
    options: SessionOptions = {},
  ) {
    this.onGuestError = options.onGuestError;
    this.native = loadNative();
    this.virtual = options.virtual ?? false;
    this.clockStepNs = options.clockStepNs ?? 1000;
    if (this.virtual && spec.sim) {
      this.vclock = new Float64Array(spec.sim.state, SIM_VCLOCK_OFFSET, 1);
      this.vnow = Math.max(this.vnow, this.vclock[0]);
      this.vclock[0] = this.vnow;
    }
    this.now = this.virtual ? () => this.vnow : (options.clock ?? monotonicNs);
    this.monotonic = !this.virtual && !options.clock;
    this.kickFd = spec.sim?.kickFd ?? -1;
    try {
      let irqLine: SimIrqLine | null = null;
      if (spec.sim) {
        const cls = simModelClass(spec.sim.model);
        const desc = cls.describe(spec.sim.options);
        // The model sees its DMA windows through this thread's own mappings of them.
        for (const w of spec.dma)
          this.dmaViews.push({ bus: w.bus, size: w.size, bytes: new Uint8Array(this.mapDma(w)) });
        const recordAt = dmaRecordOffset(desc);
        if (spec.sim.state.byteLength >= recordAt + SIM_DMA_RECORD_BYTES)
          this.dmaRecord = new DmaRecord(spec.sim.state, recordAt);
        // In virtual time nobody polls the line's eventfd (the waits read the count directly), so the
        // line does without it: no syscall per interrupt in the fuzzer and the campaign.
        const lineFd = spec.irq?.kind === 'sim' && !options.virtual ? spec.irq.eventfd : -1;
        const line = (irqLine = new SimIrqLine(spec.sim.state, 0, desc.irq, lineFd, this.native));
        const ctx: SimContext = {
          now: this.now,
          setIrq: (level) => line.set(level),
          dmaRead: (bus, len, device) => this.dmaRead(bus, len, device),
          dmaWrite: (bus, data, device) => this.dmaWrite(bus, data, device),
          guestError: (message) => this.guestError(message),
        };
        this.model = cls.create(ctx, spec.sim.state, SIM_IRQ_BYTES, spec.sim.options);
        this.access = new SimAccess(desc, this.model, ctx.guestError);
        line.attach(this.model);
      }
      for (const r of spec.regions) this.regions.push(this.openRegion(r.name, r.size, r.source));
      for (const p of spec.ports) {
        if (p.source.kind === 'io') {
          this.native.iopermGrant(p.base, p.size);
          this.ioGranted.push({ base: p.base, size: p.size });
          this.ports.push({ name: p.name, base: p.base, size: p.size, sim: -1 });
        } else {
          this.ports.push({ name: p.name, base: p.base, size: p.size, sim: p.source.index });
        }
      }
      this.irq = spec.irq ? openIrqSource(this.native, spec, irqLine) : null;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private openRegion(name: string, size: number, source: DeviceSpec['regions'][number]['source']): RegionAccess {
    if (source.kind === 'sim') return { name, size, sim: source.index };
    const m =
      source.kind === 'file'
        ? this.native.mapFile(source.path, size, source.offset)
        : this.native.mapFd(source.fd, size, source.offset, `fd ${source.fd}`);
    this.mappings.push(m);
    const buf = m.buffer();
    return {
      name,
      size,
      sim: -1,
      u8: new Uint8Array(buf),
      u16: new Uint16Array(buf, 0, size >>> 1),
      u32: new Uint32Array(buf, 0, size >>> 2),
      u64: new BigUint64Array(buf, 0, size >>> 3),
    };
  }

  private mapDma(w: DmaSpec): ArrayBuffer {
    const m =
      w.source.kind === 'file'
        ? this.native.mapFile(w.source.path, w.size, w.source.offset)
        : this.native.mapFd(w.source.fd, w.size, w.source.offset, `fd ${w.source.fd}`);
    this.mappings.push(m);
    return m.buffer();
  }

  /** A memory-backed region as an (fd, offset) pair for the register gate; null for a simulated one. Caller closes owned fds. */
  openRegionSource(index: number): { fd: number; offset: number; owned: boolean; path?: string } | null {
    const src = this.spec.regions[index].source;
    return src.kind === 'sim' ? null : this.openSource(src);
  }

  /** DMA windows as (fd, offset) pairs for mapping into a driver's memory. Caller closes owned fds. */
  openDmaSource(w: DmaSpec): { fd: number; offset: number; owned: boolean; path?: string } {
    return this.openSource(w.source);
  }

  private openSource(src: { kind: 'fd'; fd: number; offset: number } | { kind: 'file'; path: string; offset: number }) {
    if (src.kind === 'fd') return { fd: src.fd, offset: src.offset, owned: false };
    return { fd: this.native.open(src.path), offset: src.offset, owned: true, path: src.path };
  }

  /** Virtual time only: move device time forward to `t` (never back) and run what falls due. */
  advance(t: number): void {
    if (t > this.vnow) {
      this.vnow = t;
      if (this.vclock) this.vclock[0] = t;
    }
    this.tick();
  }

  /** Virtual time only: set device time, also backwards (the fuzzer restoring a snapshot). */
  setVirtualNow(t: number): void {
    this.vnow = t;
    if (this.vclock) this.vclock[0] = t;
  }

  /** The outside fed the device: clear the kick and let the model take the input. */
  kicked(): void {
    if (this.kickFd >= 0) this.native.eventfdRead(this.kickFd);
    this.model?.tick(this.now());
    this.checkGuestErrors();
  }

  /** Run the simulated device's deferred work that is due. */
  tick(): void {
    const m = this.model;
    // No clock read when nothing is scheduled: now() allocates (a BigInt), and the interrupt wait ticks on every turn.
    if (m) {
      const next = m.nextEvent();
      if (next !== Infinity && next <= this.now()) m.tick(this.now());
    }
    this.checkGuestErrors();
  }

  /**
   * A model reports a guest error in the middle of its own work; the callback (the driver's event
   * limiter) may refuse it. The refusal is kept and thrown here, after the model has returned, so a
   * flood never leaves the device's state half-updated. Once refused, every later entry throws again.
   */
  private guestError(message: string): void {
    if (this.guestFault || !this.onGuestError) return;
    try {
      this.onGuestError(message);
    } catch (error) {
      this.guestFault = { error };
    }
  }

  /** Throw a refused guest error (see guestError); call after every direct entry into the model. */
  checkGuestErrors(): void {
    if (this.guestFault) throw this.guestFault.error;
  }

  /** Device time (ns) until the model's next deferred work; Infinity when none. */
  untilNextEvent(): number {
    if (!this.model) return Infinity;
    const t = this.model.nextEvent();
    return t === Infinity ? Infinity : Math.max(0, t - this.now());
  }

  readSim(region: number, offset: number, width: Width): number | bigint {
    this.tick();
    const v = this.access!.read(region, offset, width);
    this.checkGuestErrors();
    return v;
  }

  writeSim(region: number, offset: number, width: Width, value: number | bigint): void {
    this.tick();
    this.access!.write(region, offset, width, value);
    this.checkGuestErrors();
  }

  private findDma(bus: bigint, len: number): { bytes: Uint8Array; at: number } | null {
    for (const w of this.dmaViews) {
      if (bus >= w.bus && bus + BigInt(len) <= w.bus + BigInt(w.size))
        return { bytes: w.bytes, at: Number(bus - w.bus) };
    }
    return null;
  }

  // Every transfer is recorded before it is served; a transfer not wholly inside one window is refused.
  private dmaRead(bus: bigint, len: number, device?: bigint): Uint8Array | null {
    this.dmaRecord?.note('read', bus, len, device, this.dmaViews);
    const hit = this.findDma(bus, len);
    return hit ? hit.bytes.slice(hit.at, hit.at + len) : null;
  }

  private dmaWrite(bus: bigint, data: Uint8Array, device?: bigint): boolean {
    this.dmaRecord?.note('write', bus, data.length, device, this.dmaViews);
    const hit = this.findDma(bus, data.length);
    if (!hit) return false;
    hit.bytes.set(data, hit.at);
    return true;
  }

  /** Idempotent: drops port grants, closes the interrupt fd, unmaps (detaching every view). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const g of this.ioGranted) {
      try {
        this.native.iopermRevoke(g.base, g.size);
      } catch {
        /* the thread is going away anyway */
      }
    }
    this.ioGranted = [];
    try {
      this.irq?.close();
    } catch {
      /* already closed */
    }
    for (const m of this.mappings) m.close();
  }
}
