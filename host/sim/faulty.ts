// A misbehaving device: wraps another model and, driven by a seeded PRNG, returns garbage from
// register reads, raises spurious interrupts, drops real ones, and holds status bits stuck. Used by
// the fault-injection campaign; `hostBugOnRead` makes the model itself throw (a bug in host code,
// which must be reported as a host error and not blamed on the driver).
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

  private chance(p = 0): boolean {
    return p > 0 && this.next() / 0x1_0000_0000 < p;
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
    this.spurious();
    let v = this.inner.read(region, offset, width);
    if (this.chance(this.o.garbageReads))
      v =
        width === 8
          ? (BigInt(this.next()) << 32n) | BigInt(this.next())
          : this.next() & (width === 4 ? 0xffffffff : (1 << (width * 8)) - 1);
    const st = this.o.stuck;
    if (st && st.offset === offset && typeof v === 'number') v = ((v & ~st.mask) | (st.value & st.mask)) >>> 0;
    return v;
  }

  write(region: number, offset: number, width: Width, value: number | bigint): void {
    this.spurious();
    this.inner.write(region, offset, width, value);
  }

  portIn(port: number, offset: number, width: 1 | 2 | 4): number {
    return this.inner.portIn ? this.inner.portIn(port, offset, width) : 0xffffffff;
  }

  portOut(port: number, offset: number, width: 1 | 2 | 4, value: number): void {
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
