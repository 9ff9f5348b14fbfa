// A misbehaving device: wraps another model and, driven by a seeded PRNG, returns garbage from
// register and port reads, raises spurious interrupts, drops real ones, and holds status bits stuck;
// for a ring device (`rings`) it adds descriptor faults: write-backs with garbage length and status,
// write-backs onto descriptors never handed over, head registers reading out of range. Used by the
// fault-injection campaign; `hostBugOnRead` makes the model itself throw (a bug in host code, which
// must be reported as a host error and not blamed on the driver).
// The inner model is named by string and looked up in the catalogue handed to faulty(): this file
// imports no other model and not the catalogue, which imports it.

import type { ModelLookup, SimContext, SimDescription, SimModel, SimModelClass, Width } from './model.ts';

export interface FaultyOptions {
  /** The model to wrap. Default "edu". */
  inner?: string;
  innerOptions?: Record<string, unknown>;
  seed?: number;
  /** Probability that a read returns random bits. */
  garbageReads?: number;
  /** Probability, per register access, of a spurious interrupt. */
  spuriousIrqs?: number;
  /** Probability that a rising interrupt line is lost. */
  dropIrqs?: number;
  /** A register whose `mask` bits always read as `value`. */
  stuck?: { offset: number; mask: number; value: number };
  /** Reads of this offset throw inside the model (a simulated host bug). */
  hostBugOnRead?: number;
  /** Register and port accesses the device serves well before it starts to misbehave (default 0): faults past the probe. */
  onset?: number;
  /**
   * Descriptor faults of a ring device: the rings (as its manifest declares them) whose write-backs
   * and head registers misbehave. The device still reaches memory only where a ring or buffer lies:
   * what is wrong is what it writes back and reports, not where.
   */
  rings?: FaultyRing[];
  /** Probability that a write-back into a ring carries garbage in its written-length and status fields. */
  garbageWriteBacks?: number;
  /** Probability that a write-back also lands on another descriptor of its ring (DD on one never handed over). */
  strayWriteBacks?: number;
  /** Probability that a read of a ring's head register returns an index the device never reached (often beyond the ring). */
  badHeads?: number;
}

/** A ring as the faulty device needs it: where its registers are, its descriptor size, the fields it writes back. */
export interface FaultyRing {
  region: number;
  baseLow: number;
  baseHigh?: number;
  length: number;
  /** RDLEN-style 'bytes' or a descriptor count. */
  lengthUnit: 'bytes' | 'descriptors';
  head: number;
  descriptorSize: number;
  /** The fields the device writes back (meaning 'written-length' or 'status'). */
  writeBacks: { offset: number; width: number; meaning: 'written-length' | 'status' }[];
}

class Faulty implements SimModel {
  private readonly inner: SimModel;
  private rng: number;

  constructor(
    private readonly ctx: SimContext,
    state: SharedArrayBuffer,
    at: number,
    private readonly o: FaultyOptions,
    models: ModelLookup,
  ) {
    this.rng = (o.seed ?? 1) >>> 0 || 1;
    const wrapped: SimContext = {
      ...ctx,
      setIrq: (level) => {
        if (level && this.chance(o.dropIrqs)) return;
        ctx.setIrq(level);
      },
      dmaWrite: (bus, data, device) => this.dmaWrite(bus, data, device),
    };
    this.inner = models(o.inner ?? 'edu').create(wrapped, state, at, o.innerOptions ?? {});
  }

