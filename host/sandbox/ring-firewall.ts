// The descriptor firewall: DMA confinement for ring devices (a NIC) on a machine without an IOMMU.
//
// A ring device takes its buffer addresses from descriptors in RAM, so checking registers is not
// enough. The manifest declares each ring (host/package/rings.ts); for each one the host owns the
// real ring, in memory the driver cannot write (a host-reserved slice of the device's DMA memory,
// never mapped into the driver), and programs the device's base and length registers itself:
//
//  - the driver's writes of the base (low/high) registers name where its SHADOW ring lies; they are
//    recorded, never passed to the device. A length write is checked (count, multiple, maximum),
//    quiesces the ring (tail to the device's head, then head = tail = 0) and programs the device
//    with the real ring of that length.
//  - a head write is accepted only when it changes nothing (the ring is empty and the value is its
//    tail); it is never passed through.
//  - a tail (doorbell) write is the checked slow path: the shadow ring must lie inside one granted
//    window; the new tail must index the ring and hand over no more descriptors than are free; each
//    new descriptor is COPIED out of the shadow once, checked from that copy (every buffer address
//    plus its length — bufferBytes for device-written buffers, the length field for device-read
//    ones — wholly inside one granted data window, exact arithmetic; command bits `mustBeClear`
//    clear), written into the real ring, and only then is the tail written to the device. The copy
//    is what the device sees, so the driver changing its shadow after the doorbell changes nothing.
//  - write-backs (status, written length) of the descriptors the device has finished (from the last
//    sync to its head) are copied back into the shadow after each doorbell, when the driver reads a
//    head register, before an interrupt reaches the driver and before each request (`sync()`).
//
// A bad descriptor ends the driver with a typed fault naming ring, index, field and address; the
// tail is not written, so the device never sees it. Nothing here knows about the e1000.

import { FaultError, type FaultKind } from '../faults.ts';
import type { RingLayout } from '../grant.ts';

export interface DataWindow {
  bus: bigint;
  size: number;
  /** The window's bytes as the host sees them (the driver's DMA memory). */
  bytes(): Uint8Array;
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

type Reg = 'baseLow' | 'baseHigh' | 'length' | 'head' | 'tail';

interface FieldPlan {
  name: string;
  offset: number;
  width: number;
  meaning: RingLayout['fields'][number]['meaning'];
  bufferBytes?: number;
  lengthAt?: { offset: number; width: number };
  mustBeClear?: bigint;
}

class Ring {
  shadowLow = 0;
  shadowHigh = 0;
  count = 0;
  tail = 0;
  /** Descriptors before this index (from the last sync) have had their write-backs copied. */
  synced = 0;
  readonly addresses: FieldPlan[];
  readonly commands: FieldPlan[];
  /** Byte ranges the device writes back, copied into the shadow on sync. */
  readonly writeBacks: { offset: number; width: number }[];
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
  ) {
    const byName = new Map(layout.fields.map((f) => [f.name, f]));
    const plan = (f: RingLayout['fields'][number]): FieldPlan => {
      const len = f.lengthField === undefined ? undefined : byName.get(f.lengthField);
      return { ...f, lengthAt: len && { offset: len.offset, width: len.width } };
    };
    this.addresses = layout.fields.filter((f) => f.meaning === 'buffer-address').map(plan);
    this.commands = layout.fields.filter((f) => f.meaning === 'command' && f.mustBeClear).map(plan);
    this.writeBacks = layout.fields
      .filter((f) => f.meaning === 'status' || f.meaning === 'written-length')
      .map((f) => ({ offset: f.offset, width: f.width }));
    this.scratch = new Uint8Array(layout.descriptorSize);
    this.writeBackBytes = this.writeBacks.flatMap((f) => Array.from({ length: f.width }, (_, k) => f.offset + k));
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
  }

  get shadowBase(): bigint {
    return (BigInt(this.shadowHigh >>> 0) << 32n) | BigInt(this.shadowLow >>> 0);
  }
}

function readLE(b: Uint8Array, at: number, width: number): bigint {
  let v = 0n;
  for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i]);
  return v;
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

