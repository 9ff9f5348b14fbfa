// A simulated Intel 82540EM ("e1000"), the subset of QEMU's hw/net/e1000.c that wasmdrv's e1000
// driver uses, with QEMU's register and descriptor semantics (8254x SDM sections in brackets):
//
//   CTRL (SLU; RST as the hardware does it: every register back to its power-on value, the MAC
//   reloaded into RAL0/RAH0 [13.4.1], or with `softReset: 'qemu'` as QEMU's e1000: the bit
//   self-clears and nothing else is reset), STATUS (LU, FD, 1000 Mb/s),
//   EERD (82540EM layout: START bit 0, DONE bit 4, address << 8, data << 16) [5.3.1, 13.4.4],
//   RAL0/RAH0 preset with the MAC and AV [13.5.3], ICR read-to-clear and write-1-to-clear, ICS, IMS,
//   IMC [13.4.17-21], RCTL (EN, BAM, UPE, MPE, BSIZE/BSEX, SECRC) [13.4.22], TCTL (EN) [13.4.33],
//   TIPG, the RX and TX rings (BAL & ~0xf, LEN & 0xfff80, H/T & 0xffff) [13.4.25-39], legacy
//   16-byte descriptors with DD/EOP and RS write-back [3.2.3, 3.3.3], the statistics GPRC, GPTC,
//   GORC, GOTC, TPR, TPT (read-to-clear; the 64-bit octet counters clear on reading the high half)
//   [13.7], link changes (LSC).
//
// QEMU's quirks, kept because a driver must live with them: RDH == RDT means "no buffers" and frames
// wait on the wire; a write to RCTL holds reception back for `rctlHoldNs` (QEMU: 1 s); TX runs inside
// the TDT (or TCTL) write and writes DD back only when the descriptor asks for it (RS); received
// frames shorter than 60 bytes are padded to 60. Not modelled: PCI bus mastering (a simulated device
// has no config space), interrupt mitigation (the model behaves as QEMU's `mitigation=off`), context
// and data (DEXT) descriptors, multicast hashing, VLANs, the PHY and the EEPROM's bit-bang port.
//
// The wire is two frame rings in the shared state: e1000Inject() puts frames on it towards the NIC
// (and kicks the driver's thread), e1000Capture() collects what the NIC transmitted, e1000SetLink()
// pulls the cable. Every DMA access the model makes goes through the session's windows and is counted;
// one outside every window is refused and recorded (e1000Dma()), so the model is the oracle for the
// DMA-safety tests.

import type { SimContext, SimDescription, SimModel, SimModelClass, Width } from './model.ts';
import { E1000Dma } from './e1000-dma.ts';
import {
  CTRL,
  CTRL_AT,
  CTRL_RESET_VALUE,
  CTRL_RST,
  CTRL_SLU,
  type E1000Options,
  E1000_BAR0_SIZE,
  E1000_DEFAULT_MAC,
  EERD,
  EERD_DONE,
  EERD_START,
  F64,
  F64_AT,
  GORCH,
  GORCL,
  GOTCH,
  GOTCL,
  GPRC,
  GPTC,
  ICR,
  ICR_LSC,
  ICS,
  IMC,
  IMS,
  RAH0,
  RAH_AV,
  RAL0,
  RCTL,
  RDBAL,
  RDH,
  RDLEN,
  RDT,
  REGS,
  STATE_BYTES,
  STATUS,
  STATUS_FD,
  STATUS_LU,
  STATUS_SPEED_1000,
  TCTL,
  TDBAL,
  TDH,
  TDLEN,
  TDT,
  TPR,
  TPT,
  W,
  WORDS,
  parseMac,
} from './e1000-defs.ts';

export {
  E1000_BAR0_SIZE,
  E1000_DEFAULT_MAC,
  ICR_TXDW,
  ICR_TXQE,
  ICR_LSC,
  ICR_RXDMT0,
  ICR_RXO,
  ICR_RXT0,
  type E1000Options,
} from './e1000-defs.ts';

class E1000 extends E1000Dma implements SimModel {
  private readonly mac: number[];
  private readonly eeprom = new Uint16Array(64);
  private readonly holdNs: number;
  private readonly qemuReset: boolean;

