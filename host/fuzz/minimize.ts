// `wasmdrv fuzz --minimize`: shrink a crashing input while it crashes the same way.

import { crashKey, type Executor } from './engine.ts';

/** Shrink an input while it still crashes the same way (same kind and location). */
export function minimize(ex: Executor, input: Uint8Array): Uint8Array {
  const first = ex.run(input).crash;
  if (!first) throw new Error('minimize: the input does not crash');
  const key = crashKey(first);
  let best = input;
  for (let chunk = best.length >> 1; chunk >= 1; chunk >>= 1) {
    for (let at = 0; at < best.length; ) {
      const cand = Uint8Array.from([...best.subarray(0, at), ...best.subarray(at + chunk)]);
      const c = ex.run(cand).crash;
      if (c && crashKey(c) === key) best = cand;
      else at += chunk;
    }
  }
  for (let at = 0; at < best.length; at++) {
    if (best[at] === 0) continue;
    const cand = best.slice();
    cand[at] = 0;
    const c = ex.run(cand).crash;
    if (c && crashKey(c) === key) best = cand;
  }
  return best;
}
