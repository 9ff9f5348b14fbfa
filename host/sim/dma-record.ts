// The record of every DMA a simulated device performs: the oracle the hostile-driver suite and the
// fault campaign check the DMA firewall against.
//
// A simulated device reaches memory only through its session's DMA windows, so a transfer aimed
// outside them cannot corrupt anything here; on hardware without an IOMMU the same transfer would read
// or write host memory. So each transfer is recorded with its RAM-side bus range, device-side address
// and direction, and every byte of the RAM-side range that lies outside all of the device's windows is
// counted as an outside access (a read when the device reads RAM, a write when it writes RAM), whether
// or not the session then lets the inside part through. The record lives in the device's shared state
// (after the model's bytes) so the main thread reads what a driver's worker's device did.

import type { DeviceSpec } from '../device-spec.ts';
import type { SimDescription } from './model.ts';
import { SIM_IRQ_BYTES } from './irq.ts';

const COUNTERS = 8;
const C = { transfers: 0, bytes: 1, outsideReadBytes: 2, outsideWriteBytes: 3, outsideTransfers: 4, total: 5 } as const;
/** Recent transfers kept (a ring). */
export const DMA_RECORD_ENTRIES = 64;
const FIELDS = 5; // direction, bus, length, device address, outside bytes
export const SIM_DMA_RECORD_BYTES = COUNTERS * 8 + DMA_RECORD_ENTRIES * FIELDS * 8;
const NO_DEVICE = 0xffff_ffff_ffff_ffffn;

/** Bytes of shared state a simulated device needs: the interrupt line, the model, the DMA record. */
export function simStateBytes(desc: SimDescription): number {
  return SIM_IRQ_BYTES + desc.stateBytes + SIM_DMA_RECORD_BYTES;
}

/** Where the record starts in a device's state. */
export function dmaRecordOffset(desc: SimDescription): number {
  return SIM_IRQ_BYTES + desc.stateBytes;
}

export interface DmaTransfer {
  /** 'read': the device read RAM (RAM to device); 'write': the device wrote RAM. */
  direction: 'read' | 'write';
  /** RAM-side bus address and length. */
  bus: bigint;
  length: number;
  /** The device-side address (its own address space), when the model gives one. */
  device?: bigint;
  /** Bytes of [bus, bus + length) outside every DMA window of the device. */
  outside: number;
}

export interface DmaRecordSnapshot {
  transfers: number;
  bytes: number;
  outsideReadBytes: number;
  outsideWriteBytes: number;
  outsideTransfers: number;
  /** The last DMA_RECORD_ENTRIES transfers, oldest first. */
  recent: DmaTransfer[];
}

export class DmaRecord {
  private readonly c: Float64Array;
  private readonly ring: BigUint64Array;

  constructor(state: SharedArrayBuffer, at: number) {
    this.c = new Float64Array(state, at, COUNTERS);
    this.ring = new BigUint64Array(state, at + COUNTERS * 8, DMA_RECORD_ENTRIES * FIELDS);
  }

  /** Note one transfer; `windows` are the device's DMA windows. Returns the bytes outside them. */
  note(
    direction: 'read' | 'write',
    bus: bigint,
    length: number,
    device: bigint | undefined,
    windows: { bus: bigint; size: number }[],
  ): number {
    const outside = outsideBytes(bus, length, windows);
    const c = this.c;
    const i = (c[C.total] % DMA_RECORD_ENTRIES) * FIELDS;
    this.ring[i] = direction === 'write' ? 1n : 0n;
    this.ring[i + 1] = BigInt.asUintN(64, bus);
    this.ring[i + 2] = BigInt(length);
    this.ring[i + 3] = device === undefined ? NO_DEVICE : BigInt.asUintN(64, device);
    this.ring[i + 4] = BigInt(outside);
    c[C.total]++;
    c[C.transfers]++;
    c[C.bytes] += length;
    if (outside > 0) {
      c[C.outsideTransfers]++;
      c[direction === 'write' ? C.outsideWriteBytes : C.outsideReadBytes] += outside;
    }
    return outside;
  }

  snapshot(): DmaRecordSnapshot {
    const c = this.c;
    const total = c[C.total];
    const recent: DmaTransfer[] = [];
    for (let k = Math.max(0, total - DMA_RECORD_ENTRIES); k < total; k++) {
      const i = (k % DMA_RECORD_ENTRIES) * FIELDS;
      const dev = this.ring[i + 3];
      recent.push({
        direction: this.ring[i] === 1n ? 'write' : 'read',
        bus: this.ring[i + 1],
        length: Number(this.ring[i + 2]),
        device: dev === NO_DEVICE ? undefined : dev,
        outside: Number(this.ring[i + 4]),
      });
    }
    return {
      transfers: c[C.transfers],
      bytes: c[C.bytes],
      outsideReadBytes: c[C.outsideReadBytes],
      outsideWriteBytes: c[C.outsideWriteBytes],
      outsideTransfers: c[C.outsideTransfers],
      recent,
    };
  }
}

/** Bytes of [bus, bus + length) covered by no window (exact arithmetic: a range past 2^64 is outside, not wrapped). */
export function outsideBytes(bus: bigint, length: number, windows: { bus: bigint; size: number }[]): number {
  const end = bus + BigInt(length);
  let inside = 0n;
  for (const w of windows) {
    const lo = bus > w.bus ? bus : w.bus;
    const wEnd = w.bus + BigInt(w.size);
    const hi = end < wEnd ? end : wEnd;
    if (hi > lo) inside += hi - lo;
  }
  return length - Number(inside);
}

/**
 * The DMA record of a simulated device, read from any thread (the host's main thread, a test).
 * Undefined for a real device, or a simulated one whose state has no room for a record.
 */
export function readDmaRecord(spec: DeviceSpec, desc: SimDescription): DmaRecordSnapshot | undefined {
  if (!spec.sim) return undefined;
  const at = dmaRecordOffset(desc);
  if (spec.sim.state.byteLength < at + SIM_DMA_RECORD_BYTES) return undefined;
  return new DmaRecord(spec.sim.state, at).snapshot();
}
