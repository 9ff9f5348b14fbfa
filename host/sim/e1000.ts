// A simulated Intel 82540EM ("e1000"), the subset of QEMU's hw/net/e1000.c that wasmdrv's e1000
// driver uses, with QEMU's register and descriptor semantics (8254x SDM sections in brackets):
//
//   CTRL (RST self-clears and resets nothing else, as in QEMU; SLU), STATUS (LU, FD, 1000 Mb/s),
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

import { loadNative } from '../native.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { SIM_IRQ_BYTES } from './irq.ts';
import type { SimContext, SimDescription, SimModel, SimModelClass, Width } from './model.ts';
import { ALL_ONES } from './model.ts';

export const E1000_BAR0_SIZE = 0x20000;
export const E1000_DEFAULT_MAC = '52:54:00:12:34:56';

// Registers (byte offsets in BAR0) — 8254x SDM table 13-2
const CTRL = 0x0000;
const STATUS = 0x0008;
const EERD = 0x0014;
const ICR = 0x00c0;
const ICS = 0x00c8;
const IMS = 0x00d0;
const IMC = 0x00d8;
const RCTL = 0x0100;
const TCTL = 0x0400;
const RDBAL = 0x2800;
const RDBAH = 0x2804;
const RDLEN = 0x2808;
const RDH = 0x2810;
const RDT = 0x2818;
const TDBAL = 0x3800;
const TDBAH = 0x3804;
const TDLEN = 0x3808;
const TDH = 0x3810;
const TDT = 0x3818;
const GPRC = 0x4074;
const GPTC = 0x4080;
const GORCL = 0x4088;
const GORCH = 0x408c;
const GOTCL = 0x4090;
const GOTCH = 0x4094;
const TPR = 0x40d0;
const TPT = 0x40d4;
const RAL0 = 0x5400;
const RAH0 = 0x5404;

const CTRL_SLU = 1 << 6;
const CTRL_RST = 1 << 26;
const CTRL_RESET_VALUE = (1 << 18) | (1 << 20) | (2 << 8) | CTRL_SLU; // SWDPIN0|SWDPIN2|SPD_1000|SLU, as QEMU
const STATUS_FD = 1 << 0;
const STATUS_LU = 1 << 1;
const STATUS_SPEED_1000 = 2 << 6;
const EERD_START = 1 << 0;
const EERD_DONE = 1 << 4;
export const ICR_TXDW = 1 << 0;
export const ICR_TXQE = 1 << 1;
export const ICR_LSC = 1 << 2;
export const ICR_RXDMT0 = 1 << 4;
export const ICR_RXO = 1 << 6;
export const ICR_RXT0 = 1 << 7;
const RCTL_EN = 1 << 1;
const RCTL_UPE = 1 << 3;
const RCTL_MPE = 1 << 4;
const RCTL_BAM = 1 << 15;
const RCTL_BSEX = 1 << 25;
const RCTL_SECRC = 1 << 26;
const TCTL_EN = 1 << 1;
const RAH_AV = 1 << 31;

const RXD_DD = 0x01;
const RXD_EOP = 0x02;
const RXD_IXSM = 0x04;
const TXD_CMD_EOP = 0x01;
const TXD_CMD_RS = 0x08;
const TXD_CMD_RPS = 0x10;
const TXD_CMD_DEXT = 0x20;
const TXD_DD = 0x01;

const MIN_FRAME = 60;
const MAX_TX_FRAME = 0x10000;
const WIRE_BYTES = 1 << 18; // each direction's ring of [u32 length][bytes] records

