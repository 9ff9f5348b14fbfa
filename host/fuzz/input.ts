// What a fuzz input means: its layout, parsed without copying (missing bytes read as 0).
//
//   byte 0       mode = b & 3: 0, 1 start after the clean probe; 2 run probe against the fuzzed
//                device; 3 a reload: state_restore(bytes) instead of probe (probe when the driver has
//                no state_restore). Then 1 + ((b >> 2) & 7) events.
//   mode 3       one length byte L, then L bytes of saved state.
//   per event    e < 0x80: request op (e & 0x0f) with (next & 0x1f) payload bytes that follow;
//                0x40-0x7f, when the model receives frames (the e1000): a received frame instead
//                (below); 0x80-0xbf: an interrupt: the device's count advances by 1 + (e & 3) and
//                the driver's `interrupt` export is called with it (as the host's loop would, when
//                the driver has interrupts enabled); 0xc0-0xff: even: reset(), odd: remove() (ends
//                the run).
//   frame        e & 1: the descriptor write-back comes from the input: u16 length, status byte,
//                errors byte (any length, reserved status bits, DD clear...); else the device's
//                own (the contents' length, DD | EOP). e & 2: the device's head stays (the same
//                descriptor is written, and marked done, again). Then a length byte N and N bytes:
//                the frame's contents.
//   DMA          one length byte D, then (D & 0x3f) bytes: the DMA window's first bytes.
//   the rest     the register stream of the fuzzing device (host/sim/fuzz.ts).

export const MAX_EVENTS = 8;

/** Events at 0x40-0x7f are received frames (for a model that receives them). */
export const FRAME_EVENT = 0x40;

/** Where the parts of an input are. */
export interface Layout {
  /** 0, 1: after the clean probe; 2: a fuzzed probe; 3: a reload. */
  mode: number;
  events: number;
  /** Mode 3's saved state (a view into the input). */
  state?: Uint8Array;
  eventsAt: number;
  dmaAt: number;
  dmaLen: number;
  streamAt: number;
}

/** Is event byte `e` a received frame? */
export const isFrame = (e: number, frames: boolean): boolean => frames && e >= FRAME_EVENT && e < 0x80;

/** The offset after event `e`'s payload, which starts at `at`. */
export function skipEvent(input: Uint8Array, at: number, e: number, frames: boolean): number {
  const byte = (k: number) => (k < input.length ? input[k] : 0);
  if (isFrame(e, frames)) {
    if (e & 1) at += 4;
    return at + 1 + byte(at);
  }
  if (e < 0x80) return at + 1 + (byte(at) & 0x1f);
  return at;
}

/** Parse an input's layout. `probed`: a clean-probe snapshot exists (else modes 0 and 1 become 2). */
export function parseInput(input: Uint8Array, probed: boolean, frames: boolean): Layout {
  let at = 0;
  const next = () => (at < input.length ? input[at++] : 0);
  const head = next();
  let mode = head & 3;
  if (mode < 2 && !probed) mode = 2;
  const events = 1 + ((head >> 2) & (MAX_EVENTS - 1));
  let state: Uint8Array | undefined;
  if (mode === 3) {
    const n = next();
    state = input.subarray(at, Math.min(input.length, at + n));
    at += n;
  }
  const eventsAt = at;
  for (let k = 0; k < events; k++) {
    const e = next();
    at = skipEvent(input, at, e, frames);
  }
  const dmaLen = next() & 0x3f;
  const dmaAt = at;
  at += dmaLen;
  return { mode, events, state, eventsAt, dmaAt, dmaLen, streamAt: Math.min(at, input.length) };
}

/** The `len` bytes at `at` (zeros past the end of the input). */
export function slice(input: Uint8Array, at: number, len: number): Uint8Array {
  const b = input.subarray(Math.min(at, input.length), Math.min(input.length, at + len));
  if (b.length === len) return b;
  const out = new Uint8Array(len);
  out.set(b);
  return out;
}
