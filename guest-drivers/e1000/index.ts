// Driver for the Intel 82540EM Gigabit Ethernet controller ("e1000", 8086:100e), as QEMU models it.
// Section numbers [x.y] are those of Intel's "PCI/PCI-X Family of Gigabit Ethernet Controllers
// Software Developer's Manual" (8254x SDM, rev. 4.0); the init order follows its chapter 14.
// ixy-style: one RX and one TX ring of legacy descriptors in the DMA window, one tail write per batch.
//
// DMA window 0 (at least 256 KiB) holds, from offset 0:
//   RX ring  RX_N × 16 bytes       TX ring  TX_N × 16 bytes       (in the first page)
//   RX buffers RX_N × 2048 bytes   TX buffers TX_N × 1536 bytes   (from offset 4096; 228 KiB in all)
// Each descriptor owns the buffer of its index for good, so a descriptor's address never changes.
//
// Interrupts: the kernel stub masks the line (PCI INTx disable) and the host re-arms it; the driver
// reads ICR, which clears the causes [13.4.17]. Causes enabled: RXT0 (frame received), TXDW (a
// descriptor written back), LSC (link status change).
//
// Requests (op, little-endian arguments → response):
//   OP_SEND   ([u32 len][len bytes][pad] ...) → u32 frames queued (stops early when the TX ring is full)
//   OP_RECV   (u32 max, u32 timeout_us)     → u32 n, then n × ([u32 len][len bytes][pad]); waits up
//                                            to timeout_us for a first frame; stops at what fits the
//                                            8 KiB io buffer (the rest stays in the ring)
//   Frame records are padded with zeros to a multiple of 4 bytes; frames are 14..1518 bytes.
//   OP_MAC    ()                            → 6 bytes of MAC, 2 zero bytes, u32 source (0 RAL0, 1 EEPROM)
//   OP_LINK   ()                            → u32 up, u32 speed (Mb/s), u32 link changes seen
//   OP_STATS  ()                            → u64 × 13: the device's GPRC, GPTC, GORC, GOTC, TPR, TPT
//                                            (accumulated: the registers clear on read), then the
//                                            driver's frames received, sent, interrupts, TX-ring-full,
//                                            then the device's MPC and RNBC, then the frames the
//                                            driver dropped (error, bad length)
//   OP_FORWARD (u32 batch, u32 ms ≤ 2000)   → u64 frames forwarded: for ms milliseconds, send every frame
//                                            received back out (a reflector; npm run bench's e1000
//                                            section), at most batch per turn, one RDT and one TDT write
//                                            per turn, the frames never leaving the DMA window
//
// Hot reload (state_save / state_restore): the rings and buffers live in the host-owned DMA window, which
// the new instance maps again, so the NIC keeps running untouched (no reset, no ring rewrite): the new
// instance takes over the ring positions (rxNext, txTail, txClean), MAC, link and statistics, checks
// that the device still points at the same rings, and re-enables the causes it serves.

import {
  Region, DmaWindow, Args, Out, StateReader, irq, logInfo, logWarn, logError, hex, nowNs, io_buffer,
  WAIT_CANCELLED, WAIT_INTERRUPT, IO_BUFFER_SIZE,
} from "../sdk";
export { wasmdrv_abi_version, io_buffer, io_buffer_size } from "../sdk";

