// Memory shared between a driver's worker and the main thread: control words, statistics and the
// flight recorder. It outlives the worker, so a driver killed for a deadline still leaves its last
// register accesses behind for the fault report.

import type { RecorderEntry } from '../faults.ts';
import { loadNative, type Mapping } from '../native.ts';

/** control[] indices */
export const CTRL_PHASE = 0; // see PHASES
export const CTRL_STOP = 1; // 1 = the host asked the worker to stop: waits return "cancelled"

export const PHASES = ['idle', 'load', 'probe', 'request', 'interrupt', 'reset', 'restore', 'remove', 'save'] as const;
export type Phase = (typeof PHASES)[number];

/**
 * stats[] indices: counters the worker's JavaScript keeps (f64, exact to 2^53). regReads/regWrites here
 * count the accesses JavaScript served; the ones the register gate serves are in GSTAT (read both
 * through DriverShared.stat).
 */
export const STAT = {
  regReads: 0,
  regWrites: 1,
  portIns: 2,
  portOuts: 3,
  interrupts: 4, // interrupt events delivered to the driver (export calls + waits that returned 1)
  coalesced: 5, // events the count skipped over (several interrupts observed as one)
  requests: 6,
  logs: 7,
  phaseStartMs: 8, // Date.now() when the current phase began
  // 9: unused (was the recorder total, an f64 the gate bumped)
  serving: 10, // id of the last request the worker handed to the driver
  clockNs: 11, // what the inline gate's clock_ns returns, written just before by wasmdrv-gate.clock (inline-gate.ts)
} as const;
const STAT_SLOTS = 16;

/**
 * gstats[] indices: i64 counters (JavaScript reads and bumps them as two u32 halves, no BigInt). Each
 * flight-recorder writer counts its own entries: the gate its reads and its writes, JavaScript every
 * event it records. The recorder total is their sum, and an entry goes to slot (sum & (entries - 1)):
 * so a recorded access is one counter bumped (its own, chained only to the previous access of the same
 * kind) and two loads. Under 'record-writes' the gate neither records nor counts its reads.
 */
export const GSTAT = {
  gateReads: 0, // reads the gate served (each one a recorder entry)
  gateWrites: 1, // writes the gate served (each one a recorder entry)
  jsEntries: 2, // entries JavaScript appended (DriverShared.record)
  ringFastDoorbells: 3, // ring tail writes the descriptor firewall's Wasm path served (ring-fast.ts)
  ringFastHeads: 4, // ring head reads it served
} as const;
const GSTAT_SLOTS = 8;

/**
 * Byte layout of the shared area (the register gate writes gstats and recorder entries itself):
 *
 *   0              control: 16 x i32
 *   STATS_OFFSET   stats: 16 x f64 (JavaScript's counters)
 *   GSTATS_OFFSET  gstats: 8 x i64 (each recorder writer's entry count, the ring fast path's counts)
 *   RING_OFFSET    the flight recorder: entries of 16 bytes, two little-endian i64 words
 *                    word 0: offset (bits 0-31) | op (32-39) | width (40-47) | region (48-63)
 *                    word 1: value (64 bits; a narrow access zero-extended)
 *                  entry seq lives at (seq & (entries - 1)) * 16; entries 0..total-1 were written,
 *                  total = gateReads + gateWrites + jsEntries.
 */
export const STATS_OFFSET = 64;
export const GSTATS_OFFSET = STATS_OFFSET + STAT_SLOTS * 8;
export const RING_OFFSET = GSTATS_OFFSET + GSTAT_SLOTS * 8;
export const ENTRY_BYTES = 16;
/**
 * Where the inline gate's memory `wasmdrv-gate.shared` has the area: one 4 KiB page in, not at 0.
 * V8 reserves each Wasm memory at a base aligned to a large power of two (seen in the guest: 8 GiB
 * apart, 256 MiB aligned), so page 0 of the shared memory and page 0 of a register region's memory
 * had the same index in QEMU's direct-mapped softmmu TLB: under TCG a recorded access to an MMIO
 * register evicted the recorder's page and the recorder evicted the register's, a refill each,
 * ~+90 ns per recorded access (docs/benchmarks.md, guest section). Page 1 holds no hot register of
 * our devices (edu's are all in page 0; e1000's ring registers are in pages 2 and 3), and keeps every
 * address the generated code names below 16 KiB: the same LEB128 bytes as at 0, so the register
 * functions do not grow past what V8 inlines.
 */
