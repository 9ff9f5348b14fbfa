// The simulated e1000's register map, bit constants, shared-state layout and wire rings (sim/e1000.ts).

export const E1000_BAR0_SIZE = 0x20000;
export const E1000_DEFAULT_MAC = '52:54:00:12:34:56';

// Registers (byte offsets in BAR0) — 8254x SDM table 13-2
export const CTRL = 0x0000;
export const STATUS = 0x0008;
export const EERD = 0x0014;
export const ICR = 0x00c0;
export const ICS = 0x00c8;
export const IMS = 0x00d0;
export const IMC = 0x00d8;
export const RCTL = 0x0100;
export const TCTL = 0x0400;
export const RDBAL = 0x2800;
export const RDBAH = 0x2804;
export const RDLEN = 0x2808;
export const RDH = 0x2810;
export const RDT = 0x2818;
export const TDBAL = 0x3800;
export const TDBAH = 0x3804;
export const TDLEN = 0x3808;
export const TDH = 0x3810;
export const TDT = 0x3818;
export const GPRC = 0x4074;
export const GPTC = 0x4080;
export const GORCL = 0x4088;
export const GORCH = 0x408c;
export const GOTCL = 0x4090;
export const GOTCH = 0x4094;
export const TPR = 0x40d0;
export const TPT = 0x40d4;
export const RAL0 = 0x5400;
export const RAH0 = 0x5404;

export const CTRL_SLU = 1 << 6;
export const CTRL_RST = 1 << 26;
export const CTRL_RESET_VALUE = (1 << 18) | (1 << 20) | (2 << 8) | CTRL_SLU; // SWDPIN0|SWDPIN2|SPD_1000|SLU, as QEMU
export const STATUS_FD = 1 << 0;
export const STATUS_LU = 1 << 1;
export const STATUS_SPEED_1000 = 2 << 6;
export const EERD_START = 1 << 0;
export const EERD_DONE = 1 << 4;
export const ICR_TXDW = 1 << 0;
export const ICR_TXQE = 1 << 1;
export const ICR_LSC = 1 << 2;
export const ICR_RXDMT0 = 1 << 4;
export const ICR_RXO = 1 << 6;
export const ICR_RXT0 = 1 << 7;
export const RCTL_EN = 1 << 1;
export const RCTL_UPE = 1 << 3;
export const RCTL_MPE = 1 << 4;
export const RCTL_BAM = 1 << 15;
export const RCTL_BSEX = 1 << 25;
export const RCTL_SECRC = 1 << 26;
export const TCTL_EN = 1 << 1;
export const RAH_AV = 1 << 31;

export const RXD_DD = 0x01;
export const RXD_EOP = 0x02;
export const RXD_IXSM = 0x04;
export const TXD_CMD_EOP = 0x01;
export const TXD_CMD_RS = 0x08;
export const TXD_CMD_RPS = 0x10;
export const TXD_CMD_DEXT = 0x20;
export const TXD_DD = 0x01;

export const MIN_FRAME = 60;
export const MAX_TX_FRAME = 0x10000;
export const WIRE_BYTES = 1 << 18; // each direction's ring of [u32 length][bytes] records

// Shared state: the MAC register file (128 KiB, indexed by offset / 4 as QEMU's mac_reg), control
// words, the device's TX assembly buffer, then the two wire rings.
export const REGS = E1000_BAR0_SIZE / 4;
export const W = {
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
export const WORDS = 16;
export const F64 = { holdUntil: 0 } as const;
export const CTRL_AT = REGS * 4;
export const F64_AT = CTRL_AT + WORDS * 4;
export const TXBUF_AT = F64_AT + 8;
export const IN_AT = TXBUF_AT + MAX_TX_FRAME;
export const OUT_AT = IN_AT + WIRE_BYTES;
export const STATE_BYTES = OUT_AT + WIRE_BYTES;

export interface E1000Options {
  /** The MAC address QEMU presets into RAL0/RAH0 and the EEPROM. Default 52:54:00:12:34:56. */
  mac?: string;
  /** Bus address of the DMA window. Default 0x1000_0000. */
  dmaBus?: bigint;
  /** Size of the DMA window (rings and buffers). Default 256 KiB. */
  dmaSize?: number;
  /** How long a write to RCTL holds reception back (QEMU's flush_queue_timer: 1 s). */
  rctlHoldNs?: number;
  /**
   * What CTRL.RST does: 'hardware' (default) resets every register to its power-on value, as the
   * 8254x and QEMU's e1000e do; 'qemu' clears the bit and resets nothing, as QEMU's e1000.
   */
  softReset?: 'hardware' | 'qemu';
}

export function parseMac(mac: string): number[] {
  const parts = mac.split(':').map((p) => parseInt(p, 16));
  if (parts.length !== 6 || parts.some((p) => !(p >= 0 && p <= 255)))
    throw new Error(`e1000: bad MAC address "${mac}" (want xx:xx:xx:xx:xx:xx)`);
  return parts;
}

// --- the wire: frame records [u32 length][bytes] in a byte ring ------------------------------------------

export function ringPut(bytes: Uint8Array, base: number, at: number, frame: Uint8Array): void {
  const hdr = new Uint8Array(4);
  new DataView(hdr.buffer).setUint32(0, frame.length, true);
  ringCopyIn(bytes, base, at, hdr);
  ringCopyIn(bytes, base, (at + 4) % WIRE_BYTES, frame);
}

export function ringCopyIn(bytes: Uint8Array, base: number, at: number, src: Uint8Array): void {
  const first = Math.min(src.length, WIRE_BYTES - at);
  bytes.set(src.subarray(0, first), base + at);
  if (first < src.length) bytes.set(src.subarray(first), base);
}

export function ringGet(bytes: Uint8Array, base: number, at: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const from = (at + 4) % WIRE_BYTES;
  const first = Math.min(len, WIRE_BYTES - from);
  out.set(bytes.subarray(base + from, base + from + first));
  if (first < len) out.set(bytes.subarray(base, base + len - first), first);
  return out;
}

export function ringLen(view: DataView, base: number, at: number): number {
  // The 4-byte header itself may wrap.
  let v = 0;
  for (let k = 0; k < 4; k++) v |= view.getUint8(base + ((at + k) % WIRE_BYTES)) << (8 * k);
  return v >>> 0;
}

export function ringSkip(view: DataView, base: number, at: number): number {
  return (at + 4 + ringLen(view, base, at)) % WIRE_BYTES;
}
