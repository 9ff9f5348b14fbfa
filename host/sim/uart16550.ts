// A simulated 16550A UART on an 8-port range, after QEMU's hw/char/serial.c and the National
// Semiconductor PC16550D datasheet (section 8: registers).
//
// The far end of the serial line is two byte rings in the shared state: uartFeed() puts bytes on the
// line towards the UART (then kicks the device so the driver's thread runs the model), uartTake()
// collects what the UART transmitted. Transmission is instantaneous; the receiver has a 16-byte FIFO.
// The kernel stub's handler for this device masks IER (stubAcknowledge), as the real stub does.

import { loadNative } from '../native.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { SIM_IRQ_BYTES } from './irq.ts';
import type { SimContext, SimDescription, SimModel, SimModelClass } from './model.ts';

// Port offsets (DLAB = LCR bit 7 selects the divisor latch at 0/1)
const RBR_THR_DLL = 0;
const IER_DLM = 1;
const IIR_FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

const IER_RDA = 0x01; // received data available
const IER_THRE = 0x02; // transmitter holding register empty
const IIR_NONE = 0x01;
const IIR_THRE = 0x02;
const IIR_RDA = 0x04;
const IIR_FIFO = 0xc0;
const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const LCR_DLAB = 0x80;
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

const FIFO = 16;
const RING = 4096;

// State: i32 words, then the rx FIFO, then the two rings.
const W = {
  ier: 0,
  lcr: 1,
  mcr: 2,
  scr: 3,
  dll: 4,
  dlm: 5,
  fcr: 6,
  lsr: 7,
  rxHead: 8,
  rxCount: 9,
  threPending: 10,
  inHead: 11,
  inTail: 12,
  outHead: 13,
  outTail: 14,
} as const;
const WORDS = 16;
const FIFO_AT = WORDS * 4;
const IN_AT = FIFO_AT + FIFO;
const OUT_AT = IN_AT + RING;
const STATE_BYTES = OUT_AT + RING;

/** The port base a simulated 16550 shows its driver: COM2's (nominal: simulated ports are no real I/O ports). */
export const UART_BASE = 0x2f8;

export interface UartOptions {
  /** Port base shown to the driver (nominal for a simulated device). Default UART_BASE (COM2). */
  base?: number;
}

class Uart implements SimModel {
  private readonly w: Int32Array;
  private readonly bytes: Uint8Array;

  constructor(
    private readonly ctx: SimContext,
    state: SharedArrayBuffer,
    at: number,
  ) {
    this.w = new Int32Array(state, at, WORDS);
    this.bytes = new Uint8Array(state, at, STATE_BYTES);
  }

  reset(): void {
    for (const k of [
      'ier',
      'lcr',
      'mcr',
      'scr',
      'dll',
      'dlm',
      'fcr',
      'lsr',
      'rxHead',
      'rxCount',
      'threPending',
    ] as const)
      this.w[W[k]] = 0;
    this.update();
  }

  read(): number {
    this.ctx.guestError('uart16550: memory-mapped access to a port-I/O device');
    return 0xffffffff;
  }

  write(): void {
    this.ctx.guestError('uart16550: memory-mapped access to a port-I/O device');
  }

  // Port accesses reach portIn/portOut only 1 byte wide (`valid` in describe(); host/sim/access.ts checks).
  portIn(_port: number, offset: number): number {
    this.pull();
    const w = this.w;
    const dlab = (w[W.lcr] & LCR_DLAB) !== 0;
    switch (offset) {
      case RBR_THR_DLL: {
        if (dlab) return w[W.dll];
        if (w[W.rxCount] === 0) return 0;
        const b = this.bytes[FIFO_AT + w[W.rxHead]];
        w[W.rxHead] = (w[W.rxHead] + 1) % FIFO;
        w[W.rxCount]--;
        this.pull();
        this.update();
        return b;
      }
      case IER_DLM:
        return dlab ? w[W.dlm] : w[W.ier];
      case IIR_FCR: {
        const iir = this.iir();
        if (iir === IIR_THRE) {
          w[W.threPending] = 0; // reading IIR clears a THRE interrupt (datasheet table IV)
          this.update();
        }
        return iir | (w[W.fcr] & FCR_ENABLE ? IIR_FIFO : 0);
      }
      case LCR:
        return w[W.lcr];
      case MCR:
        return w[W.mcr];
      case LSR: {
        // Transmission is instantaneous, so the transmitter is always empty.
        const v = LSR_THRE | LSR_TEMT | (w[W.lsr] & LSR_OE) | (w[W.rxCount] > 0 ? LSR_DR : 0);
        w[W.lsr] &= ~LSR_OE; // overrun is cleared by reading LSR
        return v;
      }
      case MSR:
        return 0xb0; // CTS, DSR, DCD: a null-modem peer that is always there
      default:
        return w[W.scr];
    }
  }