  constructor(ctx: SimContext, state: SharedArrayBuffer, at: number, options: E1000Options) {
    super(
      ctx,
      new Uint32Array(state, at, REGS),
      new Int32Array(state, at + CTRL_AT, WORDS),
      new Float64Array(state, at + F64_AT, 1),
      new Uint8Array(state, at, STATE_BYTES),
      new DataView(state, at, STATE_BYTES),
    );
    this.mac = parseMac(options.mac ?? E1000_DEFAULT_MAC);
    this.holdNs = options.rctlHoldNs ?? 1_000_000_000;
    this.qemuReset = options.softReset === 'qemu';
    // EEPROM words 0-2: the MAC, low byte first; the checksum word makes the sum 0xBABA [5.6].
    for (let i = 0; i < 3; i++) this.eeprom[i] = this.mac[2 * i] | (this.mac[2 * i + 1] << 8);
    this.eeprom[0x0b] = 0x100e;
    this.eeprom[0x0d] = 0x100e;
    let sum = 0;
    for (let i = 0; i < 0x3f; i++) sum = (sum + this.eeprom[i]) & 0xffff;
    this.eeprom[0x3f] = (0xbaba - sum) & 0xffff;
    // A new device (zeroed state) powers on; a restarted driver's thread finds it as it was.
    if (!Atomics.load(this.w, W.initialised)) {
      Atomics.store(this.w, W.carrier, 1);
      Atomics.store(this.w, W.carrierSeen, 1);
      this.reset();
      Atomics.store(this.w, W.initialised, 1);
    }
  }

