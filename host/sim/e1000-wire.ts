// The far end of the simulated e1000's wire (sim/e1000.ts), for tests and the bridge's tests: frames
// in, frames out, the cable, and the model's DMA oracle counters.

import { loadNative } from '../native.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { SIM_IRQ_BYTES } from './irq.ts';
import {
  WIRE_BYTES,
  W,
  WORDS,
  CTRL_AT,
  IN_AT,
  OUT_AT,
  STATE_BYTES,
  ringPut,
  ringGet,
  ringLen,
  ringSkip,
} from './e1000-defs.ts';

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