export const INLINE_SHARED_AT = 4096;
/** Word 0 of an entry without its offset: what the gate ORs onto the zero-extended offset. */
export const entryMeta = (op: number, width: number, region: number): bigint =>
  BigInt((op & 0xff) | ((width & 0xff) << 8) | ((region & 0xffff) << 16)) << 32n;

/**
 * Where a driver's shared area lives: a SharedArrayBuffer (in-process users: the fuzzer, the
 * campaign), or a memfd that every thread maps for itself (drivers in workers: the register gate
 * maps it into its own Wasm memory too).
 */
export type SharedArea = SharedArrayBuffer | { fd: number; bytes: number; entries: number };

const OPS: RecorderEntry['op'][] = ['read', 'write', 'in', 'out', 'irq', 'request', 'interrupt', 'fault'];
export const OP = { read: 0, write: 1, in: 2, out: 3, irq: 4, request: 5, interrupt: 6, fault: 7 } as const;
const ENTRY_INTS = ENTRY_BYTES / 4;

export class DriverShared {
  readonly control: Int32Array;
  /** JavaScript's counters (STAT); use stat() for the register counts. */
  readonly stats: Float64Array;
  /** The gate's i64 counters (GSTAT) as u32 halves: [2i] low, [2i + 1] high. */
  private readonly gstats: Uint32Array;
  /** Recorder entries (a power of two). */
  readonly entryCount: number;
  /** The memfd behind a mapped area (undefined for a SharedArrayBuffer). */
  readonly fd: number | undefined;
  private readonly ring: Int32Array;
  private readonly mask: number;
  private readonly mapping?: Mapping;

  /** `recorderSize` must be a power of two. */
  static create(recorderSize = 256): SharedArrayBuffer {
    if (recorderSize & (recorderSize - 1)) throw new Error('recorder size must be a power of two');
    return new SharedArrayBuffer(RING_OFFSET + recorderSize * ENTRY_BYTES);
  }

  /**
   * A memfd-backed area, page-rounded. The caller owns the fd (close it when no thread will map the
   * area again; existing mappings stay valid).
   */
  static createMapped(recorderSize = 256, name = 'wasmdrv-shared'): { fd: number; bytes: number; entries: number } {
    if (recorderSize & (recorderSize - 1)) throw new Error('recorder size must be a power of two');
    const native = loadNative();
    const page = native.pageSize();
    const bytes = Math.ceil((RING_OFFSET + recorderSize * ENTRY_BYTES) / page) * page;
    return { fd: native.memfdCreate(name, bytes), bytes, entries: recorderSize };
  }

  constructor(readonly area: SharedArea) {
    let buffer: ArrayBufferLike;
    let entries: number;
    if (area instanceof SharedArrayBuffer) {
      buffer = area;
      entries = (area.byteLength - RING_OFFSET) / ENTRY_BYTES;
      this.fd = undefined;
    } else {
      this.mapping = loadNative().mapFd(area.fd, area.bytes, 0, 'driver shared area');
      buffer = this.mapping.buffer();
      entries = area.entries;
      this.fd = area.fd;
    }
    this.control = new Int32Array(buffer, 0, 16);
    this.stats = new Float64Array(buffer, STATS_OFFSET, STAT_SLOTS);
    this.gstats = new Uint32Array(buffer, GSTATS_OFFSET, GSTAT_SLOTS * 2);
    this.ring = new Int32Array(buffer, RING_OFFSET, entries * ENTRY_INTS);
    this.entryCount = entries;
    this.mask = entries - 1;
  }

  /**
   * Where the native wait (native.irqWaiter) finds what noteCount and record() keep: byte offsets of
   * the stop flag, the interrupt counters, the recorder writers' counts and the recorder, in the area
   * `control` starts.
   */
  irqLayout(irqOp: number) {
    return {
      stop: CTRL_STOP * 4,
      interrupts: STATS_OFFSET + STAT.interrupts * 8,
      coalesced: STATS_OFFSET + STAT.coalesced * 8,
      jsEntries: GSTATS_OFFSET + GSTAT.jsEntries * 8,
      gateReads: GSTATS_OFFSET + GSTAT.gateReads * 8,
      gateWrites: GSTATS_OFFSET + GSTAT.gateWrites * 8,
      ring: RING_OFFSET,
      entries: this.entryCount,
      irqOp,
    };
  }

