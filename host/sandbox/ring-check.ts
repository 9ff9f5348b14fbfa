// The descriptor firewall's core (ring-firewall.ts has the design and the register semantics): the
// host's real rings, one ring's plan and state, and THE descriptor check: every buffer address plus its
// length wholly inside one granted data window (exact arithmetic), command bits `mustBeClear` clear.
// The state lives in the state block (ring-state.ts) that the Wasm doorbell reads and writes too.

import { FaultError, type FaultKind } from '../faults.ts';
import type { RingLayout } from '../grant.ts';
import {
  MAX_WINDOWS,
  R,
  RING_BYTES,
  RINGS_AT,
  STATE_BYTES,
  ST_ENABLED,
  ST_WINDOWS,
  WINDOW_BYTES,
  WINDOWS_AT,
} from './ring-state.ts';

export interface DataWindow {
  bus: bigint;
  size: number;
  /** The window's bytes as the host sees them (the driver's DMA memory). */
  bytes(): Uint8Array;
  /** Where the window starts in the driver's memory (the Wasm doorbell addresses the shadow by it). */
  at?: number;
}

/** 32-bit register access to the device, bypassing the driver's policy (the host's own writes). */
export interface DeviceRegisters {
  read32(offset: number): number;
  write32(offset: number, value: number): void;
}

/** The host-owned memory a real ring lives in: its bus address and bytes. */
export interface RealRing {
  bus: bigint;
  bytes: Uint8Array;
  /** Its byte offset in the memory `wasmdrv-gate.rings`, when it is mapped there. */
  at?: number;
}

/** Bytes of host-reserved memory the rings need (each ring page-aligned at its maximum size). */
export function ringReserveBytes(rings: RingLayout[], page = 4096): number {
  return rings.reduce((n, r) => n + Math.ceil((r.maxDescriptors * r.descriptorSize) / page) * page, 0);
}

/** Split `bytes` (at bus `bus`) into one page-aligned real ring per layout, in order. */
export function carveRealRings(rings: RingLayout[], bus: bigint, bytes: Uint8Array, page = 4096): RealRing[] {
  let at = 0;
  return rings.map((r) => {
    const size = Math.ceil((r.maxDescriptors * r.descriptorSize) / page) * page;
    const out = { bus: bus + BigInt(at), bytes: bytes.subarray(at, at + size) };
    at += size;
    return out;
  });
}

/**
 * What the host knows of one ring beyond the device's registers: where the driver's shadow lies,
 * the count, the tail it last checked, and how far write-backs were copied. A hot reload (and a
 * rollback to the previous module) hands it to the next instance's firewall, which takes the
 * running ring over instead of emptying it (adopt()).
 */
export interface RingState {
  name: string;
  shadowLow: number;
  shadowHigh: number;
  count: number;
  tail: number;
  synced: number;
}

interface FieldPlan {
  name: string;
  offset: number;
  width: number;
  meaning: RingLayout['fields'][number]['meaning'];
  bufferBytes?: number;
  lengthAt?: { offset: number; width: number };
  mustBeClear?: bigint;
}

/** One ring: its plan (from the layout) and its state, kept in its slot of the state block. */
export class Ring {
  private readonly i: number;
  private readonly f: number;
  readonly addresses: FieldPlan[];
  readonly commands: FieldPlan[];
  readonly scratch: Uint8Array;
  /**
   * The doorbell's fast check, in plain numbers (no BigInt, no allocation): what it passes is what
   * check() passes; anything it does not pass goes to check(), which decides and names the fault.
   * Undefined when a field is wider than it handles (check() alone then).
   */
  readonly fast?: {
    addresses: { offset: number; width: number; fixedLen: number; lenOffset: number; lenWidth: number }[];
    commands: { offset: number; width: number; mask: number }[];
  };
  /** Byte offsets in a descriptor of every written-back byte (the sync copies these). */
  readonly writeBackBytes: number[];