  /** xorshift32: deterministic per seed, so a campaign trial can be replayed. */
  private next(): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return this.rng;
  }

  /** Register and port accesses so far (for `onset`). */
  private accesses = 0;

  private chance(p = 0): boolean {
    return p > 0 && this.accesses > (this.o.onset ?? 0) && this.next() / 0x1_0000_0000 < p;
  }

  /** The ring `bus` falls in, with the descriptor index and the offset inside it (from the inner model's registers). */
  private ringAt(
    bus: bigint,
  ): { ring: FaultyRing; base: bigint; count: number; index: number; at: number } | undefined {
    for (const ring of this.o.rings ?? []) {
      const reg = (off: number) => BigInt(Number(this.inner.read(ring.region, off, 4)) >>> 0);
      const base = reg(ring.baseLow) | (ring.baseHigh === undefined ? 0n : reg(ring.baseHigh) << 32n);
      const len = Number(reg(ring.length));
      const count = ring.lengthUnit === 'bytes' ? Math.floor(len / ring.descriptorSize) : len;
      const rel = bus - base;
      if (count === 0 || rel < 0n || rel >= BigInt(count * ring.descriptorSize)) continue;
      const off = Number(rel);
      return { ring, base, count, index: Math.floor(off / ring.descriptorSize), at: off % ring.descriptorSize };
    }
    return undefined;
  }

  /** A device write to memory: a write-back into a ring may carry garbage, or land on another descriptor too. */
  private dmaWrite(bus: bigint, data: Uint8Array, device?: bigint): boolean {
    const o = this.o;
    const hit = o.rings?.length && (o.garbageWriteBacks || o.strayWriteBacks) ? this.ringAt(bus) : undefined;
    if (!hit || hit.at + data.length > hit.ring.descriptorSize) return this.ctx.dmaWrite(bus, data, device);
    let out = data;
    if (this.chance(o.garbageWriteBacks)) {
      out = data.slice();
      for (const f of hit.ring.writeBacks) {
        for (let k = 0; k < f.width; k++) {
          const i = f.offset + k - hit.at;
          if (i < 0 || i >= out.length) continue;
          // a length: often the field's maximum (larger than any buffer); a status: random bits, DD half the time
          if (f.meaning === 'written-length') out[i] = this.next() & 1 ? 0xff : this.next() & 0xff;
          else out[i] = k === 0 && this.next() & 1 ? (this.next() & 0xff) | 1 : this.next() & 0xff;
        }
      }
    }
    const ok = this.ctx.dmaWrite(bus, out, device);
    if (ok && hit.count > 1 && this.chance(o.strayWriteBacks)) {
      const other = (hit.index + 1 + (this.next() % (hit.count - 1))) % hit.count;
      this.ctx.dmaWrite(hit.base + BigInt(other * hit.ring.descriptorSize + hit.at), out, device);
    }
    return ok;
  }

  private spurious(): void {
    if (this.chance(this.o.spuriousIrqs)) {
      this.ctx.setIrq(true);
      this.ctx.setIrq(false);
    }
  }

  read(region: number, offset: number, width: Width): number | bigint {
    if (offset === this.o.hostBugOnRead)
      throw new Error(`faulty model: simulated host bug on a read of 0x${offset.toString(16)}`);
    this.accesses++;
    this.spurious();
    let v = this.inner.read(region, offset, width);
    if (this.chance(this.o.garbageReads))
      v =
        width === 8
          ? (BigInt(this.next()) << 32n) | BigInt(this.next())
          : this.next() & (width === 4 ? 0xffffffff : (1 << (width * 8)) - 1);
    const st = this.o.stuck;
    if (st && st.offset === offset && typeof v === 'number') v = ((v & ~st.mask) | (st.value & st.mask)) >>> 0;
    if (this.o.badHeads && this.o.rings && width === 4) {
      const ring = this.o.rings.find((g) => g.region === region && g.head === offset);
      if (ring && this.chance(this.o.badHeads)) {
        const len = Number(this.inner.read(region, ring.length, 4)) >>> 0;
        const count = ring.lengthUnit === 'bytes' ? Math.floor(len / ring.descriptorSize) : len;
        // beyond the ring half the time, else an index inside it the device never reached
        v = this.next() & 1 || count === 0 ? (count + (this.next() % (0x10000 - count))) >>> 0 : this.next() % count;
      }
    }
    return v;
  }

  write(region: number, offset: number, width: Width, value: number | bigint): void {
    this.accesses++;
    this.spurious();
    this.inner.write(region, offset, width, value);
  }

  // Ports misbehave as registers do: garbage reads, spurious interrupts, the stuck bits at their offset.
  portIn(port: number, offset: number, width: 1 | 2 | 4): number {
    this.accesses++;
    this.spurious();
    let v = this.inner.portIn ? this.inner.portIn(port, offset, width) : 0xffffffff;
    if (this.chance(this.o.garbageReads)) v = this.next() & (width === 4 ? 0xffffffff : (1 << (width * 8)) - 1);
    const st = this.o.stuck;
    if (st && st.offset === offset) v = ((v & ~st.mask) | (st.value & st.mask)) >>> 0;
    return v >>> 0;
  }

  portOut(port: number, offset: number, width: 1 | 2 | 4, value: number): void {
    this.accesses++;
    this.spurious();
    this.inner.portOut?.(port, offset, width, value);
  }

  tick(now: number): void {
    this.inner.tick(now);
  }

  nextEvent(): number {
    return this.inner.nextEvent();
  }

  reset(): void {
    this.inner.reset();
  }

  stubAcknowledge(): boolean {
    return this.inner.stubAcknowledge?.() ?? false;
  }

  irqLevel(): boolean {
    return this.inner.irqLevel?.() ?? false;
  }
}

/** The faulty device over the models `models` names (the catalogue, host/sim/registry.ts, passes itself). */
export const faulty = (models: ModelLookup): SimModelClass<FaultyOptions> => ({
  name: 'faulty',
  summary: 'a misbehaving device: another model with garbage reads, spurious/lost interrupts, stuck bits',
  describe(o: FaultyOptions): SimDescription {
    return { ...models(o.inner ?? 'edu').describe(o.innerOptions ?? {}), model: 'faulty' };
  },
  create(ctx, state, at, o) {
    return new Faulty(ctx, state, at, o, models);
  },
});
