// The fuzzer's coverage: what every execution so far reached (AFL's virgin map of hit-count buckets),
// fed from the probe module's map of one execution (host/fuzz/instrument.ts); and the comparison log.

import { CMP_ENTRY } from './probe.ts';

// AFL's hit-count buckets: a count maps to one bit, so that 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+
// hits of an edge are different coverage.
const BUCKET = new Uint8Array(256);
for (let c = 1; c < 256; c++)
  BUCKET[c] = c === 1 ? 1 : c === 2 ? 2 : c === 3 ? 4 : c < 8 ? 8 : c < 16 ? 16 : c < 32 ? 32 : c < 128 ? 64 : 128;

export class Coverage {
  /** Buckets seen so far, per map entry. */
  readonly virgin: Uint8Array;
  /** Map entries seen so far. */
  covered = 0;
  /** What the last accounted execution added to `virgin` (undone when a quick run is run again). */
  private readonly added: number[] = [];

  constructor(mapSize: number) {
    this.virgin = new Uint8Array(mapSize);
  }

  /**
   * Take in one execution: the first `n` entries of `touched` name the map entries it hit; they are
   * read and cleared. Returns how many entries (edge × bucket) were new.
   */
  account(map: Uint8Array, touched: Uint32Array, n: number): number {
    const virgin = this.virgin;
    this.added.length = 0;
    let fresh = 0;
    for (let j = 0; j < n; j++) {
      const i = touched[j];
      const bit = BUCKET[map[i]];
      map[i] = 0;
      if ((virgin[i] & bit) === 0) {
        if (virgin[i] === 0) this.covered++;
        this.added.push(i, virgin[i]);
        virgin[i] |= bit;
        fresh++;
      }
    }
    return fresh;
  }

  /** Forget what the last execution added (its result is replaced by a run with more fuel). */
  rollback(): void {
    const a = this.added;
    for (let j = a.length - 2; j >= 0; j -= 2) {
      if (a[j + 1] === 0) this.covered--;
      this.virgin[a[j]] = a[j + 1];
    }
    a.length = 0;
  }
}

/** Comparison operands the execution `epoch` logged (both sides of each comparison site it ran). */
export function readComparisons(v: DataView, cmpSites: number, epoch: number): (number | bigint)[] {
  const out: (number | bigint)[] = [];
  for (let s = 0; s < cmpSites; s++) {
    const at = s * CMP_ENTRY;
    if (v.getInt32(at + 16, true) !== epoch) continue;
    const kind = v.getInt32(at + 20, true);
    const a = v.getBigUint64(at, true),
      b = v.getBigUint64(at + 8, true);
    if (kind === 1) continue; // br_table: its cases are in the dictionary
    if (a === b) continue;
    for (const x of [a, b]) out.push(x <= 0xffffffffn ? Number(x) : x);
  }
  return out;
}
