// Persistent mode's snapshots: what an execution starts from, and the dirty-chunk copy that puts
// linear memory back (the instrumented driver marks the chunks it stores to in its __dirty global,
// an i64 bitmask of 2^shift-byte chunks: host/fuzz/instrument.ts).

export interface Snapshot {
  memory: Uint8Array;
  globals: (number | bigint)[];
  /** The device model's shared state. */
  state: Uint8Array;
  /** Device time. */
  now: number;
  /** The instance's interrupt bookkeeping. */
  host: { count: number; irqEnabled: boolean };
}

/** The chunk bits of bytes at .. at + len - 1 (at least the chunk of `at`). */
export function chunkMask(at: number, len: number, shift: number): bigint {
  let m = 0n;
  for (let c = at >>> shift; c <= (at + Math.max(1, len) - 1) >>> shift; c++) m |= 1n << BigInt(c);
  return m;
}

/** Copy the chunks of `from` whose bits `dirty` has into `to`; returns the bytes copied. */
export function copyChunks(to: Uint8Array, from: Uint8Array, dirty: bigint, shift: number): number {
  const size = 1 << shift;
  let copied = 0;
  for (let c = 0; dirty !== 0n; c++, dirty >>= 1n) {
    if ((dirty & 1n) === 0n) continue;
    const at = c * size;
    if (at >= to.length) break;
    const end = Math.min(to.length, at + size);
    to.set(from.subarray(at, end), at);
    copied += end - at;
  }
  return copied;
}

/**
 * The chunks a restore always copies (`host`: those the host itself writes, the io buffer and the DMA
 * window's input bytes) and those of the whole DMA window (`dma`: copied when the device wrote by DMA).
 */
export function hostChunks(
  fx: Record<string, () => number>,
  dmaSize: number,
  shift: number,
): { host: bigint; dma: bigint } {
  let host = chunkMask(fx.io_buffer() >>> 0, fx.io_buffer_size() >>> 0, shift);
  let dma = 0n;
  if (dmaSize && typeof fx.dma_area === 'function') {
    const area = fx.dma_area() >>> 0;
    host |= chunkMask(area, 64, shift);
    dma = chunkMask(area, dmaSize, shift);
  }
  return { host, dma };
}
