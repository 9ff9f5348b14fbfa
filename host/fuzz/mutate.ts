// The mutator: AFL-style havoc plus two comparison-guided steps (cmplog): put a comparison operand
// the parent's run logged, or a dictionary value (the device model's and the driver's comparison
// constants), exactly where one of the parent's register reads takes its value from.

/** xorshift32 */
export class Rng {
  private x: number;
  constructor(seed: number) {
    this.x = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.x = x >>> 0);
  }
  below(n: number): number {
    return this.next() % n;
  }
}

const INTERESTING = [
  0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
];
const MAX_INPUT = 4096;

export interface Entry {
  input: Uint8Array;
  /** [ctrl offset, value offset] per register read of its run. */
  reads: Int32Array;
  /** Comparison operands its run logged (u32 values). */
  cmps: number[];
}

/**
 * Put value `v` (4 bytes, little-endian) where read `k` of the parent's run takes its value: over
 * the value bytes when the read came from the input; else turn the read's control byte into
 * "from the input" and insert the value; a read past the end of the input appends filler control
 * bytes (0x01: the model answers) up to it.
 */
function putAtRead(b: number[], reads: Int32Array, k: number, v: number): void {
  const ctrlAt = reads[2 * k],
    valAt = reads[2 * k + 1];
  const bytes = [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  if (valAt >= 0) {
    while (b.length < valAt + 4) b.push(0);
    for (let i = 0; i < 4; i++) b[valAt + i] = bytes[i];
  } else if (ctrlAt >= 0) {
    b[ctrlAt] &= 0x1c;
    if ((b[ctrlAt] & 0x1c) === 0x1c) b[ctrlAt] = 0;
    b.splice(ctrlAt + 1, 0, ...bytes);
  } else {
    // Reads past the end: how many of the parent's reads came after the input ran out, before k.
    let missing = 0;
    for (let j = 0; j < k; j++) if (reads[2 * j] < 0) missing++;
    for (let j = 0; j < missing; j++) b.push(0x01);
    b.push(0, ...bytes);
  }
}

/** Havoc: a stack of byte-level mutations, sometimes a splice, sometimes a cmplog/dictionary step. */
export function mutate(parent: Entry, r: Rng, corpus: Entry[], dictionary: number[]): Uint8Array {
  let b = Array.from(parent.input);
  const reads = parent.reads;
  const nReads = reads.length >> 1;
  if (nReads && r.below(3) === 0) {
    // cmplog: one register read of the parent gets one of its comparison operands (or a dictionary value).
    const k = r.below(nReads);
    const pool = parent.cmps.length && r.below(4) !== 0 ? parent.cmps : dictionary;
    if (pool.length) {
      let v = pool[r.below(pool.length)];
      if (r.below(8) === 0) v = (v + (r.below(2) ? 1 : -1)) >>> 0;
      putAtRead(b, reads, k, v);
      return Uint8Array.from(b.slice(0, MAX_INPUT));
    }
  }
  if (corpus.length > 1 && r.below(10) === 0) {
    const other = corpus[r.below(corpus.length)].input;
    const cut = r.below(Math.max(1, Math.min(b.length, other.length)));
    b = [...b.slice(0, cut), ...other.slice(cut)];
  }
  const put32 = (at: number, v: number) => {
    while (b.length < at + 4) b.push(0);
    for (let i = 0; i < 4; i++) b[at + i] = (v >>> (8 * i)) & 0xff;
  };
  for (let n = 1 << r.below(4); n > 0; n--) {
    // Positions include the end of the input, so that bytes can be written and inserted there.
    const at = r.below(b.length + 1);
    switch (r.below(10)) {
      case 0:
        if (at < b.length) b[at] ^= 1 << r.below(8);
        break;
      case 1:
        b[at] = r.below(256);
        break;
      case 2:
        b.splice(at, 0, ...Array.from({ length: 1 + r.below(8) }, () => r.below(256)));
        break;
      case 3:
        if (b.length > 1 && at < b.length) b.splice(at, 1 + r.below(Math.min(8, b.length - at)));
        break;
      case 4:
        put32(at, INTERESTING[r.below(INTERESTING.length)]);
        break;
      case 5:
        if (dictionary.length) put32(at, dictionary[r.below(dictionary.length)]);
        break;
      case 6: {
        // a "return this value" control byte (ctrl & 3 == 0) followed by a value
        const pool = r.below(2) && dictionary.length ? dictionary : INTERESTING;
        const v = r.below(3) ? pool[r.below(pool.length)] : r.next();
        b.splice(at, 0, r.below(7) << 2, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
        break;
      }
      case 7:
        if (nReads) {
          const v =
            r.below(2) && dictionary.length
              ? dictionary[r.below(dictionary.length)]
              : INTERESTING[r.below(INTERESTING.length)];
          putAtRead(b, reads, r.below(nReads), v);
        }
        break;
      case 8:
        // the header: mode and event count
        if (b.length === 0) b.push(0);
        b[0] = r.below(256);
        break;
      default:
        if (at < b.length) b[at] = (b[at] + 1 + r.below(16)) & 0xff;
    }
  }
  return Uint8Array.from(b.slice(0, MAX_INPUT));
}

/** An Ethernet header (broadcast, from a local address, IPv4): the contents of a seed's received frame. */
const FRAME = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];

/**
 * Default seeds: each start mode, one request of each op with a small argument, an interrupt; with a
 * model that receives frames, also a received frame (the device's own write-back) before each op.
 */
export function defaultSeeds(frames = false): Uint8Array[] {
  const ops = (pre: number[]) =>
    Array.from({ length: 8 }, (_, op) =>
      Uint8Array.of(...pre, op, ...(pre.length ? [8, 0, 0, 0, 0] : [4]), 5, 0, 0, 0),
    );
  return [
    new Uint8Array(),
    Uint8Array.of(2),
    Uint8Array.of(3),
    Uint8Array.of(0, 0x80),
    ...ops([]).map((s) => Uint8Array.of(0, ...s)),
    ...(frames ? ops([0x40, FRAME.length, ...FRAME]).map((s) => Uint8Array.of(0x04, ...s)) : []),
  ];
}