export class RingFirewall {
  private readonly rings: Ring[];
  /** Register offset → ring and which of its registers. */
  private readonly regs = new Map<number, { ring: Ring; reg: Reg }>();
  /** Descriptors checked and copied, for the stats and the tests. */
  checked = 0;
  /** start, end of each window as numbers, flat (undefined: a window reaches past 2^52; check() alone). */
  private readonly spans?: number[];

  constructor(
    private readonly label: string,
    layouts: RingLayout[],
    real: RealRing[],
    private readonly windows: DataWindow[],
    private readonly device: DeviceRegisters,
  ) {
    this.rings = layouts.map((l, i) => new Ring(l, real[i]));
    // The windows as numbers for the fast check, when every address in them is exact as a double.
    const LIMIT = 2 ** 52;
    if (windows.every((w) => w.bus + BigInt(w.size) <= BigInt(LIMIT)))
      this.spans = windows.flatMap((w) => [Number(w.bus), Number(w.bus) + w.size]);
    for (const ring of this.rings) {
      for (const [reg, off] of Object.entries(ring.layout.registers) as [Reg, number | undefined][])
        if (off !== undefined) this.regs.set(off, { ring, reg });
      if (ring.real.bytes.length < ring.layout.maxDescriptors * ring.layout.descriptorSize)
        throw new Error(`ring "${ring.layout.name}": the host's real ring is smaller than maxDescriptors`);
    }
  }

  /** True when `offset` is one of the rings' registers (its accesses come here, never straight to the device). */
  claims(offset: number): boolean {
    return this.regs.has(offset);
  }

  /** True when an access of `width` bytes at `offset` touches a byte of a ring register. */
  overlaps(offset: number, width: number): boolean {
    for (const reg of this.regs.keys()) if (offset < reg + 4 && reg < offset + width) return true;
    return false;
  }

  /** Offsets of every ring register (the fast paths must send these to the checked path). */
  registers(): number[] {
    return [...this.regs.keys()];
  }

  /**
   * Program the device before the driver runs: each ring's base is its real ring, its length the
   * smallest legal one, head = tail = 0 (empty: the device fetches nothing).
   */
  start(): void {
    for (const ring of this.rings) {
      const r = ring.layout.registers;
      this.device.write32(r.tail, this.device.read32(r.head) & 0xffff);
      this.device.write32(r.head, 0);
      this.device.write32(r.tail, 0);
      this.device.write32(r.baseLow, Number(ring.real.bus & 0xffffffffn));
      if (r.baseHigh !== undefined) this.device.write32(r.baseHigh, Number(ring.real.bus >> 32n));
      ring.count = ring.layout.countMultiple;
      this.device.write32(r.length, this.lengthValue(ring, ring.count));
      ring.tail = 0;
      ring.synced = 0;
    }
  }

  /** The host's side of every ring, for the next instance (see RingState). */
  state(): RingState[] {
    return this.rings.map((r) => ({
      name: r.layout.name,
      shadowLow: r.shadowLow,
      shadowHigh: r.shadowHigh,
      count: r.count,
      tail: r.tail,
      synced: r.synced,
    }));
  }

  /**
   * Take running rings over from the previous instance's firewall, writing nothing to the device.
   * Refused (returns a reason; the caller then start()s afresh) unless the saved state names these
   * rings, is one this firewall could itself have reached (count legal, indices inside the ring),
   * and the device is still on the real rings with that length and tail: the device is never left
   * pointing at memory the host no longer checks.
   */
  adopt(saved: RingState[]): string | undefined {
    if (saved.length !== this.rings.length) return `${saved.length} saved rings for ${this.rings.length}`;
    for (let i = 0; i < saved.length; i++) {
      const s = saved[i];
      const ring = this.rings[i];
      const l = ring.layout;
      const r = l.registers;
      if (s.name !== l.name) return `saved ring "${s.name}" is not ring "${l.name}"`;
      if (!Number.isInteger(s.count) || s.count <= 0 || s.count % l.countMultiple || s.count > l.maxDescriptors)
        return `ring "${l.name}": saved count ${s.count} is not legal`;
      if (s.tail >= s.count || s.synced >= s.count) return `ring "${l.name}": saved indices lie beyond the ring`;
      const bus = this.device.read32(r.baseLow) >>> 0;
      const high = r.baseHigh === undefined ? 0 : this.device.read32(r.baseHigh) >>> 0;
      if (bus !== Number(ring.real.bus & 0xffffffffn) || high !== Number(ring.real.bus >> 32n))
        return `ring "${l.name}": the device is no longer on the host's real ring`;
      if (this.device.read32(r.length) >>> 0 !== this.lengthValue(ring, s.count))
        return `ring "${l.name}": the device's length is not the saved count`;
      if ((this.device.read32(r.tail) & 0xffff) !== s.tail) return `ring "${l.name}": the device's tail moved`;
    }
    for (let i = 0; i < saved.length; i++) {
      const s = saved[i];
      const ring = this.rings[i];
      ring.shadowLow = s.shadowLow >>> 0;
      ring.shadowHigh = s.shadowHigh >>> 0;
      ring.count = s.count;
      ring.tail = s.tail;
      ring.synced = s.synced;
    }
    return undefined;
  }

