// A simulated QEMU "edu" PCI device, faithful to QEMU's hw/misc/edu.c and docs/specs/edu.rst.
//
// Differences from QEMU, on purpose: the factorial completes after `factorialDelayNs` of device time
// (QEMU uses a thread), a DMA completes after `dmaDelayNs` (QEMU: 100 ms, too slow for tests), and an
// out-of-range DMA is a guest error that aborts the transfer (QEMU's hw_error kills the VM).

import type { SimContext, SimDescription, SimModel, SimModelClass, Width } from './model.ts';
import { ALL_ONES } from './model.ts';

export const EDU_ID = 0x010000ed;
export const EDU_BAR0_SIZE = 1 << 20;

// Registers (BAR0)
const REG_ID = 0x00;
const REG_LIVENESS = 0x04;
const REG_FACTORIAL = 0x08;
const REG_STATUS = 0x20;
const REG_IRQ_STATUS = 0x24;
const REG_IRQ_RAISE = 0x60;
const REG_IRQ_ACK = 0x64;
const REG_DMA_SRC = 0x80;
const REG_DMA_DST = 0x88;
const REG_DMA_COUNT = 0x90;
const REG_DMA_CMD = 0x98;

const STATUS_COMPUTING = 0x01;
const STATUS_IRQ_FACT = 0x80;
const IRQ_FACT = 0x1;
const IRQ_DMA = 0x100;

const DMA_RUN = 0x1n;
const DMA_DIR_TO_RAM = 0x2n;
const DMA_IRQ = 0x4n;
const DMA_START = 0x40000n;
const DMA_SIZE = 4096;

export interface EduOptions {
  /** Device time from a factorial write to its completion. Default 2 µs. */
  factorialDelayNs?: number;
  /** Device time from a DMA start to its completion. Default 200 µs (QEMU: 100 ms). */
  dmaDelayNs?: number;
  /** edu's DMA mask: addresses are clamped to this many bits (QEMU default 28). */
  dmaBits?: number;
  /** Bus address of the DMA window the host grants. Default 0x0100_0000 (inside 28 bits). */
  dmaBus?: bigint;
  /** Size of the DMA window. Default 64 KiB. */
  dmaSize?: number;
  /** 'ack' (the kernel stub acknowledges, default) or 'mask' (uio_pci_generic: the driver must). */
  irqMode?: 'ack' | 'mask';
  /**
   * Not in QEMU's edu: raise interrupt bit 0x00800000 by itself every this many ns of device time
   * (0 = never). A steady interrupt source for tests that must not lose one (hot reload under load).
   */
  autoIrqNs?: number;
  /** Stop the self-timed interrupts after this many (0 = no limit). */
  autoIrqCount?: number;
}

const IRQ_AUTO = 0x00800000;

// State layout: u32 fields, then f64 times, then the 4 KiB device buffer.
const U32 = { addr4: 0, fact: 1, status: 2, irqStatus: 3, autoRaised: 4 } as const;
const U64 = { src: 0, dst: 1, cnt: 2, cmd: 3 } as const;
const F64 = { factDoneAt: 0, dmaDoneAt: 1, autoAt: 2 } as const;
const U32_BYTES = 24;
const U64_BYTES = 32;
const F64_BYTES = 24;
const STATE_BYTES = U32_BYTES + U64_BYTES + F64_BYTES + DMA_SIZE;

class Edu implements SimModel {
  private readonly u32: Uint32Array;
  private readonly u64: BigUint64Array;
  private readonly f64: Float64Array;
  private readonly buf: Uint8Array;
  private readonly factorialDelayNs: number;
  private readonly dmaDelayNs: number;
  private readonly dmaMask: bigint;
  private readonly autoIrqNs: number;
  private readonly autoIrqCount: number;

  constructor(
    private readonly ctx: SimContext,
    state: SharedArrayBuffer,
    at: number,
    options: EduOptions,
  ) {
    this.u32 = new Uint32Array(state, at, U32_BYTES / 4);
    this.u64 = new BigUint64Array(state, at + U32_BYTES, U64_BYTES / 8);
    this.f64 = new Float64Array(state, at + U32_BYTES + U64_BYTES, F64_BYTES / 8);
    this.buf = new Uint8Array(state, at + U32_BYTES + U64_BYTES + F64_BYTES, DMA_SIZE);
    this.factorialDelayNs = options.factorialDelayNs ?? 2_000;
    this.dmaDelayNs = options.dmaDelayNs ?? 200_000;
    this.dmaMask = (1n << BigInt(options.dmaBits ?? 28)) - 1n;
    this.autoIrqNs = options.autoIrqNs ?? 0;
    this.autoIrqCount = options.autoIrqCount ?? 0;
    if (this.autoIrqNs && !this.f64[F64.autoAt]) this.f64[F64.autoAt] = ctx.now() + this.autoIrqNs;
  }