// --- registers (BAR0, all 32-bit) [13.3, table 13-2] ---------------------------------------------------
const CTRL: u32 = 0x0000;    // [13.4.1] device control
const STATUS: u32 = 0x0008;  // [13.4.2] device status (RO)
const EERD: u32 = 0x0014;    // [13.4.4] EEPROM read
const ICR: u32 = 0x00c0;     // [13.4.17] interrupt cause read (read-to-clear)
const IMS: u32 = 0x00d0;     // [13.4.20] interrupt mask set
const IMC: u32 = 0x00d8;     // [13.4.21] interrupt mask clear
const RCTL: u32 = 0x0100;    // [13.4.22] receive control
const TCTL: u32 = 0x0400;    // [13.4.33] transmit control
const TIPG: u32 = 0x0410;    // [13.4.34] transmit inter-packet gap
const RDBAL: u32 = 0x2800;   // [13.4.25] RX descriptor base low
const RDBAH: u32 = 0x2804;   // [13.4.26] RX descriptor base high
const RDLEN: u32 = 0x2808;   // [13.4.27] RX ring length in bytes
const RDH: u32 = 0x2810;     // [13.4.28] RX head
const RDT: u32 = 0x2818;     // [13.4.29] RX tail
const RDTR: u32 = 0x2820;    // [13.4.30] RX delay timer
const TDBAL: u32 = 0x3800;   // [13.4.36] TX descriptor base low
const TDBAH: u32 = 0x3804;   // [13.4.37] TX descriptor base high
const TDLEN: u32 = 0x3808;   // [13.4.38] TX ring length in bytes
const TDH: u32 = 0x3810;     // [13.4.39] TX head
const TDT: u32 = 0x3818;     // [13.4.40] TX tail
const GPRC: u32 = 0x4074;    // [13.7] good packets received
const GPTC: u32 = 0x4080;    // [13.7] good packets transmitted
const GORCL: u32 = 0x4088;   // [13.7] good octets received (low, then high)
const GORCH: u32 = 0x408c;
const GOTCL: u32 = 0x4090;   // [13.7] good octets transmitted (low, then high)
const GOTCH: u32 = 0x4094;
const TPR: u32 = 0x40d0;     // [13.7] total packets received
const TPT: u32 = 0x40d4;     // [13.7] total packets transmitted
const MPC: u32 = 0x4010;     // [13.7] missed packets (no room on the chip: QEMU counts it with RNBC)
const RNBC: u32 = 0x40a0;    // [13.7] receive no buffers (a frame arrived with RDH == RDT)
const RAL0: u32 = 0x5400;    // [13.5.2] receive address 0 low
const RAH0: u32 = 0x5404;    // [13.5.3] receive address 0 high

const CTRL_LRST: u32 = 1 << 3;
const CTRL_ASDE: u32 = 1 << 5;
const CTRL_SLU: u32 = 1 << 6;
const CTRL_ILOS: u32 = 1 << 7;
const CTRL_RST: u32 = 1 << 26;
const CTRL_PHY_RST: u32 = 1 << 31;
const STATUS_LU: u32 = 1 << 1;
const EERD_START: u32 = 1 << 0;  // 82540EM layout: START bit 0, DONE bit 4, address bits 15:8
const EERD_DONE: u32 = 1 << 4;
const ICR_TXDW: u32 = 1 << 0;
const ICR_LSC: u32 = 1 << 2;
const ICR_RXT0: u32 = 1 << 7;
const RCTL_EN: u32 = 1 << 1;
const RCTL_BAM: u32 = 1 << 15;   // accept broadcast
const RCTL_BSIZE_2048: u32 = 0;  // BSIZE 00 with BSEX clear
const RCTL_SECRC: u32 = 1 << 26; // strip the Ethernet CRC
const TCTL_EN: u32 = 1 << 1;
const TCTL_PSP: u32 = 1 << 3;    // pad short packets
const TCTL_CT: u32 = 0x10 << 4;  // collision threshold [14.5]
const TCTL_COLD: u32 = 0x40 << 12; // collision distance, full duplex [14.5]
const TIPG_COPPER: u32 = 10 | (8 << 10) | (6 << 20); // IPGT 10, IPGR1 8, IPGR2 6 [13.4.34]
const RAH_AV: u32 = 1 << 31;

// --- legacy descriptors [3.2.3 RX, 3.3.3 TX], 16 bytes, little-endian ----------------------------------
const DESC: u32 = 16;
const D_ADDR: u32 = 0;           // u64 buffer bus address
const D_LEN: u32 = 8;            // u16 length
const RXD_STATUS: u32 = 12;      // u8 status (DD, EOP)
const RXD_ERRORS: u32 = 13;      // u8 errors
const TXD_CMD: u32 = 11;         // u8 command (EOP, IFCS, RS)
const TXD_STATUS: u32 = 12;      // u8 status (DD)
const RXD_DD: u8 = 0x01;
const RXD_EOP: u8 = 0x02;
const TXD_CMD_EOP: u8 = 0x01;
const TXD_CMD_IFCS: u8 = 0x02;
const TXD_CMD_RS: u8 = 0x08;     // report status: QEMU writes DD back only with RS
const TXD_DD: u8 = 0x01;