  portOut(_port: number, offset: number, _width: 1 | 2 | 4, value: number): void {
    const w = this.w;
    const dlab = (w[W.lcr] & LCR_DLAB) !== 0;
    const v = value & 0xff;
    switch (offset) {
      case RBR_THR_DLL:
        if (dlab) {
          w[W.dll] = v;
        } else {
          this.transmit(v);
          w[W.threPending] = 1;
        }
        break;
      case IER_DLM:
        if (dlab) w[W.dlm] = v;
        else {
          if (v & IER_THRE && !(w[W.ier] & IER_THRE)) w[W.threPending] = 1;
          w[W.ier] = v & 0x0f;
        }
        break;
      case IIR_FCR:
        w[W.fcr] = v & 0xc9;
        if (v & FCR_CLEAR_RX) {
          w[W.rxCount] = 0;
          w[W.rxHead] = 0;
        }
        break;
      case LCR:
        w[W.lcr] = v;
        break;
      case MCR:
        w[W.mcr] = v & 0x1f;
        break;
      case SCR:
        w[W.scr] = v;
        break;
      default:
        break;
    }
    this.pull();
    this.update();
  }

  tick(): void {
    this.pull();
    this.update();
  }

  nextEvent(): number {
    return Infinity;
  }

  stubAcknowledge(): boolean {
    if (this.iir() === IIR_NONE) return false;
    this.w[W.ier] = 0; // the stub masks the UART; the driver re-enables IER when it has serviced it
    this.update();
    return true;
  }

  irqLevel(): boolean {
    return this.iir() !== IIR_NONE;
  }

  private iir(): number {
    const w = this.w;
    if (w[W.ier] & IER_RDA && w[W.rxCount] > 0) return IIR_RDA;
    if (w[W.ier] & IER_THRE && w[W.threPending]) return IIR_THRE;
    return IIR_NONE;
  }

  private update(): void {
    this.ctx.setIrq(this.iir() !== IIR_NONE);
  }

  /** Move bytes from the line into the receive FIFO while it has room. */
  private pull(): void {
    const w = this.w;
    while (w[W.rxCount] < FIFO) {
      const tail = w[W.inTail];
      if (tail === Atomics.load(w, W.inHead)) return;
      this.bytes[FIFO_AT + ((w[W.rxHead] + w[W.rxCount]) % FIFO)] = this.bytes[IN_AT + tail];
      w[W.rxCount]++;
      Atomics.store(w, W.inTail, (tail + 1) % RING);
    }
  }

  private transmit(b: number): void {
    const w = this.w;
    const head = w[W.outHead];
    const next = (head + 1) % RING;
    if (next === Atomics.load(w, W.outTail)) {
      this.ctx.guestError('uart16550: transmit ring full: the line dropped a byte');
      return;
    }
    this.bytes[OUT_AT + head] = b;
    Atomics.store(w, W.outHead, next);
  }
}

export const uart16550: SimModelClass<UartOptions> = {
  name: 'uart16550',
  summary: '16550A UART on 8 I/O ports (COM2): transmit, receive FIFO, interrupts',
  describe(o: UartOptions = {}): SimDescription {
    return {
      model: 'uart16550',
      regions: [],
      // The registers are 8 bits (PC16550D section 8); a wider access is refused.
      ports: [{ name: 'uart', size: 8, base: Number(o.base ?? UART_BASE), valid: [{ min: 1, max: 1 }] }],
      dma: [],
      irq: { mode: 'model' },
      stateBytes: STATE_BYTES,
      external: true,
    };
  },
  create(ctx, state, at) {
    return new Uart(ctx, state, at);
  },
};

function words(spec: DeviceSpec): { w: Int32Array; bytes: Uint8Array } {
  if (spec.sim?.model !== 'uart16550') throw new Error(`${spec.id}: not a simulated uart16550`);
  return {
    w: new Int32Array(spec.sim.state, SIM_IRQ_BYTES, WORDS),
    bytes: new Uint8Array(spec.sim.state, SIM_IRQ_BYTES, STATE_BYTES),
  };
}

/** Put bytes on the line towards the UART and wake the driver's thread. Returns how many fitted. */
export function uartFeed(spec: DeviceSpec, data: Uint8Array): number {
  const { w, bytes } = words(spec);
  let n = 0;
  for (const b of data) {
    const head = Atomics.load(w, W.inHead);
    const next = (head + 1) % RING;
    if (next === Atomics.load(w, W.inTail)) break;
    bytes[IN_AT + head] = b;
    Atomics.store(w, W.inHead, next);
    n++;
  }
  loadNative().eventfdWrite(spec.sim!.kickFd, 1);
  return n;
}

/** Collect the bytes the UART has transmitted since the last call. */
export function uartTake(spec: DeviceSpec): Uint8Array {
  const { w, bytes } = words(spec);
  const out: number[] = [];
  let tail = Atomics.load(w, W.outTail);
  const head = Atomics.load(w, W.outHead);
  while (tail !== head) {
    out.push(bytes[OUT_AT + tail]);
    tail = (tail + 1) % RING;
  }
  Atomics.store(w, W.outTail, tail);
  return Uint8Array.from(out);
}