// Shared state: the MAC register file (128 KiB, indexed by offset / 4 as QEMU's mac_reg), control
// words, the device's TX assembly buffer, then the two wire rings.
const REGS = E1000_BAR0_SIZE / 4;
const W = {
  inHead: 0,
  inTail: 1,
  outHead: 2,
  outTail: 3,
  carrier: 4,
  carrierSeen: 5,
  txLen: 6,
  dmaAccesses: 7,
  dmaOutside: 8,
  lastOutsideLo: 9,
  lastOutsideHi: 10,
  linkDrops: 11,
  injected: 12,
  initialised: 13,
} as const;
const WORDS = 16;
const F64 = { holdUntil: 0 } as const;
const CTRL_AT = REGS * 4;
const F64_AT = CTRL_AT + WORDS * 4;
const TXBUF_AT = F64_AT + 8;
const IN_AT = TXBUF_AT + MAX_TX_FRAME;
const OUT_AT = IN_AT + WIRE_BYTES;
const STATE_BYTES = OUT_AT + WIRE_BYTES;

export interface E1000Options {
  /** The MAC address QEMU presets into RAL0/RAH0 and the EEPROM. Default 52:54:00:12:34:56. */
  mac?: string;
  /** Bus address of the DMA window. Default 0x1000_0000. */
  dmaBus?: bigint;
  /** Size of the DMA window (rings and buffers). Default 256 KiB. */
  dmaSize?: number;
  /** How long a write to RCTL holds reception back (QEMU's flush_queue_timer: 1 s). */
  rctlHoldNs?: number;
}

function parseMac(mac: string): number[] {
  const parts = mac.split(':').map((p) => parseInt(p, 16));
  if (parts.length !== 6 || parts.some((p) => !(p >= 0 && p <= 255)))
    throw new Error(`e1000: bad MAC address "${mac}" (want xx:xx:xx:xx:xx:xx)`);
  return parts;
}

class E1000 implements SimModel {
  private readonly r: Uint32Array;
  private readonly w: Int32Array;
  private readonly f64: Float64Array;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly mac: number[];
  private readonly eeprom = new Uint16Array(64);
  private readonly holdNs: number;

