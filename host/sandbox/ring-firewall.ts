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
//  - a write that resets the device's ring registers (the manifest's `resetBy`, the e1000's CTRL.RST;
//    ring-reset.ts) is passed on, and once the reset has finished the rings it reset are programmed
//    afresh, as before the driver ran: the device never fetches from the reset base 0.
//
// A bad descriptor ends the driver with a typed fault naming ring, index, field and address; the
// tail is not written, so the device never sees it. Nothing here knows about the e1000.
//
// The check and copy core (real rings, ring state, THE descriptor check) is ring-check.ts. Each
// ring's state lives in a state block (ring-state.ts): with the register gate compiled into the
// driver, the doorbell and head read are served by generated Wasm (ring-fast.ts) that reads and
// writes the same block, and calls this class (the same register write) for anything it does not pass.

import { FaultError, type FaultKind } from '../faults.ts';
import type { RingLayout } from '../grant.ts';
import {
  Ring,
  checkDescriptor,
  hex,
  lengthValue,
  onRealRing,
  passes,
  programRing,
  windowOf,
  type DataWindow,
  type DeviceRegisters,
  type RealRing,
  type RingState,
  type StateBlock,
} from './ring-check.ts';
import { ResetTriggers } from './ring-reset.ts';
import { STATE_BYTES } from './ring-state.ts';

export {
  carveRealRings,
  openStateBlock,
  ringReserveBytes,
  type DataWindow,
  type DeviceRegisters,
  type RealRing,
  type RingState,
  type StateBlock,
} from './ring-check.ts';

type Reg = 'baseLow' | 'baseHigh' | 'length' | 'head' | 'tail';

export class RingFirewall {
  private readonly rings: Ring[];
  /** Register offset → ring and which of its registers. */
  private readonly regs = new Map<number, { ring: Ring; reg: Reg }>();
  /** start, end of each window as numbers, flat (undefined: a window reaches past 2^52; check() alone). */
  private readonly spans?: number[];
  /** The registers whose writes reset rings (the manifest's `resetBy`): their writes come here too. */
  private readonly resets: ResetTriggers;
  /** Offsets of the registers whose reads (`reads`) or writes (`writes`) come here. */
  private readonly owned: { reads: number[]; writes: number[] };

  constructor(
    private readonly label: string,
    layouts: RingLayout[],
    real: RealRing[],
    private readonly windows: DataWindow[],
    private readonly device: DeviceRegisters,
    block: StateBlock = { bytes: new Uint8Array(STATE_BYTES), firstSlot: 0 },
  ) {
    const b = block.bytes;
    const i32 = new Int32Array(b.buffer, b.byteOffset, STATE_BYTES >> 2);
    const f64 = new Float64Array(b.buffer, b.byteOffset, STATE_BYTES >> 3);
    this.rings = layouts.map((l, i) => new Ring(l, real[i], i32, f64, block.firstSlot + i));
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
    this.resets = new ResetTriggers(this.rings);
    this.owned = { reads: [...this.regs.keys()], writes: [...this.regs.keys(), ...this.resets.offsets()] };
  }

  /** Descriptors checked and copied (by either path), for the stats and the tests. */
  get checked(): number {
    return this.rings.reduce((n, r) => n + r.checked, 0);
  }

  /** Doorbells and head reads the Wasm path served (ring-fast.ts), for the stats and the tests. */
  get fast(): { doorbells: number; heads: number } {
    return {
      doorbells: this.rings.reduce((n, r) => n + r.fastDoorbells, 0),
      heads: this.rings.reduce((n, r) => n + r.fastHeads, 0),
    };
  }

  /** Where the shadow ring lies in the driver's memory for the Wasm path (-1: not wholly in one window). */
  private placeShadow(ring: Ring): void {
    const w = windowOf(this.windows, ring.shadowBase, BigInt(ring.count * ring.layout.descriptorSize));
    ring.shadowAt = w?.at === undefined ? -1 : w.at + Number(ring.shadowBase - w.bus);
  }

  /**
   * True when `offset` is one of the rings' registers, or for a write a register whose writes reset
   * rings: its accesses come here, never straight to the device.
   */
  claims(offset: number, write = false): boolean {
    return this.regs.has(offset) || (write && this.resets.has(offset));
  }