// --- layout and limits ------------------------------------------------------------------------------------
const RX_N: u32 = 64;            // descriptors per ring: RDLEN = 1024, a multiple of 128 [13.4.27]
const TX_N: u32 = 64;
const BUF: u32 = 2048;           // RX buffer: matches RCTL.BSIZE
const TX_BUF: u32 = 1536;        // TX buffer: a whole frame (MAX_FRAME) fits
const RX_RING_AT: u32 = 0;
const TX_RING_AT: u32 = RX_N * DESC;
const RX_BUF_AT: u32 = 4096;
const TX_BUF_AT: u32 = RX_BUF_AT + RX_N * BUF;
const WINDOW_NEEDED: u32 = TX_BUF_AT + TX_N * TX_BUF;
const MAX_FRAME: u32 = 1518;     // without LPE the device takes no more [13.4.22]

const RESET_TIMEOUT_US: u32 = 100_000;
const EERD_TIMEOUT_US: u32 = 10_000;

/** The DMA area the host maps window 0 into (the SDK's is 64 KiB; the rings need more). */
const DMA_AREA_SIZE: u32 = 0x40000;
const DMA_AREA: usize = memory.data(<i32>DMA_AREA_SIZE, 4096);
export function dma_area(): usize { return DMA_AREA; }
export function dma_area_size(): u32 { return DMA_AREA_SIZE; }

// --- requests ---------------------------------------------------------------------------------------------
const OP_SEND: u32 = 1;
const OP_RECV: u32 = 2;
const OP_MAC: u32 = 3;
const OP_LINK: u32 = 4;
const OP_STATS: u32 = 5;
const OP_FORWARD: u32 = 6;

const ERR_UNKNOWN_OP: i32 = -1;
const ERR_BAD_FRAME: i32 = -2;
const ERR_CANCELLED: i32 = -3;

const bar0 = new Region(0);
let win: DmaWindow = new DmaWindow(0, 0, 0);

let rxNext: u32 = 0;      // next RX descriptor the device will fill
let txTail: u32 = 0;      // next TX descriptor we fill (our copy of TDT)
let txClean: u32 = 0;     // oldest TX descriptor not yet seen done
let macLo: u32 = 0;
let macHi: u32 = 0;
let macSource: u32 = 0;
let linkUp: bool = false;
let linkChanges: u32 = 0;

// statistics: the device's counters clear on read, so the driver accumulates them [13.7]
let gprc: u64 = 0, gptc: u64 = 0, gorc: u64 = 0, gotc: u64 = 0, tpr: u64 = 0, tpt: u64 = 0;
let rxFrames: u64 = 0, txFrames: u64 = 0, interrupts: u64 = 0, txFull: u64 = 0;
let mpc: u64 = 0, rnbc: u64 = 0, rxBad: u64 = 0;

// --- descriptor access (the window is plain memory shared with the device) --------------------------------

@inline function rxDesc(i: u32): usize { return win.addr + RX_RING_AT + i * DESC; }
@inline function txDesc(i: u32): usize { return win.addr + TX_RING_AT + i * DESC; }
@inline function rxBuf(i: u32): usize { return win.addr + RX_BUF_AT + i * BUF; }
@inline function txBuf(i: u32): usize { return win.addr + TX_BUF_AT + i * TX_BUF; }

// --- init [14] ---------------------------------------------------------------------------------------------

/** [14.4, 13.4.1] Mask every interrupt, reset, mask again: the reset may have left IMS set. */
function resetDevice(): bool {
  bar0.write32(IMC, 0xffffffff);
  bar0.setBits32(CTRL, CTRL_RST);
  // QEMU clears RST at once and resets nothing else, so every register below is written explicitly.
  if (!bar0.waitBits32(CTRL, CTRL_RST, 0, RESET_TIMEOUT_US)) return false;
  bar0.write32(IMC, 0xffffffff);
  bar0.read32(ICR);
  return true;
}

/** [13.5.2-3] The MAC from RAL0/RAH0 (QEMU and the EEPROM loader preset it); else EEPROM words 0-2. */
function readMac(): bool {
  const hi = bar0.read32(RAH0);
  if ((hi & RAH_AV) != 0) {
    macLo = bar0.read32(RAL0);
    macHi = hi & 0xffff;
    macSource = 0;
    return true;
  }
  let w: u32[] = [0, 0, 0];
  for (let i: u32 = 0; i < 3; i++) {
    bar0.write32(EERD, (i << 8) | EERD_START); // [13.4.4]
    if (!bar0.waitBits32(EERD, EERD_DONE, EERD_DONE, EERD_TIMEOUT_US)) return false;
    w[i] = bar0.read32(EERD) >> 16;
  }
  macLo = w[0] | (w[1] << 16);
  macHi = w[2];
  macSource = 1;
  bar0.write32(RAL0, macLo);
  bar0.write32(RAH0, macHi | RAH_AV);
  return true;
}

