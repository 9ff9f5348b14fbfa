// The fuzzer's device: register reads, interrupt timing and DMA contents come from the fuzz input.
// Layered over a real model (edu, uart16550) so a driver gets past its probe, or over nothing
// ("generic": every read comes from the input, 0 once it runs out).
//
// Register stream: for each read, one control byte. (ctrl & 3) == 0: the read returns the next 4
// input bytes (little-endian, cut to the width); else — and once the stream runs out — the inner
// model answers. (ctrl & 0x1c) == 0x1c:
// a spurious interrupt edge before the access.

import type { SimContext, SimDescription, SimModel, SimModelClass, Width } from '../sim/model.ts';
import { simModelClass } from '../sim/registry.ts';

export interface FuzzModelOptions {
  inner: string; // a model name, or 'generic'
  stream: Uint8Array;
}

class FuzzDevice implements SimModel {
  private at = 0;
  private readonly inner: SimModel | null;

  constructor(private readonly ctx: SimContext, state: SharedArrayBuffer, offset: number, private readonly o: FuzzModelOptions) {
    this.inner = o.inner === 'generic' ? null : simModelClass(o.inner).create(ctx, state, offset, {});
  }

  private byte(): number | undefined {
    return this.at < this.o.stream.length ? this.o.stream[this.at++] : undefined;
  }

  read(region: number, offset: number, width: Width): number | bigint {
    const ctrl = this.byte();
    if (ctrl !== undefined && (ctrl & 0x1c) === 0x1c) {
      this.ctx.setIrq(true);
      this.ctx.setIrq(false);
    }
    if (ctrl === undefined && this.inner) return this.inner.read(region, offset, width);
    if (ctrl === undefined || !this.inner || (ctrl & 3) === 0) {
      let v = 0;
      for (let i = 0; i < 4; i++) v |= (this.byte() ?? 0) << (8 * i);
      v >>>= 0;
      return width === 8 ? BigInt(v) : width === 4 ? v : v & ((1 << (width * 8)) - 1);
    }
    return this.inner.read(region, offset, width);
  }

  write(region: number, offset: number, width: Width, value: number | bigint): void {
    this.inner?.write(region, offset, width, value);
  }

  portIn(port: number, offset: number, width: 1 | 2 | 4): number {
    return Number(this.read(port, offset, width));
  }

  portOut(port: number, offset: number, width: 1 | 2 | 4, value: number): void {
    this.inner?.portOut?.(port, offset, width, value);
  }

  tick(now: number): void {
    this.inner?.tick(now);
  }

  nextEvent(): number {
    return this.inner?.nextEvent() ?? Infinity;
  }

  reset(): void {
    this.inner?.reset();
  }

  stubAcknowledge(): boolean {
    return this.inner?.stubAcknowledge?.() ?? false;
  }

  irqLevel(): boolean {
    return this.inner?.irqLevel?.() ?? false;
  }
}

export const fuzzModel: SimModelClass<FuzzModelOptions> = {
  name: 'fuzz',
  summary: 'the fuzzer\'s device: register values, interrupt timing and DMA contents from the fuzz input',
  describe(o: FuzzModelOptions): SimDescription {
    if (o.inner === 'generic') {
      return { model: 'fuzz', regions: [{ name: 'bar0', size: 1 << 20 }], ports: [{ name: 'ports', size: 8 }], dma: [{ name: 'dma', size: 65536, bus: 0x0100_0000n }], irq: { mode: 'mask' }, stateBytes: 0 };
    }
    return { ...simModelClass(o.inner).describe({}), model: 'fuzz' };
  },
  create(ctx, state, at, o) {
    return new FuzzDevice(ctx, state, at, o);
  },
};
