// The fuzzer's device: register reads, interrupt timing and the bytes the device writes by DMA come
// from the fuzz input. Layered over a real model (edu, uart16550, e1000) so a driver gets past its probe,
// or over nothing ("generic": every read comes from the input, 0 once it runs out).
//
// Register stream: for each read, one control byte. (ctrl & 3) == 0: the read returns the next 4
// input bytes (little-endian, cut to the width); else — and once the stream runs out — the inner
// model answers. (ctrl & 0x1c) == 0x1c: a spurious interrupt edge before the access.
// Each DMA transfer the inner model makes into memory takes one control byte too: (ctrl & 3) == 0:
// the first 1 + (ctrl >> 2) bytes it writes are the next input bytes instead of the device's.
//
// A received frame (a NIC model underneath, one with receiveRaw: the e1000) comes from the input as
// a whole (host/fuzz/input.ts): its contents and the descriptor write-back are written as given,
// without control bytes.
//
// The device records where each read's bytes sit in the input (reads()), so that the fuzzer can
// put a comparison operand exactly where the driver will read it (host/fuzz/fuzz.ts, cmplog).
// The inner model is named by string and looked up in the catalogue handed to fuzzModel(), so this
// file imports no other model (the catalogue imports it: no cycle).

import type { ModelLookup, RawWriteback, SimContext, SimDescription, SimModel, SimModelClass, Width } from './model.ts';

export interface FuzzModelOptions {
  inner: string; // a model name, or 'generic'
  stream: Uint8Array;
}

/** Register values that matter to each model's drivers, for the mutator's dictionary. */
export const MODEL_DICTIONARY: Record<string, number[]> = {
  // edu: the id (0x010000ed), status bits (computing 0x01, irq-after-factorial 0x80), interrupt
  // causes (factorial 0x1, DMA 0x100), DMA command bits and the device buffer's address.
  edu: [0x010000ed, 0xed, 0x01, 0x80, 0x81, 0x100, 0x101, 0x1, 0x2, 0x4, 0x7, 0x40000, 0x1000],
  // 16550: LSR data ready / THR empty / TEMT / errors, IIR causes and FIFO bits, MSR, scratch.
  uart16550: [0x01, 0x20, 0x40, 0x60, 0x61, 0x1e, 0xc1, 0xc2, 0xc4, 0xc6, 0xcc, 0x01, 0xb0, 0x55, 0xaa],
  // e1000: STATUS link up/full duplex, ICR causes (TXDW 0x1, LSC 0x4, RXT0 0x80), EERD done, the
  // descriptor status bits the device writes back (DD 0x1, EOP 0x2) and a frame length.
  e1000: [0x80080783, 0x83, 0x01, 0x04, 0x80, 0x85, 0x10, 0x03, 0x02, 0x40, 0x5ea],
  generic: [],
};

/** The generic device's nominal first port (its port range stands for a 16550's, at COM2). */
const GENERIC_PORT_BASE = 0x2f8;

/** Most reads one execution records for the cmplog mutation. */
export const MAX_READS = 256;

export class FuzzDevice implements SimModel {
  private at = 0;
  private end = 0;
  private input: Uint8Array;
  private readonly inner: SimModel | null;
  /** Per read: [offset of its control byte or -1, offset of its 4 value bytes or -1]. */
  readonly readLog = new Int32Array(MAX_READS * 2);
  readCount = 0;
  /** Set when the model wrote into a DMA window (the host restores the whole window). */
  dmaWritten = false;
  /** Set while a received frame from the input is written: its bytes pass as they are. */
  private direct = false;

  constructor(
    private readonly ctx: SimContext,
    state: SharedArrayBuffer,
    offset: number,
    o: FuzzModelOptions,
    models: ModelLookup,
  ) {
    this.input = o.stream;
    this.end = o.stream.length;
    if (o.inner === 'generic') this.inner = null;
    else {
      // The inner model's DMA writes into memory pass through the input (see the header).
      const inner: SimContext = {
        ...ctx,
        dmaWrite: (bus, data) => {
          this.dmaWritten = true;
          return ctx.dmaWrite(bus, this.direct ? data : this.dmaBytes(data));
        },
      };
      this.inner = models(o.inner).create(inner, state, offset, {});
    }
  }

  /** The next execution: the stream is input[start..]. */
  load(input: Uint8Array, start: number): void {
    this.input = input;
    this.at = start;
    this.end = input.length;
    this.readCount = 0;
  }

  /** Does the model underneath receive frames (the input's frame events)? */
  get receivesFrames(): boolean {
    return typeof this.inner?.receiveRaw === 'function';
  }

  /** The device receives `frame` (see SimModel.receiveRaw). */
  receiveFrame(frame: Uint8Array, writeback: RawWriteback | undefined, stay: boolean): void {
    this.direct = true;
    try {
      this.inner?.receiveRaw?.(frame, writeback, stay);
    } finally {
      this.direct = false;
    }
  }

  private byte(): number | undefined {
    return this.at < this.end ? this.input[this.at++] : undefined;
  }

  private dmaBytes(data: Uint8Array): Uint8Array {
    const ctrl = this.byte();
    if (ctrl === undefined || (ctrl & 3) !== 0) return data;
    const n = Math.min(data.length, 1 + (ctrl >> 2), this.end - this.at);
    if (n <= 0) return data;
    const out = data.slice();
    out.set(this.input.subarray(this.at, this.at + n));
    this.at += n;
    return out;
  }

  read(region: number, offset: number, width: Width): number | bigint {
    const ctrlAt = this.at < this.end ? this.at : -1;
    const ctrl = this.byte();
    if (ctrl !== undefined && (ctrl & 0x1c) === 0x1c) {
      this.ctx.setIrq(true);
      this.ctx.setIrq(false);
    }
    const k = this.readCount;
    if (k < MAX_READS) {
      this.readLog[2 * k] = ctrlAt;
      this.readLog[2 * k + 1] = -1;
      this.readCount = k + 1;
    }
    if (ctrl === undefined && this.inner) return this.inner.read(region, offset, width);
    if (ctrl === undefined || !this.inner || (ctrl & 3) === 0) {
      if (k < MAX_READS && this.at < this.end) this.readLog[2 * k + 1] = this.at;
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

/** The fuzz device over the models `models` names (the catalogue, host/sim/registry.ts, passes itself). */
export const fuzzModel = (models: ModelLookup): SimModelClass<FuzzModelOptions> => ({
  name: 'fuzz',
  summary: "the fuzzer's device: register values, interrupt timing and DMA contents from the fuzz input",
  describe(o: FuzzModelOptions): SimDescription {
    if (o.inner === 'generic') {
      return {
        model: 'fuzz',
        // No device behind it: every width the sandbox passes (aligned) is served from the input.
        regions: [{ name: 'bar0', size: 1 << 20, valid: [{ min: 1, max: 8 }] }],
        ports: [{ name: 'ports', size: 8, base: GENERIC_PORT_BASE, valid: [{ min: 1, max: 4 }] }],
        dma: [{ name: 'dma', size: 65536, bus: 0x0100_0000n }],
        irq: { mode: 'mask' },
        stateBytes: 0,
      };
    }
    return { ...models(o.inner).describe({}), model: 'fuzz' };
  },
  create(ctx, state, at, o) {
    return new FuzzDevice(ctx, state, at, o, models);
  },
});