  /** True when an access of `width` bytes at `offset` touches a byte of a register claims() names. */
  overlaps(offset: number, width: number, write = false): boolean {
    for (const reg of write ? this.owned.writes : this.owned.reads)
      if (offset < reg + 4 && reg < offset + width) return true;
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
      programRing(this.device, ring);
      this.placeShadow(ring);
    }
  }

  /**
   * A driver's write of a register whose writes reset rings: passed to the device; when it resets
   * rings, once the reset has finished each is programmed afresh (as by start()) and checked to hold,
   * and the driver's view is the device's after a reset: the shadow base 0 (a doorbell before the
   * driver writes the base again faults: the shadow lies outside the grant), head = tail = 0.
   */
  private reset(offset: number, value: number): void {
    const stuck = (ring: Ring, what: string) => this.fault('device-bad-reset', ring, what);
    for (const ring of this.resets.write(this.device, offset, value, stuck)) {
      programRing(this.device, ring);
      if (!onRealRing(this.device, ring) || (this.device.read32(ring.layout.registers.tail) & 0xffff) !== 0)
        stuck(ring, `after the reset (register ${hex(offset)}) the device does not hold the ring the host programmed`);
      ring.shadowLow = 0;
      ring.shadowHigh = 0;
      this.placeShadow(ring);
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
      if (!onRealRing(this.device, ring, s.count))
        return `ring "${l.name}": the device is no longer on the host's real ring of the saved count`;
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
      ring.seen = s.synced;
      this.placeShadow(ring);
    }
    return undefined;
  }

  private fault(kind: FaultKind, ring: Ring, what: string): never {
    throw new FaultError(kind, `${this.label}: ring "${ring.layout.name}": ${what}`);
  }

  /** A driver's write of a register claims() names (the grant's policy has already passed it). */
  write(offset: number, value: number): void {
    const v = value >>> 0;
    const hit = this.regs.get(offset);
    if (!hit) return this.reset(offset, v);
    const { ring, reg } = hit;
    switch (reg) {
      case 'baseLow':
        ring.shadowLow = v;
        return this.placeShadow(ring);
      case 'baseHigh':
        ring.shadowHigh = v;
        return this.placeShadow(ring);
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
        return lengthValue(ring, ring.count) | 0;
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
    this.device.write32(r.length, lengthValue(ring, count));
    ring.count = count;
    ring.tail = 0;
    ring.synced = 0;
    ring.seen = 0;
    this.placeShadow(ring);
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
    const head = this.deviceHead(ring);
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
        if (!passes(ring, this.spans, d)) checkDescriptor(this.label, ring, this.windows, i, d);
        for (let b = 0; b < size; b++) real[at + b] = d[b];
      }
      ring.checked += fresh;
    }
    ring.tail = newTail;
    this.device.write32(l.registers.tail, newTail);
    this.syncRing(ring);
  }

  /**
   * The device's head: inside the ring, and between the head last seen (R.seen) and the tail the host
   * gave it (a device only moves its head forward, up to the tail). Anything else is the device lying
   * (or broken), not the driver: `device-bad-head`, naming ring, register and value.
   */
  private deviceHead(ring: Ring): number {
    const l = ring.layout;
    const raw = this.device.read32(l.registers.head) >>> 0;
    const head = raw & 0xffff;
    const n = ring.count;
    const what = `the device's head (register ${hex(l.registers.head)}) reads ${hex(raw)}`;
    if (head >= n) this.fault('device-bad-head', ring, `${what}: outside the ring of ${n} descriptors`);
    const seen = ring.seen;
    if ((head - seen + n) % n > (ring.tail - seen + n) % n)
      this.fault(
        'device-bad-head',
        ring,
        `${what}: not between the head last seen (${seen}) and the tail given to it (${ring.tail}): the device moved its head backwards or past its tail`,
      );
    ring.seen = head;
    return head;
  }

  /** The driver's shadow ring, which must lie wholly inside one granted window. */
  private shadowBytes(ring: Ring): Uint8Array {
    const base = ring.shadowBase;
    const len = ring.count * ring.layout.descriptorSize;
    const w = windowOf(this.windows, base, BigInt(len));
    if (!w)
      this.fault(
        'dma-descriptor-outside-grant',
        ring,
        `the shadow ring at ${hex(base)}+${len} (field base) lies outside every granted DMA window`,
      );
    const at = Number(base - w.bus);
    return w.bytes().subarray(at, at + len);
  }

  /** Copy the write-backs of what the device finished into every shadow ring. */
  sync(): void {
    for (const ring of this.rings) this.syncRing(ring);
  }

  /** Copy write-backs of descriptors [synced, head) into the shadow; returns the device's head. */
  private syncRing(ring: Ring): number {
    const head = this.deviceHead(ring);
    if (head === ring.synced) return head;
    const w = windowOf(this.windows, ring.shadowBase, BigInt(ring.count * ring.layout.descriptorSize));
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