/** [14.3] Link: set link up, auto speed detection; clear link reset, PHY reset and invert-loss-of-signal. */
function linkSetup(): void {
  const ctrl = bar0.read32(CTRL);
  bar0.write32(CTRL, (ctrl | CTRL_SLU | CTRL_ASDE) & ~(CTRL_LRST | CTRL_PHY_RST | CTRL_ILOS));
  linkUp = (bar0.read32(STATUS) & STATUS_LU) != 0;
}

/** [14.4] Receive: every descriptor owns its buffer; RDT = N-1 because RDH == RDT means "no buffers". */
function rxSetup(): void {
  for (let i: u32 = 0; i < RX_N; i++) {
    store<u64>(rxDesc(i) + D_ADDR, win.busAt(RX_BUF_AT + i * BUF));
    store<u64>(rxDesc(i) + D_LEN, 0);
  }
  const ring = win.busAt(RX_RING_AT);
  bar0.write32(RDBAL, <u32>ring);
  bar0.write32(RDBAH, <u32>(ring >> 32));
  bar0.write32(RDLEN, RX_N * DESC);
  bar0.write32(RDH, 0);
  bar0.write32(RDT, RX_N - 1);
  bar0.write32(RDTR, 0); // interrupt per frame, no delay [13.4.30]
  rxNext = 0;
  // QEMU holds reception back for ~1 s after this write; frames wait on the wire meanwhile.
  bar0.write32(RCTL, RCTL_EN | RCTL_BAM | RCTL_BSIZE_2048 | RCTL_SECRC);
}

