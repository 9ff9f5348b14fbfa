// Memory shared between a driver's worker and the main thread: control words, statistics and the
// flight recorder. It outlives the worker, so a driver killed for a deadline still leaves its last
// register accesses behind for the fault report.

import type { RecorderEntry } from '../faults.ts';

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
} as const;
const STAT_SLOTS = 16;

const OPS: RecorderEntry['op'][] = ['read', 'write', 'in', 'out', 'irq', 'request', 'interrupt', 'fault'];
export const OP = { read: 0, write: 1, in: 2, out: 3, irq: 4, request: 5, interrupt: 6, fault: 7 } as const;
const ENTRY_INTS = 6;

export class DriverShared {
  readonly control: Int32Array;
  readonly stats: Float64Array;
  private readonly ring: Int32Array;
  private readonly mask: number;
  private total = 0;

  /** `recorderSize` must be a power of two. */
  static create(recorderSize = 256): SharedArrayBuffer {
    if (recorderSize & (recorderSize - 1)) throw new Error('recorder size must be a power of two');
    return new SharedArrayBuffer(64 + STAT_SLOTS * 8 + recorderSize * ENTRY_INTS * 4);
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.control = new Int32Array(buffer, 0, 16);
    this.stats = new Float64Array(buffer, 64, STAT_SLOTS);
    const entries = (buffer.byteLength - 64 - STAT_SLOTS * 8) / (ENTRY_INTS * 4);
    this.ring = new Int32Array(buffer, 64 + STAT_SLOTS * 8, entries * ENTRY_INTS);
    this.mask = entries - 1;
    this.total = this.stats[STAT.recorderTotal];
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
    const at = (this.total & this.mask) * ENTRY_INTS;
    const r = this.ring;
    r[at] = op;
    r[at + 1] = region;
    r[at + 2] = offset;
    r[at + 3] = width;
    r[at + 4] = lo;
    r[at + 5] = hi;
    this.stats[STAT.recorderTotal] = ++this.total;
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