  private lengthValue(ring: Ring, count: number): number {
    return ring.layout.lengthUnit === 'bytes' ? count * ring.layout.descriptorSize : count;
  }

  private fault(kind: FaultKind, ring: Ring, what: string): never {
    throw new FaultError(kind, `${this.label}: ring "${ring.layout.name}": ${what}`);
  }

  /** A driver's write of a ring register (the grant's policy has already passed it). */
  write(offset: number, value: number): void {
    const { ring, reg } = this.regs.get(offset)!;
    const v = value >>> 0;
    switch (reg) {
      case 'baseLow':
        ring.shadowLow = v;
        return;
      case 'baseHigh':
        ring.shadowHigh = v;
        return;
      case 'length':
        return this.setLength(ring, v);
      case 'head':
        return this.setHead(ring, v);
      case 'tail':
        return this.doorbell(ring, v);
    }
  }

  /** A driver's read of a ring register: bases read back as the driver wrote them; a head read syncs. */
  read(offset: number): number {
    const { ring, reg } = this.regs.get(offset)!;
    switch (reg) {
      case 'baseLow':
        return ring.shadowLow | 0;
      case 'baseHigh':
        return ring.shadowHigh | 0;
      case 'length':
        return this.lengthValue(ring, ring.count) | 0;
      case 'tail':
        return ring.tail | 0;
      case 'head':
        return this.syncRing(ring) | 0;
    }
  }

  private setLength(ring: Ring, v: number): void {
    const l = ring.layout;
    const count = l.lengthUnit === 'bytes' ? v / l.descriptorSize : v;
    if (!Number.isInteger(count) || count === 0 || count % l.countMultiple || count > l.maxDescriptors)
      this.fault(
        'dma-descriptor-bad-ring',
        ring,
        `length ${v} (${l.lengthUnit}) is not a count of descriptors that is a multiple of ${l.countMultiple} up to ${l.maxDescriptors}`,
      );
    const r = l.registers;
    // Quiesce first (tail = head: nothing pending), then an empty ring of the new length.
    this.device.write32(r.tail, this.device.read32(r.head) & 0xffff);
    this.device.write32(r.head, 0);
    this.device.write32(r.tail, 0);
    this.device.write32(r.length, this.lengthValue(ring, count));
    ring.count = count;
    ring.tail = 0;
    ring.synced = 0;
  }

  private setHead(ring: Ring, v: number): void {
    const head = this.device.read32(ring.layout.registers.head) & 0xffff;
    if (v !== ring.tail || head !== ring.tail)
      this.fault(
        'dma-descriptor-bad-index',
        ring,
        `head write ${v}: the host owns the head; only a no-op write on an empty ring is accepted (head ${head}, tail ${ring.tail})`,
      );
  }