  constructor(
    readonly layout: RingLayout,
    readonly real: RealRing,
    private readonly st: Int32Array,
    private readonly f64: Float64Array,
    slot: number,
  ) {
    this.i = (RINGS_AT + slot * RING_BYTES) >> 2;
    this.f = (RINGS_AT + slot * RING_BYTES) >> 3;
    const byName = new Map(layout.fields.map((f) => [f.name, f]));
    const plan = (f: RingLayout['fields'][number]): FieldPlan => {
      const len = f.lengthField === undefined ? undefined : byName.get(f.lengthField);
      return { ...f, lengthAt: len && { offset: len.offset, width: len.width } };
    };
    this.addresses = layout.fields.filter((f) => f.meaning === 'buffer-address').map(plan);
    this.commands = layout.fields.filter((f) => f.meaning === 'command' && f.mustBeClear).map(plan);
    this.scratch = new Uint8Array(layout.descriptorSize);
    this.writeBackBytes = layout.fields
      .filter((f) => f.meaning === 'status' || f.meaning === 'written-length')
      .flatMap((f) => Array.from({ length: f.width }, (_, k) => f.offset + k));
    const fits =
      this.addresses.every((a) => (a.width === 4 || a.width === 8) && (a.lengthAt?.width ?? 4) <= 4) &&
      this.commands.every((c) => c.width <= 4);
    if (fits)
      this.fast = {
        addresses: this.addresses.map((a) => ({
          offset: a.offset,
          width: a.width,
          fixedLen: a.lengthAt ? -1 : (a.bufferBytes ?? 0),
          lenOffset: a.lengthAt?.offset ?? 0,
          lenWidth: a.lengthAt?.width ?? 0,
        })),
        commands: this.commands.map((c) => ({ offset: c.offset, width: c.width, mask: Number(c.mustBeClear!) })),
      };
    this.realAt = real.at ?? -1;
    this.shadowAt = -1;
  }

  get shadowLow(): number {
    return this.st[this.i + (R.shadowLow >> 2)] >>> 0;
  }
  set shadowLow(v: number) {
    this.st[this.i + (R.shadowLow >> 2)] = v;
  }
  get shadowHigh(): number {
    return this.st[this.i + (R.shadowHigh >> 2)] >>> 0;
  }
  set shadowHigh(v: number) {
    this.st[this.i + (R.shadowHigh >> 2)] = v;
  }
  get count(): number {
    return this.st[this.i + (R.count >> 2)];
  }
  set count(v: number) {
    this.st[this.i + (R.count >> 2)] = v;
  }
  get tail(): number {
    return this.st[this.i + (R.tail >> 2)];
  }
  set tail(v: number) {
    this.st[this.i + (R.tail >> 2)] = v;
  }
  /** Descriptors before this index (from the last sync) have had their write-backs copied. */
  get synced(): number {
    return this.st[this.i + (R.synced >> 2)];
  }
  set synced(v: number) {
    this.st[this.i + (R.synced >> 2)] = v;
  }
  get seen(): number {
    return this.st[this.i + (R.seen >> 2)];
  }
  set seen(v: number) {
    this.st[this.i + (R.seen >> 2)] = v;
  }
  get shadowAt(): number {
    return this.st[this.i + (R.shadowAt >> 2)];
  }
  set shadowAt(v: number) {
    this.st[this.i + (R.shadowAt >> 2)] = v;
  }
  set realAt(v: number) {
    this.st[this.i + (R.realAt >> 2)] = v;
  }
  get checked(): number {
    return this.f64[this.f + (R.checked >> 3)];
  }
  set checked(v: number) {
    this.f64[this.f + (R.checked >> 3)] = v;
  }
  get fastDoorbells(): number {
    return this.f64[this.f + (R.fastDoorbells >> 3)];
  }
  get fastHeads(): number {
    return this.f64[this.f + (R.fastHeads >> 3)];
  }

  get shadowBase(): bigint {
    return (BigInt(this.shadowHigh) << 32n) | BigInt(this.shadowLow);
  }
}

/** The state block the rings' state lives in (ring-state.ts), and the slot of this firewall's first ring. */
export interface StateBlock {
  bytes: Uint8Array;
  firstSlot: number;
}

/**
 * Open the block to the Wasm path once every firewall on it is started or has adopted its rings: the
 * driver's windows go into its table and `enabled` is set. Left closed (the Wasm path then always calls
 * JavaScript) when there are more windows than the table holds or one has no place in driver memory.
 */
export function openStateBlock(bytes: Uint8Array, windows: DataWindow[]): boolean {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, STATE_BYTES);
  if (windows.length === 0 || windows.length > MAX_WINDOWS || windows.some((w) => w.at === undefined)) return false;
  windows.forEach((w, i) => {
    dv.setBigUint64(WINDOWS_AT + i * WINDOW_BYTES, w.bus, true);
    dv.setBigUint64(WINDOWS_AT + i * WINDOW_BYTES + 8, BigInt(w.size), true);
  });
  dv.setUint32(ST_WINDOWS, windows.length, true);
  dv.setUint32(ST_ENABLED, 1, true);
  return true;
}

/** The value of a ring's length register for `count` descriptors. */
export function lengthValue(ring: Ring, count: number): number {
  return ring.layout.lengthUnit === 'bytes' ? count * ring.layout.descriptorSize : count;
}

/**
 * The host's own program of a ring (before the driver runs, and after a reset of the device's ring
 * registers): quiesce (tail to the device's head: nothing pending), head = tail = 0, the base at the
 * real ring, the smallest legal length; the host's state an empty ring of that length.
 */