  reset(): void {
    this.u32.fill(0);
    this.u64.fill(0n);
    this.f64.fill(0);
    this.buf.fill(0);
    this.ctx.setIrq(false);
  }

  // Accesses reach read/write only as `valid` in describe() allows (host/sim/access.ts checks).
  read(_region: number, offset: number, width: Width): number | bigint {
    let val: bigint | number;
    switch (offset) {
      case REG_ID:
        val = EDU_ID;
        break;
      case REG_LIVENESS:
        val = this.u32[U32.addr4];
        break;
      case REG_FACTORIAL:
        val = this.u32[U32.fact];
        break;
      case REG_STATUS:
        val = this.u32[U32.status];
        break;
      case REG_IRQ_STATUS:
        val = this.u32[U32.irqStatus];
        break;
      case REG_DMA_SRC:
        val = this.u64[U64.src];
        break;
      case REG_DMA_DST:
        val = this.u64[U64.dst];
        break;
      case REG_DMA_COUNT:
        val = this.u64[U64.cnt];
        break;
      case REG_DMA_CMD:
        val = this.u64[U64.cmd];
        break;
      default:
        return ALL_ONES[width];
    }
    // Numbers stay numbers (no BigInt on the 32-bit path: the fuzzer reads registers millions of times).
    if (typeof val === 'number') return width === 8 ? BigInt(val >>> 0) : val >>> 0;
    return width === 8 ? val : Number(val & 0xffffffffn);
  }

  write(_region: number, offset: number, _width: Width, value: number | bigint): void {
    const v32 = typeof value === 'number' ? value >>> 0 : Number(BigInt.asUintN(32, value));
    const big = () => BigInt.asUintN(64, BigInt(value));
    switch (offset) {
      case REG_LIVENESS:
        this.u32[U32.addr4] = ~v32;
        break;
      case REG_FACTORIAL:
        if (this.u32[U32.status] & STATUS_COMPUTING) break; // edu.c ignores writes while computing
        this.u32[U32.fact] = v32;
        this.u32[U32.status] |= STATUS_COMPUTING;
        this.f64[F64.factDoneAt] = this.ctx.now() + this.factorialDelayNs;
        break;
      case REG_STATUS:
        if (v32 & STATUS_IRQ_FACT) this.u32[U32.status] |= STATUS_IRQ_FACT;
        else this.u32[U32.status] &= ~STATUS_IRQ_FACT;
        break;
      case REG_IRQ_RAISE:
        this.raise(v32);
        break;
      case REG_IRQ_ACK:
        this.lower(v32);
        break;
      case REG_DMA_SRC:
        this.dmaReg(U64.src, big());
        break;
      case REG_DMA_DST:
        this.dmaReg(U64.dst, big());
        break;
      case REG_DMA_COUNT:
        this.dmaReg(U64.cnt, big());
        break;
      case REG_DMA_CMD: {
        const v = big();
        if (!(v & DMA_RUN)) break;
        if (this.u64[U64.cmd] & DMA_RUN) break; // a transfer is already running
        this.u64[U64.cmd] = v;
        this.f64[F64.dmaDoneAt] = this.ctx.now() + this.dmaDelayNs;
        break;
      }
      default:
        break;
    }
  }

  tick(now: number): void {
    const factAt = this.f64[F64.factDoneAt];
    if (factAt !== 0 && now >= factAt) {
      this.f64[F64.factDoneAt] = 0;
      this.finishFactorial();
    }
    const dmaAt = this.f64[F64.dmaDoneAt];
    if (dmaAt !== 0 && now >= dmaAt) {
      this.f64[F64.dmaDoneAt] = 0;
      this.finishDma();
    }
    const autoAt = this.f64[F64.autoAt];
    // One interrupt per elapsed period, even when several periods passed since the last tick.
    for (let at = autoAt; this.autoIrqNs && at !== 0 && now >= at; at = this.f64[F64.autoAt]) {
      this.u32[U32.autoRaised]++;
      const more = !this.autoIrqCount || this.u32[U32.autoRaised] < this.autoIrqCount;
      this.f64[F64.autoAt] = more ? at + this.autoIrqNs : 0;
      this.raise(IRQ_AUTO);
      this.lower(IRQ_AUTO); // an edge per period: in 'ack' mode the stub has already acknowledged it
    }
  }