/** [14.5] Transmit: an empty ring (TDH = TDT = 0), each descriptor pointing at its own buffer. */
function txSetup(): void {
  for (let i: u32 = 0; i < TX_N; i++) {
    store<u64>(txDesc(i) + D_ADDR, win.busAt(TX_BUF_AT + i * TX_BUF));
    store<u64>(txDesc(i) + D_LEN, 0);
  }
  const ring = win.busAt(TX_RING_AT);
  bar0.write32(TDBAL, <u32>ring);
  bar0.write32(TDBAH, <u32>(ring >> 32));
  bar0.write32(TDLEN, TX_N * DESC);
  bar0.write32(TDH, 0);
  bar0.write32(TDT, 0);
  txTail = 0;
  txClean = 0;
  bar0.write32(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
  bar0.write32(TIPG, TIPG_COPPER);
}

// --- interrupts --------------------------------------------------------------------------------------------

/** Read (and so clear) the causes [13.4.17]; follow the link on LSC. */
function takeCauses(): u32 {
  const icr = bar0.read32(ICR);
  if ((icr & ICR_LSC) != 0) {
    const up = (bar0.read32(STATUS) & STATUS_LU) != 0;
    if (up != linkUp) {
      linkChanges++;
      logInfo("e1000: link " + (up ? "up" : "down"));
    }
    linkUp = up;
  }
  return icr;
}

// --- transmit --------------------------------------------------------------------------------------------

/** Reclaim descriptors the device has written back (DD) [3.3.3.2]. */
function txReclaim(): void {
  while (txClean != txTail && (load<u8>(txDesc(txClean) + TXD_STATUS) & TXD_DD) != 0) {
    txClean = (txClean + 1) % TX_N;
  }
}

/** Queue the frames of the request; one TDT write for the whole batch. */
function send(args: Args): i32 {
  txReclaim();
  let at: u32 = 0;
  let queued: u32 = 0;
  while (at + 4 <= args.len) {
    const len = args.u32(at / 4);
    if (len == 0 || len > MAX_FRAME || at + 4 + len > args.len) {
      logWarn("e1000: send: bad frame record at byte " + at.toString() + " (length " + len.toString() + ")");
      if (queued == 0) return ERR_BAD_FRAME;
      break;
    }
    const next = (txTail + 1) % TX_N;
    if (next == txClean) { txFull++; break; } // ring full: the caller sends the rest later
    memory.copy(txBuf(txTail), args.ptr(at + 4), len);
    const d = txDesc(txTail);
    store<u64>(d + D_ADDR, win.busAt(TX_BUF_AT + txTail * TX_BUF)); // whole, whatever the device left there
    store<u16>(d + D_LEN, <u16>len);
    store<u8>(d + TXD_CMD, TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS);
    store<u8>(d + TXD_STATUS, 0);
    txTail = next;
    queued++;
    at += (4 + len + 3) & ~3;
  }
  if (queued > 0) bar0.write32(TDT, txTail); // QEMU transmits inside this write
  txFrames += queued;
  txReclaim();
  return new Out().u32(queued).end();
}

// --- receive ---------------------------------------------------------------------------------------------

/** Copy out what the device filled (DD), give the buffers back with one RDT write. */
function collect(max: u32, out: Out, used: u32): u32 {
  let n: u32 = 0;
  let last: i32 = -1;
  while (n < max) {
    const d = rxDesc(rxNext);
    const status = load<u8>(d + RXD_STATUS);
    if ((status & RXD_DD) == 0) break;
    const len = <u32>load<u16>(d + D_LEN);
    const aligned = len <= BUF ? (4 + len + 3) & ~3 : 0;
    if (used + aligned > IO_BUFFER_SIZE) break; // no room left in this response: leave it for the next
    // A length beyond the buffer (or none) is the device's error, not a frame: drop it, never read past.
    if ((status & RXD_EOP) == 0 || load<u8>(d + RXD_ERRORS) != 0 || len == 0 || len > BUF) {
      rxBad++;
      logWarn("e1000: dropped a frame (status " + hex(status) + ", errors " + hex(load<u8>(d + RXD_ERRORS)) + ", length " + len.toString() + ")");
    } else {
      out.u32(len).bytes(rxBuf(rxNext), len);
      out.bytes(changetype<usize>(ZERO), aligned - 4 - len); // records stay 4-byte aligned
      used += aligned;
      n++;
    }
    // Re-armed whole, as at setup: the device may have scribbled over the descriptor's other fields.
    store<u64>(d + D_ADDR, win.busAt(RX_BUF_AT + rxNext * BUF));
    store<u64>(d + D_LEN, 0);
    last = <i32>rxNext;
    rxNext = (rxNext + 1) % RX_N;
  }
  if (last >= 0) bar0.write32(RDT, <u32>last); // the last buffer we gave back; RDT never catches RDH
  rxFrames += n;
  return n;
}
const ZERO = new StaticArray<u8>(4);

function receive(args: Args): i32 {
  const max = args.u32(0) == 0 ? RX_N : args.u32(0);
  const timeoutUs = args.u32(1);
  // The count goes first; collect() appends the frames after it.
  const out = new Out().u32(0);
  let n = collect(max, out, 4);
  const deadline = nowNs() + <u64>timeoutUs * 1000;
  while (n == 0 && timeoutUs > 0) {
    const now = nowNs();
    if (now >= deadline) break;
    const r = irq.wait(<u32>((deadline - now) / 1000) + 1);
    if (r == WAIT_CANCELLED) return ERR_CANCELLED;
    if (r == WAIT_INTERRUPT) { interrupts++; takeCauses(); }
    n = collect(max, out, 4);
  }
  store<u32>(io_buffer(), n); // patch the count in
  return out.end();
}

// --- forwarding (a reflector, for the benchmark: no request round trip per batch) ------------------------

const FORWARD_MAX_MS: u32 = 2000;

function forward(args: Args): i32 {
  let batch = args.len >= 4 ? args.u32(0) : 0;
  if (batch == 0 || batch > RX_N) batch = RX_N;
  // at most FORWARD_MAX_MS: the request stays inside the manifest's deadline (3000 ms)
  const ms: u64 = args.len >= 8 ? <u64>min(args.u32(1), FORWARD_MAX_MS) : 0;
  const end = nowNs() + ms * 1_000_000;
  let forwarded: u64 = 0;
  for (let spin: u32 = 0; ; spin++) {
    if ((spin & 255) == 0 && nowNs() >= end) break; // the clock every 256 turns
    txReclaim();
    const room = (txClean + TX_N - 1 - txTail) % TX_N;
    // The TX ring is full: read the head (with the descriptor firewall on, a head read copies the
    // device's write-backs into the driver's ring, as a doorbell does).
    if (room == 0) { bar0.read32(TDH); continue; }
    let n: u32 = 0;
    let last: i32 = -1;
    while (n < batch && n < room) {
      const d = rxDesc(rxNext);
      const status = load<u8>(d + RXD_STATUS);
      if ((status & RXD_DD) == 0) break;
      const len = <u32>load<u16>(d + D_LEN);
      // as collect(): a frame with an error, or a length of none or beyond a frame, is dropped
      if ((status & RXD_EOP) != 0 && load<u8>(d + RXD_ERRORS) == 0 && len != 0 && len <= MAX_FRAME) {
        memory.copy(txBuf(txTail), rxBuf(rxNext), len);
        const t = txDesc(txTail);
        store<u64>(t + D_ADDR, win.busAt(TX_BUF_AT + txTail * TX_BUF)); // whole, as send() does
        store<u16>(t + D_LEN, <u16>len);
        store<u8>(t + TXD_CMD, TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS);
        store<u8>(t + TXD_STATUS, 0);
        txTail = (txTail + 1) % TX_N;
        n++;
      }
      // re-armed whole, as collect() does
      store<u64>(d + D_ADDR, win.busAt(RX_BUF_AT + rxNext * BUF));
      store<u64>(d + D_LEN, 0);
      last = <i32>rxNext;
      rxNext = (rxNext + 1) % RX_N;
    }
    if (last >= 0) bar0.write32(RDT, <u32>last);
    if (n > 0) bar0.write32(TDT, txTail);
    else if (last < 0) bar0.read32(RDH); // nothing received: the same, for RX
    forwarded += n;
  }
  rxFrames += forwarded;
  txFrames += forwarded;
  return new Out().u64(forwarded).end();
}

// --- statistics [13.7]: read-to-clear, so accumulate -------------------------------------------------------

function readStats(): void {
  gprc += bar0.read32(GPRC);
  gptc += bar0.read32(GPTC);
  const rl = bar0.read32(GORCL);
  gorc += <u64>rl | (<u64>bar0.read32(GORCH) << 32);
  const tl = bar0.read32(GOTCL);
  gotc += <u64>tl | (<u64>bar0.read32(GOTCH) << 32);
  tpr += bar0.read32(TPR);
  tpt += bar0.read32(TPT);
  mpc += bar0.read32(MPC);
  rnbc += bar0.read32(RNBC);
}

// --- the ABI exports ---------------------------------------------------------------------------------------

export function probe(): i32 {
  if (DmaWindow.count() < 1) { logError("e1000: no DMA window"); return -1; }
  win = DmaWindow.get(0);
  if (win.size < WINDOW_NEEDED) {
    logError("e1000: DMA window of " + win.size.toString() + " bytes; the rings need " + WINDOW_NEEDED.toString());
    return -2;
  }
  // Snabb's trick (ixy): a ring full of 0xff before the device is pointed at it.
  memory.fill(win.addr, 0xff, RX_BUF_AT);
  if (!resetDevice()) { logError("e1000: CTRL.RST did not clear"); return -3; }
  if (!readMac()) { logError("e1000: no MAC in RAL0 and the EEPROM did not answer"); return -4; }
  linkSetup();
  txSetup();
  rxSetup();
  readStats(); // start the counters from zero
  gprc = 0; gptc = 0; gorc = 0; gotc = 0; tpr = 0; tpt = 0; mpc = 0; rnbc = 0;
  bar0.write32(IMS, ICR_RXT0 | ICR_TXDW | ICR_LSC); // [13.4.20]
  takeCauses();
  logInfo("e1000: MAC " + macString() + (macSource == 0 ? " (RAL0)" : " (EEPROM)") + ", link " + (linkUp ? "up" : "down") +
    ", " + RX_N.toString() + " RX / " + TX_N.toString() + " TX descriptors at bus " + hex(win.bus));
  return 0;
}

export function remove(): void {
  bar0.write32(IMC, 0xffffffff);
  // Written, not read-modify-written: a device that reads back garbage must not make us write it.
  bar0.write32(RCTL, 0);
  bar0.write32(TCTL, 0);
  bar0.read32(ICR);
}

export function reset(): void {
  // A previous instance may have left the rings running: stop DMA before anything else.
  remove();
}

export function interrupt(count: u32): void {
  interrupts++;
  takeCauses();
  txReclaim();
}

export function request(op: u32, len: u32): i32 {
  const args = new Args(len);
  if (op == OP_SEND) return send(args);
  if (op == OP_RECV) return receive(args);
  if (op == OP_MAC) return new Out().u32(macLo).u32(macHi).u32(macSource).end();
  if (op == OP_LINK) {
    takeCauses();
    linkUp = (bar0.read32(STATUS) & STATUS_LU) != 0;
    const speedBits = (bar0.read32(STATUS) >> 6) & 3;
    const speed: u32 = speedBits == 0 ? 10 : speedBits == 1 ? 100 : 1000;
    return new Out().u32(linkUp ? 1 : 0).u32(linkUp ? speed : 0).u32(linkChanges).end();
  }
  if (op == OP_STATS) {
    readStats();
    return new Out().u64(gprc).u64(gptc).u64(gorc).u64(gotc).u64(tpr).u64(tpt)
      .u64(rxFrames).u64(txFrames).u64(interrupts).u64(txFull).u64(mpc).u64(rnbc).u64(rxBad).end();
  }
  if (op == OP_FORWARD) return forward(args);
  logWarn("e1000: unknown request op " + op.toString());
  return ERR_UNKNOWN_OP;
}

// --- hot reload: versioned state ----------------------------------------------------------------------

const STATE_VERSION: u32 = 0xe1000001;
const STATE_LEN: u32 = 4 * 11 + 8 * 10;

export function state_save(): i32 {
  return new Out().u32(STATE_VERSION).u32(RX_N).u32(TX_N).u32(rxNext).u32(txTail).u32(txClean)
    .u32(macLo).u32(macHi).u32(macSource).u32(linkUp ? 1 : 0).u32(linkChanges)
    .u64(gprc).u64(gptc).u64(gorc).u64(gotc).u64(tpr).u64(tpt)
    .u64(rxFrames).u64(txFrames).u64(interrupts).u64(txFull).u64(mpc).u64(rnbc).u64(rxBad).end();
}

export function state_restore(len: u32): i32 {
  const s = new StateReader(len);
  if (len < STATE_LEN || s.u32() != STATE_VERSION) return -1;
  if (s.u32() != RX_N || s.u32() != TX_N) return -2;
  const rn = s.u32(), tt = s.u32(), tc = s.u32();
  if (rn >= RX_N || tt >= TX_N || tc >= TX_N) return -3;
  if (DmaWindow.count() < 1) return -4;
  const w = DmaWindow.get(0);
  if (w.size < WINDOW_NEEDED) return -4;
  // The device must still be on the rings the saved positions refer to; else a fresh probe is needed.
  const rxRing = w.busAt(RX_RING_AT), txRing = w.busAt(TX_RING_AT);
  if (bar0.read32(RDBAL) != <u32>rxRing || bar0.read32(RDBAH) != <u32>(rxRing >> 32) ||
      bar0.read32(TDBAL) != <u32>txRing || bar0.read32(TDBAH) != <u32>(txRing >> 32) ||
      bar0.read32(RDLEN) != RX_N * DESC || bar0.read32(TDLEN) != TX_N * DESC ||
      bar0.read32(TDT) != tt) return -5;
  win = w;
  rxNext = rn; txTail = tt; txClean = tc;
  macLo = s.u32(); macHi = s.u32(); macSource = s.u32();
  linkUp = s.u32() != 0; linkChanges = s.u32();
  gprc = s.u64(); gptc = s.u64(); gorc = s.u64(); gotc = s.u64(); tpr = s.u64(); tpt = s.u64();
  rxFrames = s.u64(); txFrames = s.u64(); interrupts = s.u64(); txFull = s.u64();
  // Added later (MPC, RNBC, frames dropped for errors): a state saved without them starts them at 0.
  if (len >= STATE_LEN + 8 * 3) { mpc = s.u64(); rnbc = s.u64(); rxBad = s.u64(); }
  bar0.write32(IMS, ICR_RXT0 | ICR_TXDW | ICR_LSC); // idempotent: the causes stay enabled
  txReclaim();
  logInfo("e1000: took over the running rings (RX next " + rn.toString() + ", TX " + tc.toString() + ".." + tt.toString() + ")");
  return 0;
}

function macString(): string {
  let s = "";
  for (let i: u32 = 0; i < 6; i++) {
    const b = i < 4 ? (macLo >> (8 * i)) & 0xff : (macHi >> (8 * (i - 4))) & 0xff;
    if (i > 0) s += ":";
    if (b < 16) s += "0";
    s += b.toString(16);
  }
  return s;
}
