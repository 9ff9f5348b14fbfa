// The interrupt line of a simulated device, with the kernel path's behaviour (see SimIrqMode).
// Its level, mask and event count live at the start of the device's shared state, so they survive a
// driver restart like the rest of the device; `eventfd` wakes the driver's wait, as a UIO fd would.

import type { Native } from '../native.ts';
import type { SimIrqMode, SimModel } from './model.ts';

export const SIM_IRQ_BYTES = 64;
/**
 * Byte offset, inside those first 64 bytes, of the device's virtual time (an f64, ns): a device's
 * deferred work is kept as absolute device times, so a virtual-time session that follows another on
 * the same device (the campaign's recovery after a killed trial) must continue that clock.
 */
export const SIM_VCLOCK_OFFSET = 16;
const LEVEL = 0;
const MASKED = 1;
const COUNT = 2;

export class SimIrqLine {
  private readonly w: Int32Array;
  private model: SimModel | null = null;
  readonly needsRearm: boolean;
  /** The line's eventfd carries no count: waits call consume(). */
  readonly readWidth = 0 as const;

  constructor(
    state: SharedArrayBuffer,
    at: number,
    private readonly mode: SimIrqMode | null,
    readonly fd: number,
    private readonly native: Native,
  ) {
    this.w = new Int32Array(state, at, SIM_IRQ_BYTES / 4);
    this.needsRearm = mode?.mode === 'mask';
  }

  /** Bind the model; the stored level is re-read from the device (SimModel.irqLevel), never trusted. */
  attach(model: SimModel): void {
    this.model = model;
    if (model.irqLevel) Atomics.store(this.w, LEVEL, model.irqLevel() ? 1 : 0);
  }

  /** The model drives the line. A rising edge becomes one event, as the kernel stub would count it. */
  set(level: boolean): void {
    const was = Atomics.exchange(this.w, LEVEL, level ? 1 : 0);
    if (!level || was || !this.mode) return;
    if (this.mode.mode === 'ack') {
      // The stub's ritual: read the status; zero means not ours; otherwise acknowledge and count.
      const status = Number(this.model!.read(this.mode.region, this.mode.status, 4));
      if (status === 0) return;
      this.model!.write(this.mode.region, this.mode.ack, 4, status);
      this.event();
    } else if (this.mode.mode === 'model') {
      if (this.model!.stubAcknowledge?.()) this.event();
    } else if (!Atomics.load(this.w, MASKED)) {
      Atomics.store(this.w, MASKED, 1);
      this.event();
    }
  }

  private event(): void {
    Atomics.add(this.w, COUNT, 1);
    if (this.fd >= 0) this.native.eventfdWrite(this.fd, 1);
  }

  absorb(): number {
    return this.consume();
  }

  /** The cumulative event count (u32, wrapping), consuming the eventfd's readiness. */
  consume(): number {
    if (this.fd >= 0) this.native.eventfdRead(this.fd);
    return Atomics.load(this.w, COUNT) >>> 0;
  }

  get count(): number {
    return Atomics.load(this.w, COUNT) >>> 0;
  }

  /** uio_pci_generic's re-enable: unmask; a line still high fires again at once. */
  rearm(): void {
    if (this.mode?.mode !== 'mask') return;
    Atomics.store(this.w, MASKED, 0);
    if (Atomics.load(this.w, LEVEL)) {
      Atomics.store(this.w, MASKED, 1);
      this.event();
    }
  }

  mask(): void {
    Atomics.store(this.w, MASKED, 1);
  }

  close(): void {
    /* the eventfd belongs to the device, not to this view */
  }
}
