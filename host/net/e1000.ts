// The e1000 driver's requests (guest-drivers/e1000/index.ts) as typed calls on a loaded Driver.
// Frames travel as records [u32 length][bytes][zero pad to 4]; see the driver's header.

import type { Driver } from '../driver.ts';

export const E1000_OP = { send: 1, recv: 2, mac: 3, link: 4, stats: 5, forward: 6 } as const;
/** The driver's io buffer: one request carries at most this many bytes of records. */
export const E1000_IO_BYTES = 8192;
export const E1000_MAX_FRAME = 1518;
/** The DMA window the driver's rings and buffers need (its dma_area_size; the stub's dma_size). */
export const E1000_DMA_BYTES = 0x40000;

export interface E1000Stats {
  /** The device's counters (accumulated by the driver; the registers clear on read). */
  gprc: bigint;
  gptc: bigint;
  gorc: bigint;
  gotc: bigint;
  tpr: bigint;
  tpt: bigint;
  /** The driver's own: frames received and sent, interrupts taken, sends cut short by a full TX ring. */
  rxFrames: bigint;
  txFrames: bigint;
  interrupts: bigint;
  txRingFull: bigint;
  /** The device's missed packets (MPC) and receive-no-buffers (RNBC): frames it had no RX buffer for. */
  mpc: bigint;
  rnbc: bigint;
  /** Frames the driver dropped: a descriptor with an error, no EOP or an impossible length. */
  rxBad: bigint;
}

export interface E1000Link {
  up: boolean;
  speedMbps: number;
  /** Link changes the driver has seen (LSC). */
  changes: number;
}

const pad4 = (n: number) => (n + 3) & ~3;

/** Pack as many of `frames` as fit one request; returns the payload and how many it holds. */
export function encodeFrames(frames: Uint8Array[]): { payload: Uint8Array; count: number } {
  let bytes = 0;
  let count = 0;
  for (const f of frames) {
    if (f.length < 14 || f.length > E1000_MAX_FRAME)
      throw new Error(`e1000: a frame of ${f.length} bytes (want 14..${E1000_MAX_FRAME})`);
    if (bytes + 4 + pad4(f.length) > E1000_IO_BYTES) break;
    bytes += 4 + pad4(f.length);
    count++;
  }
  const payload = new Uint8Array(bytes);
  const dv = new DataView(payload.buffer);
  let at = 0;
  for (let i = 0; i < count; i++) {
    dv.setUint32(at, frames[i].length, true);
    payload.set(frames[i], at + 4);
    at += 4 + pad4(frames[i].length);
  }
  return { payload, count };
}

export function decodeFrames(resp: Uint8Array): Uint8Array[] {
  if (resp.length < 4) throw new Error(`e1000: a receive response of ${resp.length} bytes`);
  const dv = new DataView(resp.buffer, resp.byteOffset, resp.byteLength);
  const n = dv.getUint32(0, true);
  const out: Uint8Array[] = [];
  let at = 4;
  for (let i = 0; i < n; i++) {
    const len = dv.getUint32(at, true);
    if (at + 4 + len > resp.length) throw new Error(`e1000: frame ${i} of ${n} runs past the response`);
    out.push(resp.slice(at + 4, at + 4 + len));
    at += 4 + pad4(len);
  }
  return out;
}

export class E1000Client {
  constructor(readonly driver: Driver) {}

  /** Send frames, as many requests as needed; returns how many the TX ring took (the rest did not fit). */
  async send(frames: Uint8Array[]): Promise<number> {
    let sent = 0;
    while (sent < frames.length) {
      const { payload, count } = encodeFrames(frames.slice(sent));
      const resp = await this.driver.request(E1000_OP.send, payload);
      const took = new DataView(resp.buffer, resp.byteOffset, 4).getUint32(0, true);
      sent += took;
      if (took < count) break; // the ring is full
    }
    return sent;
  }

  /** Receive up to `max` frames, waiting up to `timeoutUs` for the first. */
  async recv(max = 64, timeoutUs = 0): Promise<Uint8Array[]> {
    const args = new Uint8Array(8);
    new DataView(args.buffer).setUint32(0, max, true);
    new DataView(args.buffer).setUint32(4, timeoutUs, true);
    return decodeFrames(await this.driver.request(E1000_OP.recv, args));
  }

  /**
   * Reflect every received frame back out for `ms` milliseconds, at most `batch` per turn, inside the
   * driver (one request for the whole run; npm run bench uses it). The driver caps `ms` at 2000 (inside
   * its manifest's 3000 ms deadline). Returns the frames forwarded.
   */
  async forward(batch: number, ms: number): Promise<number> {
    const args = new Uint8Array(8);
    new DataView(args.buffer).setUint32(0, batch, true);
    new DataView(args.buffer).setUint32(4, ms, true);
    const r = await this.driver.request(E1000_OP.forward, args);
    return Number(new DataView(r.buffer, r.byteOffset, 8).getBigUint64(0, true));
  }

  async mac(): Promise<{ mac: string; source: 'ral' | 'eeprom' }> {
    const r = await this.driver.request(E1000_OP.mac);
    const bytes = [...r.subarray(0, 6)];
    return { mac: bytes.map((b) => b.toString(16).padStart(2, '0')).join(':'), source: r[8] === 0 ? 'ral' : 'eeprom' };
  }

  async link(): Promise<E1000Link> {
    const r = await this.driver.request(E1000_OP.link);
    const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
    return { up: dv.getUint32(0, true) === 1, speedMbps: dv.getUint32(4, true), changes: dv.getUint32(8, true) };
  }

  async stats(): Promise<E1000Stats> {
    const r = await this.driver.request(E1000_OP.stats);
    const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
    const k = [
      'gprc',
      'gptc',
      'gorc',
      'gotc',
      'tpr',
      'tpt',
      'rxFrames',
      'txFrames',
      'interrupts',
      'txRingFull',
      'mpc',
      'rnbc',
      'rxBad',
    ] as const;
    const out = {} as E1000Stats;
    // An older driver answers the first ten only: the rest read as 0.
    k.forEach((name, i) => (out[name] = (i + 1) * 8 <= r.byteLength ? dv.getBigUint64(i * 8, true) : 0n));
    return out;
  }
}
