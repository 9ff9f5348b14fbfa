// The simulated e1000's DMA: transmit and receive through the session's windows, every access
// counted (sim/e1000.ts holds the registers, interrupts and link; this their ring side).

import type { RawWriteback, SimContext } from './model.ts';
import {
  F64,
  GORCL,
  GOTCL,
  GPRC,
  GPTC,
  ICR_RXDMT0,
  ICR_RXO,
  ICR_RXT0,
  ICR_TXDW,
  ICR_TXQE,
  IN_AT,
  MAX_TX_FRAME,
  MIN_FRAME,
  OUT_AT,
  RAH0,
  RAH_AV,
  RAL0,
  RCTL,
  RCTL_BAM,
  RCTL_BSEX,
  RCTL_EN,
  RCTL_MPE,
  RCTL_SECRC,
  RCTL_UPE,
  RDBAH,
  RDBAL,
  RDH,
  RDLEN,
  RDT,
  RXD_DD,
  RXD_EOP,
  RXD_IXSM,
  STATUS,
  STATUS_LU,
  TCTL,
  TCTL_EN,
  TDBAH,
  TDBAL,
  TDH,
  TDLEN,
  TDT,
  TPR,
  TPT,
  TXBUF_AT,
  TXD_CMD_DEXT,
  TXD_CMD_EOP,
  TXD_CMD_RPS,
  TXD_CMD_RS,
  TXD_DD,
  W,
  WIRE_BYTES,
  ringGet,
  ringLen,
  ringPut,
  ringSkip,
} from './e1000-defs.ts';

export abstract class E1000Dma {
  constructor(
    protected readonly ctx: SimContext,
    protected readonly r: Uint32Array,
    protected readonly w: Int32Array,
    protected readonly f64: Float64Array,
    protected readonly bytes: Uint8Array,
    protected readonly view: DataView,
  ) {}

  protected abstract raise(bits: number): void;

  // --- DMA through the session's windows, every access counted --------------------------------------

  protected dmaRead(bus: bigint, len: number, what: string): Uint8Array | null {
    Atomics.add(this.w, W.dmaAccesses, 1);
    const data = this.ctx.dmaRead(bus, len);
    if (!data) this.outside(bus, len, `read of ${what}`);
    return data;
  }

  protected dmaWrite(bus: bigint, data: Uint8Array, what: string): boolean {
    Atomics.add(this.w, W.dmaAccesses, 1);
    if (this.ctx.dmaWrite(bus, data)) return true;
    this.outside(bus, data.length, `write of ${what}`);
    return false;
  }

  protected outside(bus: bigint, len: number, what: string): void {
    Atomics.add(this.w, W.dmaOutside, 1);
    this.w[W.lastOutsideLo] = Number(bus & 0xffffffffn) | 0;
    this.w[W.lastOutsideHi] = Number((bus >> 32n) & 0xffffffffn) | 0;
    this.ctx.guestError(`e1000: DMA ${what} at bus 0x${bus.toString(16)}+${len} hits no window`);
  }

  protected ringBase(bal: number, bah: number): bigint {
    return (BigInt(this.r[bah >> 2]) << 32n) | BigInt(this.r[bal >> 2]);
  }

  // --- transmit [3.3], QEMU start_xmit: runs inside the TDT/TCTL write --------------------------------

  protected transmit(): void {
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
  protected send(frame: Uint8Array): void {
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

  protected grow64(lo: number, n: number): void {
    const sum = this.r[lo >> 2] + n;
    this.r[lo >> 2] = sum >>> 0;
    if (sum > 0xffffffff) this.r[(lo + 4) >> 2]++;
  }

  // --- receive [3.2], QEMU e1000_can_receive / e1000_receive_iov --------------------------------------

  protected rxBufSize(): number {
    const rctl = this.r[RCTL >> 2];
    const bsize = (rctl >>> 16) & 3;
    if (rctl & RCTL_BSEX) return [2048, 16384, 8192, 4096][bsize];
    return [2048, 1024, 512, 256][bsize];
  }

  protected freeRxDescriptors(): number {
    const n = this.r[RDLEN >> 2] / 16;
    const h = this.r[RDH >> 2];
    const t = this.r[RDT >> 2];
    if (n === 0) return 0;
    return t >= h ? t - h : n - h + t; // RDH == RDT: none
  }

  protected canReceive(): boolean {
    return (
      (this.r[STATUS >> 2] & STATUS_LU) !== 0 &&
      (this.r[RCTL >> 2] & RCTL_EN) !== 0 &&
      this.freeRxDescriptors() > 0 &&
      !this.f64[F64.holdUntil]
    );
  }

  /** Take frames off the wire while the NIC can accept them; the rest wait (QEMU's net queue). */
  protected receive(): void {
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
  protected accepts(f: Uint8Array): boolean {
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

  protected deliver(raw: Uint8Array): void {
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

  /**
   * The fuzzer's received frame (SimModel.receiveRaw): into the buffer of the descriptor at RDH, as
   * deliver() writes one, but with the write-back given (any length, reserved status bits, DD
   * clear), whatever RCTL and the free descriptors say; RDH stays when `stay`.
   */
  receiveRaw(frame: Uint8Array, wb: RawWriteback | undefined, stay: boolean): void {
    const n = this.r[RDLEN >> 2] / 16;
    const h = this.r[RDH >> 2];
    if (h >= n) return; // no ring, or a head beyond it: nowhere to write
    const at = this.ringBase(RDBAL, RDBAH) + BigInt(h * 16);
    const d = this.dmaRead(at, 16, `RX descriptor ${h}`);
    if (!d) return;
    const addr = new DataView(d.buffer, d.byteOffset, 16).getBigUint64(0, true);
    const data = frame.subarray(0, this.rxBufSize());
    if (addr !== 0n && data.length && !this.dmaWrite(addr, data, `RX buffer of descriptor ${h}`)) return;
    const back = d.slice(8, 16);
    back[0] = wb ? wb.length & 0xff : data.length & 0xff;
    back[1] = wb ? (wb.length >>> 8) & 0xff : data.length >>> 8;
    back[4] = wb ? wb.status : RXD_DD | RXD_EOP | RXD_IXSM;
    back[5] = wb ? wb.errors : 0;
    if (!this.dmaWrite(at + 8n, back, `RX descriptor ${h} write-back`)) return;
    if (!stay) this.r[RDH >> 2] = h + 1 >= n ? 0 : h + 1;
    this.raise(ICR_RXT0);
  }
}