  /** The area's size in bytes. */
  get byteLength(): number {
    return this.area instanceof SharedArrayBuffer ? this.area.byteLength : this.area.bytes;
  }

  get phase(): Phase {
    return PHASES[Atomics.load(this.control, CTRL_PHASE)] ?? 'idle';
  }

  setPhase(p: Phase): void {
    this.stats[STAT.phaseStartMs] = Date.now();
    Atomics.store(this.control, CTRL_PHASE, PHASES.indexOf(p));
  }

  get stopRequested(): boolean {
    return Atomics.load(this.control, CTRL_STOP) !== 0;
  }

  /**
   * One of the gate's i64 counters (GSTAT). A reader on another thread may see the two halves of a
   * counter torn while it crosses 2^32 (once per 4 billion events); the writer's thread never does.
   */
  gstat(i: number): number {
    const g = this.gstats;
    return g[2 * i + 1] * 0x1_0000_0000 + g[2 * i];
  }

  /** A counter as Driver.stats() reports it: for register accesses, JavaScript's plus the gate's. */
  stat(name: keyof typeof STAT | 'ringFastDoorbells' | 'ringFastHeads'): number {
    switch (name) {
      case 'regReads':
        return this.stats[STAT.regReads] + this.gstat(GSTAT.gateReads);
      case 'regWrites':
        return this.stats[STAT.regWrites] + this.gstat(GSTAT.gateWrites);
      case 'ringFastDoorbells':
      case 'ringFastHeads':
        return this.gstat(GSTAT[name]);
      default:
        return this.stats[STAT[name]];
    }
  }

  /** Entries ever appended to the flight recorder (by JavaScript and by the gate). */
  get recorderTotal(): number {
    return this.gstat(GSTAT.gateReads) + this.gstat(GSTAT.gateWrites) + this.gstat(GSTAT.jsEntries);
  }

  /** Append one event to the flight recorder (writer: the driver's thread only). Same format as the gate's. */
  record(op: number, region: number, offset: number, width: number, lo: number, hi: number): void {
    // The total lives in the area, not here: the register gate appends entries too.
    const g = this.gstats;
    const js = 2 * GSTAT.jsEntries;
    // The low halves' sum is the total modulo 2^32, enough for the slot.
    const at = ((g[2 * GSTAT.gateReads] + g[2 * GSTAT.gateWrites] + g[js]) & this.mask) * ENTRY_INTS;
    const r = this.ring;
    r[at] = offset;
    r[at + 1] = (op & 0xff) | ((width & 0xff) << 8) | ((region & 0xffff) << 16);
    r[at + 2] = lo;
    r[at + 3] = hi;
    if (g[js] === 0xffff_ffff) g[js + 1]++;
    g[js]++;
  }

  /** The recorder's contents, oldest first. */
  entries(): RecorderEntry[] {
    const total = this.recorderTotal;
    const size = this.mask + 1;
    const first = Math.max(0, total - size);
    const out: RecorderEntry[] = [];
    for (let seq = first; seq < total; seq++) {
      const at = (seq % size) * ENTRY_INTS;
      const r = this.ring;
      const meta = r[at + 1];
      out.push({
        seq,
        op: OPS[meta & 0xff] ?? 'fault',
        region: (meta >>> 16) & 0xffff,
        offset: r[at] >>> 0,
        width: (meta >>> 8) & 0xff,
        value: (BigInt(r[at + 3] >>> 0) << 32n) | BigInt(r[at + 2] >>> 0),
      });
    }
    return out;
  }
}

export function formatEntry(e: RecorderEntry): string {
  const v = `0x${e.value.toString(16)}`;
  switch (e.op) {
    case 'read':
    case 'write':
      return `#${e.seq} ${e.op}${e.width * 8} region ${e.region} +0x${e.offset.toString(16)} = ${v}`;
    case 'in':
    case 'out':
      return `#${e.seq} ${e.op}${e.width * 8} ports ${e.region} +0x${e.offset.toString(16)} = ${v}`;
    case 'irq':
      return `#${e.seq} irq count ${e.value}`;
    case 'request':
      return `#${e.seq} request op ${e.offset} (${e.value} bytes)`;
    case 'interrupt':
      return `#${e.seq} interrupt handler, count ${e.value}`;
    default:
      return `#${e.seq} ${e.op}`;
  }
}