  /**
   * Power-on state (QEMU's e1000_reset), and what CTRL.RST does on the hardware: link up, RA[0] = MAC
   * with AV, everything else 0 (the rings' base, length, head and tail, RCTL and TCTL: RX and TX off).
   */
  reset(): void {
    this.r.fill(0);
    this.r[CTRL >> 2] = CTRL_RESET_VALUE;
    this.r[STATUS >> 2] = STATUS_FD | STATUS_SPEED_1000 | (Atomics.load(this.w, W.carrier) ? STATUS_LU : 0);
    const m = this.mac;
    this.r[RAL0 >> 2] = (m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24)) >>> 0;
    this.r[RAH0 >> 2] = (m[4] | (m[5] << 8) | RAH_AV) >>> 0;
    this.w[W.txLen] = 0;
    this.f64[F64.holdUntil] = 0;
    this.ctx.setIrq(false);
  }

  // Widths and bounds are checked before a call reaches here (sim/access.ts: bar0 takes 4-byte accesses).
  read(_region: number, offset: number, _width: Width): number | bigint {
    const i = offset >> 2;
    switch (offset) {
      case ICR: {
        const v = this.r[i];
        this.r[i] = 0; // read-to-clear (QEMU mac_icr_read)
        this.update();
        return v;
      }
      case EERD: {
        const v = this.r[i];
        if (!(v & EERD_START)) return v;
        const addr = (v >>> 8) & 0xff;
        if (addr >= this.eeprom.length) return (v & ~EERD_START) >>> 0;
        return ((v & 0xff00) | EERD_DONE | (this.eeprom[addr] << 16)) >>> 0;
      }
      case GPRC:
      case GPTC:
      case TPR:
      case TPT:
      case GORCL:
      case GOTCL: {
        const v = this.r[i];
        this.r[i] = 0;
        return v;
      }
      case GORCH:
      case GOTCH: {
        const v = this.r[i];
        this.r[i] = 0;
        this.r[i - 1] = 0;
        return v;
      }
      default:
        return this.r[i];
    }
  }

  write(_region: number, offset: number, _width: Width, value: number | bigint): void {
    const v = Number(BigInt(value) & 0xffffffffn) >>> 0;
    const i = offset >> 2;
    switch (offset) {
      case CTRL:
        // The hardware resets the MAC (QEMU's e1000e too); QEMU's e1000 only clears the bit (set_ctrl).
        if (v & CTRL_RST && !this.qemuReset) this.reset();
        else this.r[i] = (v & ~CTRL_RST) >>> 0;
        this.linkUpdate(false);
        break;
      case STATUS:
      case GPRC:
      case GPTC:
      case TPR:
      case TPT:
      case GORCL:
      case GORCH:
      case GOTCL:
      case GOTCH:
        break; // read-only
      case ICR:
        this.r[i] &= ~v; // write-1-to-clear
        this.update();
        break;
      case ICS:
        this.raise(v);
        break;
      case IMS:
        this.r[i] |= v;
        this.update();
        break;
      case IMC:
        this.r[IMS >> 2] &= ~v;
        this.update();
        break;
      case RCTL:
        this.r[i] = v;
        // QEMU set_rx_control: reception waits for the flush timer after every RCTL write.
        this.f64[F64.holdUntil] = this.holdNs > 0 ? this.ctx.now() + this.holdNs : 0;
        this.receive();
        break;
      case RDBAL:
      case TDBAL:
        this.r[i] = v & ~0xf;
        break;
      case RDLEN:
      case TDLEN:
        this.r[i] = v & 0xfff80;
        break;
      case RDH:
      case TDH:
        this.r[i] = v & 0xffff;
        break;
      case RDT:
        this.r[i] = v & 0xffff;
        this.receive();
        break;
      case TDT:
        this.r[i] = v & 0xffff;
        this.transmit();
        break;
      case TCTL:
        this.r[i] = v;
        this.transmit();
        break;
      default:
        this.r[i] = v;
    }
  }

  tick(): void {
    this.linkUpdate(true);
    if (this.f64[F64.holdUntil] && this.ctx.now() >= this.f64[F64.holdUntil]) this.f64[F64.holdUntil] = 0;
    this.receive();
  }

  nextEvent(): number {
    if (Atomics.load(this.w, W.carrier) !== this.w[W.carrierSeen]) return 0;
    if (Atomics.load(this.w, W.inHead) === this.w[W.inTail]) return Infinity;
    if (!this.w[W.carrier]) return 0; // frames for a link that is down are dropped at once
    if (this.f64[F64.holdUntil]) return this.f64[F64.holdUntil];
    return this.canReceive() ? 0 : Infinity;
  }

  irqLevel(): boolean {
    return (this.r[ICR >> 2] & this.r[IMS >> 2]) !== 0;
  }

  // --- interrupts [13.4.17]: the line is ICR & IMS ------------------------------------------------

  protected raise(bits: number): void {
    this.r[ICR >> 2] |= bits;
    this.update();
  }

  private update(): void {
    this.ctx.setIrq(this.irqLevel());
  }

  // --- link -----------------------------------------------------------------------------------------

  /** Follow the cable: a change of carrier flips STATUS.LU and raises LSC (QEMU set_link_status). */
  private linkUpdate(fromWire: boolean): void {
    const carrier = Atomics.load(this.w, W.carrier);
    const changed = fromWire && carrier !== this.w[W.carrierSeen];
    this.w[W.carrierSeen] = carrier;
    const lu = carrier !== 0 && (this.r[CTRL >> 2] & CTRL_SLU) !== 0;
    const was = (this.r[STATUS >> 2] & STATUS_LU) !== 0;
    if (lu) this.r[STATUS >> 2] |= STATUS_LU;
    else this.r[STATUS >> 2] &= ~STATUS_LU;
    if (changed || lu !== was) this.raise(ICR_LSC);
  }
}

export const e1000: SimModelClass<E1000Options> = {
  name: 'e1000',
  summary: 'Intel 82540EM as QEMU models it (8086:100e): rings, legacy descriptors, interrupts, link, statistics',
  describe(options: E1000Options): SimDescription {
    return {
      model: 'e1000',
      pci: { vendor: 0x8086, device: 0x100e },
      // 32-bit registers (8254x SDM 13): other widths are refused, as read()/write() refuse them.
      regions: [{ name: 'bar0', size: E1000_BAR0_SIZE, valid: [{ min: 4, max: 4 }] }],
      ports: [],
      dma: [{ name: 'dma', size: options.dmaSize ?? 0x40000, bus: options.dmaBus ?? 0x1000_0000n }],
      // As the kernel stub handles an e1000 (INTx masking): the driver reads ICR, the host re-arms.
      irq: { mode: 'mask' },
      stateBytes: STATE_BYTES,
      external: true,
    };
  },
  create(ctx, state, at, options) {
    return new E1000(ctx, state, at, options);
  },
};

export { e1000Capture, e1000Dma, e1000Inject, e1000SetLink } from './e1000-wire.ts';