  constructor(
    private readonly ctx: SimContext,
    state: SharedArrayBuffer,
    at: number,
    options: E1000Options,
  ) {
    this.r = new Uint32Array(state, at, REGS);
    this.w = new Int32Array(state, at + CTRL_AT, WORDS);
    this.f64 = new Float64Array(state, at + F64_AT, 1);
    this.bytes = new Uint8Array(state, at, STATE_BYTES);
    this.view = new DataView(state, at, STATE_BYTES);
    this.mac = parseMac(options.mac ?? E1000_DEFAULT_MAC);
    this.holdNs = options.rctlHoldNs ?? 1_000_000_000;
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

  /** Power-on state (QEMU's e1000_reset): link up, RA[0] = MAC with AV, everything else 0. */
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

  read(region: number, offset: number, width: Width): number | bigint {
    if (region !== 0 || width !== 4 || offset & 3 || offset >= E1000_BAR0_SIZE) {
      this.ctx.guestError(`e1000: ${width}-byte read at 0x${offset.toString(16)}: registers take 4-byte accesses`);
      return ALL_ONES[width];
    }
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

  write(region: number, offset: number, width: Width, value: number | bigint): void {
    if (region !== 0 || width !== 4 || offset & 3 || offset >= E1000_BAR0_SIZE) {
      this.ctx.guestError(`e1000: ${width}-byte write at 0x${offset.toString(16)}: registers take 4-byte accesses`);
      return;
    }
    const v = Number(BigInt(value) & 0xffffffffn) >>> 0;
    const i = offset >> 2;
    switch (offset) {
      case CTRL:
        this.r[i] = (v & ~CTRL_RST) >>> 0; // "RST is self clearing" and resets nothing else (QEMU set_ctrl)
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

  private raise(bits: number): void {
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

  // --- DMA through the session's windows, every access counted --------------------------------------

  private dmaRead(bus: bigint, len: number, what: string): Uint8Array | null {
    Atomics.add(this.w, W.dmaAccesses, 1);
    const data = this.ctx.dmaRead(bus, len);
    if (!data) this.outside(bus, len, `read of ${what}`);
    return data;
  }

  private dmaWrite(bus: bigint, data: Uint8Array, what: string): boolean {
    Atomics.add(this.w, W.dmaAccesses, 1);
    if (this.ctx.dmaWrite(bus, data)) return true;
    this.outside(bus, data.length, `write of ${what}`);
    return false;
  }

  private outside(bus: bigint, len: number, what: string): void {
    Atomics.add(this.w, W.dmaOutside, 1);
    this.w[W.lastOutsideLo] = Number(bus & 0xffffffffn) | 0;
    this.w[W.lastOutsideHi] = Number((bus >> 32n) & 0xffffffffn) | 0;
    this.ctx.guestError(`e1000: DMA ${what} at bus 0x${bus.toString(16)}+${len} hits no window`);
  }

  private ringBase(bal: number, bah: number): bigint {
    return (BigInt(this.r[bah >> 2]) << 32n) | BigInt(this.r[bal >> 2]);
  }

  // --- transmit [3.3], QEMU start_xmit: runs inside the TDT/TCTL write --------------------------------

  private transmit(): void {
    if (!(this.r[TCTL >> 2] & TCTL_EN)) return;
    const n = this.r[TDLEN >> 2] / 16;
    if (n === 0) return;
    const base = this.ringBase(TDBAL, TDBAH);
    const start = this.r[TDH >> 2];
    let cause = ICR_TXQE;
    while (this.r[TDH >> 2] !== this.r[TDT >> 2]) {
      const h = this.r[TDH >> 2];
      const at = base + BigInt(h * 16);
      const d = this.dmaRead(at, 16, `TX descriptor ${h}`);
      if (!d) break;
      const dv = new DataView(d.buffer, d.byteOffset, 16);
      const addr = dv.getBigUint64(0, true);
      const len = dv.getUint16(8, true);
      const cmd = d[11];
      if (cmd & TXD_CMD_DEXT) {
        this.ctx.guestError(`e1000: TX descriptor ${h}: context/data descriptors are not modelled`);
      } else if (len > 0) {
        const room = MAX_TX_FRAME - this.w[W.txLen];
        const take = Math.min(len, room);
        const buf = this.dmaRead(addr, take, `TX buffer of descriptor ${h}`);
        if (buf) {
          this.bytes.set(buf, TXBUF_AT + this.w[W.txLen]);
          this.w[W.txLen] += take;
        }
      }
      if (!(cmd & TXD_CMD_DEXT) && cmd & TXD_CMD_EOP) {
        this.send(this.bytes.subarray(TXBUF_AT, TXBUF_AT + this.w[W.txLen]));
        this.w[W.txLen] = 0;
      }
      if (cmd & (TXD_CMD_RS | TXD_CMD_RPS)) {
        // Write back only the status byte's dword (bytes 12-15), as QEMU's txdesc_writeback.
        const upper = d.slice(12, 16);
        upper[0] |= TXD_DD;
        if (this.dmaWrite(at + 12n, upper, `TX descriptor ${h} status`)) cause |= ICR_TXDW;
      }
      let next = h + 1;
      if (next >= n) next = 0;
      this.r[TDH >> 2] = next;
      if (next === start) {
        this.ctx.guestError(
          `e1000: TDH wrapped around to ${start} (TDT ${this.r[TDT >> 2]}, TDLEN ${this.r[TDLEN >> 2]})`,
        );
        break;
      }
    }
    this.raise(cause);
  }

  /** A frame leaves on the wire (dropped while the link is down, as QEMU's net layer does). */
  private send(frame: Uint8Array): void {
    this.r[GPTC >> 2]++;
    this.r[TPT >> 2]++;
    this.grow64(GOTCL, frame.length + 4);
    if (!(this.r[STATUS >> 2] & STATUS_LU)) return;
    const w = this.w;
    const head = w[W.outHead];
    const tail = Atomics.load(w, W.outTail);
    const used = (head - tail + WIRE_BYTES) % WIRE_BYTES;
    const need = 4 + frame.length;
    if (used + need >= WIRE_BYTES) {
      this.ctx.guestError('e1000: the wire ring is full: a transmitted frame was dropped');
      return;
    }
    ringPut(this.bytes, OUT_AT, head, frame);
    Atomics.store(w, W.outHead, (head + need) % WIRE_BYTES);
  }

  private grow64(lo: number, n: number): void {
    const sum = this.r[lo >> 2] + n;
    this.r[lo >> 2] = sum >>> 0;
    if (sum > 0xffffffff) this.r[(lo + 4) >> 2]++;
  }

  // --- receive [3.2], QEMU e1000_can_receive / e1000_receive_iov --------------------------------------

  private rxBufSize(): number {
    const rctl = this.r[RCTL >> 2];
    const bsize = (rctl >>> 16) & 3;
    if (rctl & RCTL_BSEX) return [2048, 16384, 8192, 4096][bsize];
    return [2048, 1024, 512, 256][bsize];
  }

  private freeRxDescriptors(): number {
    const n = this.r[RDLEN >> 2] / 16;
    const h = this.r[RDH >> 2];
    const t = this.r[RDT >> 2];
    if (n === 0) return 0;
    return t >= h ? t - h : n - h + t; // RDH == RDT: none
  }

  private canReceive(): boolean {
    return (
      (this.r[STATUS >> 2] & STATUS_LU) !== 0 &&
      (this.r[RCTL >> 2] & RCTL_EN) !== 0 &&
      this.freeRxDescriptors() > 0 &&
      !this.f64[F64.holdUntil]
    );
  }

  /** Take frames off the wire while the NIC can accept them; the rest wait (QEMU's net queue). */
  private receive(): void {
    const w = this.w;
    for (;;) {
      const tail = w[W.inTail];
      if (tail === Atomics.load(w, W.inHead)) return;
      if (!Atomics.load(w, W.carrier)) {
        // A NIC whose link is down hears nothing: QEMU's net layer drops the frame.
        w[W.linkDrops]++;
        Atomics.store(w, W.inTail, ringSkip(this.view, IN_AT, tail));
        continue;
      }
      if (this.f64[F64.holdUntil] && this.ctx.now() >= this.f64[F64.holdUntil]) this.f64[F64.holdUntil] = 0;
      if (!this.canReceive()) return;
      const len = ringLen(this.view, IN_AT, tail);
      const frame = ringGet(this.bytes, IN_AT, tail, len);
      Atomics.store(w, W.inTail, (tail + 4 + len) % WIRE_BYTES);
      if (this.accepts(frame)) this.deliver(frame);
    }
  }

  /** QEMU receive_filter: promiscuous, broadcast, or our own unicast address in RA[0]. */
  private accepts(f: Uint8Array): boolean {
    const rctl = this.r[RCTL >> 2];
    const multicast = (f[0] & 1) !== 0;
    if (multicast && rctl & RCTL_MPE) return true;
    if (!multicast && rctl & RCTL_UPE) return true;
    if (f.subarray(0, 6).every((b) => b === 0xff)) return (rctl & RCTL_BAM) !== 0;
    if (multicast) return false; // no multicast table in this model
    for (let ra = 0; ra < 16; ra++) {
      const lo = this.r[(RAL0 >> 2) + 2 * ra];
      const hi = this.r[(RAH0 >> 2) + 2 * ra];
      if (!(hi & RAH_AV)) continue;
      if (
        f[0] === (lo & 0xff) &&
        f[1] === ((lo >>> 8) & 0xff) &&
        f[2] === ((lo >>> 16) & 0xff) &&
        f[3] === lo >>> 24 &&
        f[4] === (hi & 0xff) &&
        f[5] === ((hi >>> 8) & 0xff)
      )
        return true;
    }
    return false;
  }

  private deliver(raw: Uint8Array): void {
    let frame = raw;
    if (frame.length < MIN_FRAME) {
      frame = new Uint8Array(MIN_FRAME);
      frame.set(raw);
    }
    const fcs = this.r[RCTL >> 2] & RCTL_SECRC ? 0 : 4;
    const total = frame.length + fcs;
    const bufSize = this.rxBufSize();
    const n = this.r[RDLEN >> 2] / 16;
    if (this.freeRxDescriptors() * bufSize < total) {
      this.raise(ICR_RXO); // not enough buffers for this frame: QEMU drops it with an overrun
      return;
    }
    const base = this.ringBase(RDBAL, RDBAH);
    const start = this.r[RDH >> 2];
    // With SECRC clear the device appends 4 bytes of FCS; this model writes zeros there.
    const data = fcs ? Uint8Array.from([...frame, 0, 0, 0, 0]) : frame;
    let done = 0;
    do {
      const h = this.r[RDH >> 2];
      const at = base + BigInt(h * 16);
      const d = this.dmaRead(at, 16, `RX descriptor ${h}`);
      if (!d) return;
      const dv = new DataView(d.buffer, d.byteOffset, 16);
      const addr = dv.getBigUint64(0, true);
      const size = Math.min(bufSize, total - done);
      if (addr !== 0n) {
        // Descriptors with a null buffer address are skipped "as per intel docs" (QEMU).
        if (!this.dmaWrite(addr, data.subarray(done, done + size), `RX buffer of descriptor ${h}`)) return;
        done += size;
        dv.setUint16(8, size, true);
        d[12] |= RXD_DD | RXD_IXSM | (done >= total ? RXD_EOP : 0);
      } else {
        d[12] |= RXD_DD;
      }
      if (!this.dmaWrite(at, d, `RX descriptor ${h} write-back`)) return;
      let next = h + 1;
      if (next >= n) next = 0;
      this.r[RDH >> 2] = next;
      if (next === start) {
        this.ctx.guestError(
          `e1000: RDH wrapped around to ${start} (RDT ${this.r[RDT >> 2]}, RDLEN ${this.r[RDLEN >> 2]})`,
        );
        return;
      }
    } while (done < total);
    this.r[GPRC >> 2]++;
    this.r[TPR >> 2]++;
    this.grow64(GORCL, frame.length + 4);
    let cause = ICR_RXT0;
    const rdmts = (this.r[RCTL >> 2] >>> 8) & 3;
    if (this.freeRxDescriptors() * 16 <= this.r[RDLEN >> 2] >>> (rdmts + 1)) cause |= ICR_RXDMT0;
    this.raise(cause);
  }
}

// --- the wire: frame records [u32 length][bytes] in a byte ring ------------------------------------------

function ringPut(bytes: Uint8Array, base: number, at: number, frame: Uint8Array): void {
  const hdr = new Uint8Array(4);
  new DataView(hdr.buffer).setUint32(0, frame.length, true);
  ringCopyIn(bytes, base, at, hdr);
  ringCopyIn(bytes, base, (at + 4) % WIRE_BYTES, frame);
}

function ringCopyIn(bytes: Uint8Array, base: number, at: number, src: Uint8Array): void {
  const first = Math.min(src.length, WIRE_BYTES - at);
  bytes.set(src.subarray(0, first), base + at);
  if (first < src.length) bytes.set(src.subarray(first), base);
}

function ringGet(bytes: Uint8Array, base: number, at: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const from = (at + 4) % WIRE_BYTES;
  const first = Math.min(len, WIRE_BYTES - from);
  out.set(bytes.subarray(base + from, base + from + first));
  if (first < len) out.set(bytes.subarray(base, base + len - first), first);
  return out;
}

function ringLen(view: DataView, base: number, at: number): number {
  // The 4-byte header itself may wrap.
  let v = 0;
  for (let k = 0; k < 4; k++) v |= view.getUint8(base + ((at + k) % WIRE_BYTES)) << (8 * k);
  return v >>> 0;
}

function ringSkip(view: DataView, base: number, at: number): number {
  return (at + 4 + ringLen(view, base, at)) % WIRE_BYTES;
}

export const e1000: SimModelClass<E1000Options> = {
  name: 'e1000',
  summary: 'Intel 82540EM as QEMU models it (8086:100e): rings, legacy descriptors, interrupts, link, statistics',
  describe(options: E1000Options): SimDescription {
    return {
      model: 'e1000',
      pci: { vendor: 0x8086, device: 0x100e },
      regions: [{ name: 'bar0', size: E1000_BAR0_SIZE }],
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

// --- the far end of the wire, for tests and the bridge's tests ---------------------------------------------

function wire(spec: DeviceSpec): { w: Int32Array; bytes: Uint8Array; view: DataView } {
  if (spec.sim?.model !== 'e1000') throw new Error(`${spec.id}: not a simulated e1000`);
  const at = SIM_IRQ_BYTES;
  return {
    w: new Int32Array(spec.sim.state, at + CTRL_AT, WORDS),
    bytes: new Uint8Array(spec.sim.state, at, STATE_BYTES),
    view: new DataView(spec.sim.state, at, STATE_BYTES),
  };
}

function kick(spec: DeviceSpec): void {
  loadNative().eventfdWrite(spec.sim!.kickFd, 1);
}

/** Put frames on the wire towards the NIC and wake the driver's thread. Returns how many fitted. */
export function e1000Inject(spec: DeviceSpec, frames: Uint8Array[]): number {
  const { w, bytes } = wire(spec);
  let n = 0;
  for (const f of frames) {
    const head = w[W.inHead];
    const tail = Atomics.load(w, W.inTail);
    const used = (head - tail + WIRE_BYTES) % WIRE_BYTES;
    if (used + 4 + f.length >= WIRE_BYTES) break;
    ringPut(bytes, IN_AT, head, f);
    Atomics.store(w, W.inHead, (head + 4 + f.length) % WIRE_BYTES);
    Atomics.add(w, W.injected, 1);
    n++;
  }
  kick(spec);
  return n;
}

/** Collect the frames the NIC has transmitted since the last call. */
export function e1000Capture(spec: DeviceSpec): Uint8Array[] {
  const { w, bytes, view } = wire(spec);
  const out: Uint8Array[] = [];
  let tail = Atomics.load(w, W.outTail);
  const head = Atomics.load(w, W.outHead);
  while (tail !== head) {
    const len = ringLen(view, OUT_AT, tail);
    out.push(ringGet(bytes, OUT_AT, tail, len));
    tail = (tail + 4 + len) % WIRE_BYTES;
  }
  Atomics.store(w, W.outTail, tail);
  return out;
}

/** Plug (true) or pull (false) the cable: the NIC sees a link change (LSC) when its thread next runs. */
export function e1000SetLink(spec: DeviceSpec, up: boolean): void {
  Atomics.store(wire(spec).w, W.carrier, up ? 1 : 0);
  kick(spec);
}

/** The DMA oracle: accesses the model made, how many fell outside every window, the last such address. */
export function e1000Dma(spec: DeviceSpec): {
  accesses: number;
  outside: number;
  lastOutside: bigint | null;
  linkDrops: number;
  waiting: number;
} {
  const { w, view } = wire(spec);
  const outside = Atomics.load(w, W.dmaOutside);
  let waiting = 0;
  for (let t = Atomics.load(w, W.inTail), h = Atomics.load(w, W.inHead); t !== h; t = ringSkip(view, IN_AT, t))
    waiting++;
  return {
    accesses: Atomics.load(w, W.dmaAccesses) >>> 0,
    outside,
    lastOutside: outside ? (BigInt(w[W.lastOutsideHi] >>> 0) << 32n) | BigInt(w[W.lastOutsideLo] >>> 0) : null,
    linkDrops: w[W.linkDrops],
    waiting,
  };
}