export function programRing(device: DeviceRegisters, ring: Ring): void {
  const r = ring.layout.registers;
  device.write32(r.tail, device.read32(r.head) & 0xffff);
  device.write32(r.head, 0);
  device.write32(r.tail, 0);
  device.write32(r.baseLow, Number(ring.real.bus & 0xffffffffn));
  if (r.baseHigh !== undefined) device.write32(r.baseHigh, Number(ring.real.bus >> 32n));
  ring.count = ring.layout.countMultiple;
  device.write32(r.length, lengthValue(ring, ring.count));
  ring.tail = 0;
  ring.synced = 0;
  ring.seen = 0;
}

/** True when the device's base and length registers hold the real ring and the ring's count. */
export function onRealRing(device: DeviceRegisters, ring: Ring, count = ring.count): boolean {
  const r = ring.layout.registers;
  const high = r.baseHigh === undefined ? 0 : device.read32(r.baseHigh) >>> 0;
  return (
    device.read32(r.baseLow) >>> 0 === Number(ring.real.bus & 0xffffffffn) &&
    high === Number(ring.real.bus >> 32n) &&
    device.read32(r.length) >>> 0 === lengthValue(ring, count)
  );
}

function readLE(b: Uint8Array, at: number, width: number): bigint {
  let v = 0n;
  for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i]);
  return v;
}

export const hex = (v: bigint | number) => `0x${v.toString(16)}`;

export function windowOf(windows: DataWindow[], addr: bigint, len: bigint): DataWindow | undefined {
  return windows.find((w) => addr >= w.bus && addr + len <= w.bus + BigInt(w.size));
}

/**
 * The fast check (Ring.fast) over `spans` (start, end of each window as numbers, flat): true when the
 * descriptor certainly passes checkDescriptor().
 */
export function passes(ring: Ring, spans: number[] | undefined, d: Uint8Array): boolean {
  const f = ring.fast;
  if (!f || !spans) return false;
  for (let j = 0; j < f.commands.length; j++) {
    const c = f.commands[j];
    let v = 0;
    for (let k = 0; k < c.width; k++) v |= d[c.offset + k] << (8 * k);
    if ((v >>> 0) & c.mask) return false;
  }
  for (let j = 0; j < f.addresses.length; j++) {
    const a = f.addresses[j];
    const o = a.offset;
    const lo = (d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (d[o + 3] << 24)) >>> 0;
    const hi = a.width === 8 ? (d[o + 4] | (d[o + 5] << 8) | (d[o + 6] << 16) | (d[o + 7] << 24)) >>> 0 : 0;
    if (hi >= 0x100000) return false; // at or past 2^52: checkDescriptor() decides
    const addr = hi * 4294967296 + lo;
    let len = a.fixedLen;
    if (len < 0) {
      len = 0;
      for (let k = 0; k < a.lenWidth; k++) len += d[a.lenOffset + k] * 2 ** (8 * k);
    }
    let inside = false;
    for (let w = 0; w < spans.length; w += 2)
      if (addr >= spans[w] && addr + len <= spans[w + 1]) {
        inside = true;
        break;
      }
    if (!inside) return false;
  }
  return true;
}

/** THE check of descriptor `index` (its copy `d`): throws the typed fault naming field and value. */
export function checkDescriptor(label: string, ring: Ring, windows: DataWindow[], index: number, d: Uint8Array): void {
  const fault = (kind: FaultKind, what: string): never => {
    throw new FaultError(kind, `${label}: ring "${ring.layout.name}": ${what}`);
  };
  for (const c of ring.commands) {
    const v = readLE(d, c.offset, c.width);
    if (v & c.mustBeClear!)
      fault(
        'dma-descriptor-bad-command',
        `descriptor ${index} field "${c.name}": value ${hex(v)} sets bits ${hex(v & c.mustBeClear!)} the manifest refuses`,
      );
  }
  for (const a of ring.addresses) {
    const addr = readLE(d, a.offset, a.width);
    const len = a.lengthAt ? readLE(d, a.lengthAt.offset, a.lengthAt.width) : BigInt(a.bufferBytes ?? 0);
    if (windowOf(windows, addr, len)) continue;
    const high = a.width === 8 && addr >> 32n ? ' (the high half is set)' : '';
    const grants = windows.map((w) => `${hex(w.bus)}+${hex(w.size)}`).join(', ') || 'none';
    fault(
      'dma-descriptor-outside-grant',
      `descriptor ${index} field "${a.name}": buffer ${hex(addr)}+${len}${high} lies outside every granted DMA window (${grants})`,
    );
  }
}
