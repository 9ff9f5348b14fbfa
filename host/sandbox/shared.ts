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

/** stats[] indices */
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
  recorderTotal: 9,
  serving: 10, // id of the last request the worker handed to the driver
  ringFastDoorbells: 11, // ring tail writes the descriptor firewall's Wasm path served (ring-fast.ts)
  ringFastHeads: 12, // ring head reads it served
} as const;
const STAT_SLOTS = 16;

/** Byte layout of the shared area (the register gate writes stats and recorder entries itself). */
export const STATS_OFFSET = 64;
export const RING_OFFSET = STATS_OFFSET + STAT_SLOTS * 8;
export const ENTRY_BYTES = 24;

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
  readonly stats: Float64Array;
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
    this.ring = new Int32Array(buffer, RING_OFFSET, entries * ENTRY_INTS);
    this.entryCount = entries;
    this.mask = entries - 1;
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

  /** Append one event to the flight recorder (writer: the driver's thread only). */
  record(op: number, region: number, offset: number, width: number, lo: number, hi: number): void {
    // The total lives in the area, not here: the register gate appends entries too.
    const total = this.stats[STAT.recorderTotal];
    const at = (total & this.mask) * ENTRY_INTS;
    const r = this.ring;
    r[at] = op;
    r[at + 1] = region;
    r[at + 2] = offset;
    r[at + 3] = width;
    r[at + 4] = lo;
    r[at + 5] = hi;
    this.stats[STAT.recorderTotal] = total + 1;
  }

  /** The recorder's contents, oldest first. */
  entries(): RecorderEntry[] {
    const total = this.stats[STAT.recorderTotal];
    const size = this.mask + 1;
    const first = Math.max(0, total - size);
    const out: RecorderEntry[] = [];
    for (let seq = first; seq < total; seq++) {
      const at = (seq & this.mask) * ENTRY_INTS;
      const r = this.ring;
      out.push({
        seq,
        op: OPS[r[at]] ?? 'fault',
        region: r[at + 1],
        offset: r[at + 2] >>> 0,
        width: r[at + 3],
        value: (BigInt(r[at + 5] >>> 0) << 32n) | BigInt(r[at + 4] >>> 0),
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