  /** The checked path of a tail write: copy, check, commit, then ring the device's doorbell. */
  private doorbell(ring: Ring, newTail: number): void {
    const l = ring.layout;
    const n = ring.count;
    if (newTail >= n)
      this.fault(
        'dma-descriptor-bad-index',
        ring,
        `tail ${newTail} lies beyond the ring of ${n} descriptors (field tail, register ${hex(l.registers.tail)})`,
      );
    const head = this.device.read32(l.registers.head) & 0xffff;
    const pending = (ring.tail - head + n) % n;
    const fresh = (newTail - ring.tail + n) % n;
    if (fresh > n - 1 - pending)
      this.fault(
        'dma-descriptor-bad-index',
        ring,
        `tail ${newTail} hands over ${fresh} descriptors but only ${n - 1 - pending} are free (head ${head}, tail ${ring.tail}): it would wrap onto descriptors the device owns`,
      );
    if (fresh > 0) {
      const shadow = this.shadowBytes(ring);
      const size = l.descriptorSize;
      const d = ring.scratch;
      const real = ring.real.bytes;
      for (let k = 0, i = ring.tail; k < fresh; k++, i = (i + 1) % n) {
        // One copy out of the driver's memory; everything below reads the copy.
        const at = i * size;
        for (let b = 0; b < size; b++) d[b] = shadow[at + b];
        if (!this.passes(ring, d)) this.check(ring, i, d);
        for (let b = 0; b < size; b++) real[at + b] = d[b];
      }
      this.checked += fresh;
    }
    ring.tail = newTail;
    this.device.write32(l.registers.tail, newTail);
    this.syncRing(ring);
  }

  /** The driver's shadow ring, which must lie wholly inside one granted window. */
  private shadowBytes(ring: Ring): Uint8Array {
    const base = ring.shadowBase;
    const len = ring.count * ring.layout.descriptorSize;
    const w = this.windowOf(base, BigInt(len));
    if (!w)
      this.fault(
        'dma-descriptor-outside-grant',
        ring,
        `the shadow ring at ${hex(base)}+${len} (field base) lies outside every granted DMA window`,
      );
    const at = Number(base - w.bus);
    return w.bytes().subarray(at, at + len);
  }

  private windowOf(addr: bigint, len: bigint): DataWindow | undefined {
    return this.windows.find((w) => addr >= w.bus && addr + len <= w.bus + BigInt(w.size));
  }

  /** The fast check (Ring.fast): true when the descriptor certainly passes check(). */
  private passes(ring: Ring, d: Uint8Array): boolean {
    const f = ring.fast;
    const spans = this.spans;
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
      if (hi >= 0x100000) return false; // at or past 2^52: check() decides
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

  private check(ring: Ring, index: number, d: Uint8Array): void {
    for (const c of ring.commands) {
      const v = readLE(d, c.offset, c.width);
      if (v & c.mustBeClear!)
        this.fault(
          'dma-descriptor-bad-command',
          ring,
          `descriptor ${index} field "${c.name}": value ${hex(v)} sets bits ${hex(v & c.mustBeClear!)} the manifest refuses`,
        );
    }
    for (const a of ring.addresses) {
      const addr = readLE(d, a.offset, a.width);
      const len = a.lengthAt ? readLE(d, a.lengthAt.offset, a.lengthAt.width) : BigInt(a.bufferBytes ?? 0);
      if (this.windowOf(addr, len)) continue;
      const high = a.width === 8 && addr >> 32n ? ' (the high half is set)' : '';
      const grants = this.windows.map((w) => `${hex(w.bus)}+${hex(w.size)}`).join(', ') || 'none';
      this.fault(
        'dma-descriptor-outside-grant',
        ring,
        `descriptor ${index} field "${a.name}": buffer ${hex(addr)}+${len}${high} lies outside every granted DMA window (${grants})`,
      );
    }
  }

  /** Copy the write-backs of what the device finished into every shadow ring. */
  sync(): void {
    for (const ring of this.rings) this.syncRing(ring);
  }

  /** Copy write-backs of descriptors [synced, head) into the shadow; returns the device's head. */
  private syncRing(ring: Ring): number {
    const head = this.device.read32(ring.layout.registers.head) & 0xffff;
    if (head === ring.synced || head >= ring.count) return head;
    const w = this.windowOf(ring.shadowBase, BigInt(ring.count * ring.layout.descriptorSize));
    if (!w) {
      ring.synced = head; // no shadow to copy into (the driver moved it away): nothing the device did is lost to it
      return head;
    }
    const shadow = w.bytes();
    const base = Number(ring.shadowBase - w.bus);
    const size = ring.layout.descriptorSize;
    const real = ring.real.bytes;
    const bytes = ring.writeBackBytes;
    for (let i = ring.synced; i !== head; i = (i + 1) % ring.count) {
      const at = i * size;
      for (let k = 0; k < bytes.length; k++) shadow[base + at + bytes[k]] = real[at + bytes[k]];
    }
    ring.synced = head;
    return head;
  }
}