  nextEvent(): number {
    const a = this.f64[F64.factDoneAt] || Infinity;
    const b = this.f64[F64.dmaDoneAt] || Infinity;
    const c = (this.autoIrqNs && this.f64[F64.autoAt]) || Infinity;
    return Math.min(a, b, c);
  }

  private dmaReg(index: number, v: bigint): void {
    if (this.u64[U64.cmd] & DMA_RUN) return; // edu.c: DMA registers are frozen while running
    this.u64[index] = v;
  }

  irqLevel(): boolean {
    return this.u32[U32.irqStatus] !== 0;
  }

  private raise(bits: number): void {
    this.u32[U32.irqStatus] |= bits;
    if (this.u32[U32.irqStatus]) this.ctx.setIrq(true);
  }

  private lower(bits: number): void {
    this.u32[U32.irqStatus] &= ~bits;
    if (!this.u32[U32.irqStatus]) this.ctx.setIrq(false);
  }

  private finishFactorial(): void {
    let n = this.u32[U32.fact];
    let fact = 1;
    // A 32-bit register: the product wraps as in edu.c. From 34! on, 2^32 divides n!, so the
    // register reads 0 (and the loop need not run four billion times for a fuzzer's n).
    if (n >= 34) fact = 0;
    while (n > 1 && fact !== 0) {
      fact = Math.imul(fact, n) >>> 0;
      n--;
    }
    this.u32[U32.fact] = fact;
    this.u32[U32.status] &= ~STATUS_COMPUTING;
    if (this.u32[U32.status] & STATUS_IRQ_FACT) this.raise(IRQ_FACT);
  }

  private clamp(addr: bigint): bigint {
    const clamped = addr & this.dmaMask;
    if (clamped !== addr)
      this.ctx.guestError(`edu: DMA address 0x${addr.toString(16)} clamped to 0x${clamped.toString(16)}`);
    return clamped;
  }

  private finishDma(): void {
    const cmd = this.u64[U64.cmd];
    const cnt = this.u64[U64.cnt];
    const toRam = (cmd & DMA_DIR_TO_RAM) !== 0n;
    const devAddr = toRam ? this.u64[U64.src] : this.u64[U64.dst];
    const ramAddr = this.clamp(toRam ? this.u64[U64.dst] : this.u64[U64.src]);
    this.u64[U64.cmd] = cmd & ~DMA_RUN;
    if (devAddr < DMA_START || cnt > BigInt(DMA_SIZE) || devAddr - DMA_START + cnt > BigInt(DMA_SIZE)) {
      this.ctx.guestError(`edu: DMA range 0x${devAddr.toString(16)}+${cnt} is outside the device buffer`);
      return;
    }
    const at = Number(devAddr - DMA_START);
    const len = Number(cnt);
    if (toRam) {
      if (!this.ctx.dmaWrite(ramAddr, this.buf.slice(at, at + len), devAddr)) {
        this.ctx.guestError(`edu: DMA write to bus 0x${ramAddr.toString(16)}+${len} hits no window`);
        return;
      }
    } else {
      const data = this.ctx.dmaRead(ramAddr, len, devAddr);
      if (!data) {
        this.ctx.guestError(`edu: DMA read from bus 0x${ramAddr.toString(16)}+${len} hits no window`);
        return;
      }
      this.buf.set(data, at);
    }
    if (cmd & DMA_IRQ) this.raise(IRQ_DMA);
  }
}

export const edu: SimModelClass<EduOptions> = {
  name: 'edu',
  summary: "QEMU's edu PCI device (1234:11e8): id, liveness, factorial, interrupts, DMA",
  describe(options: EduOptions): SimDescription {
    return {
      model: 'edu',
      pci: { vendor: 0x1234, device: 0x11e8 },
      // edu.c: accesses below 0x80 must be 4 bytes, the DMA registers (0x80 on) take 4 or 8; its
      // MemoryRegionOps.valid is 4..8, aligned. Others are refused (a guest error, reads all-ones).
      regions: [
        {
          name: 'bar0',
          size: EDU_BAR0_SIZE,
          valid: [
            { to: 0x80, min: 4, max: 4 },
            { from: 0x80, min: 4, max: 8 },
          ],
        },
      ],
      ports: [],
      dma: [{ name: 'dma0', size: options.dmaSize ?? 65536, bus: options.dmaBus ?? 0x0100_0000n }],
      irq:
        (options.irqMode ?? 'ack') === 'ack'
          ? { mode: 'ack', region: 0, status: REG_IRQ_STATUS, ack: REG_IRQ_ACK }
          : { mode: 'mask' },
      stateBytes: STATE_BYTES,
    };
  },
  create(ctx, state, at, options) {
    return new Edu(ctx, state, at, options);
  },
};
