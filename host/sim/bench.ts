// The benchmark device: a 4 KiB register file and 1 MiB of DMA memory that are plain memfds (so a C
// program maps the very same memory), and an interrupt that is a bare eventfd another process writes.
// Nothing here runs on a register access: the device side of the ring benchmark is bench/native.c.
import type { SimModelClass } from './model.ts';

export const bench: SimModelClass = {
  name: 'bench',
  summary: 'benchmark device: memfd register file and DMA memory, eventfd interrupt (npm run bench)',
  // Option dmaBytes (default 1 MiB): tests load drivers whose DMA area is the SDK's 64 KiB.
  describe(options: Record<string, unknown> = {}) {
    return {
      model: 'bench',
      // Plain memory the sandbox maps (any width, aligned); no access reaches the model.
      regions: [{ name: 'regs', size: 4096, memory: true, valid: [{ min: 1, max: 8 }] }],
      ports: [],
      dma: [{ name: 'dma', size: Number(options.dmaBytes ?? 1 << 20), bus: 0x1000_0000n }],
      irq: { mode: 'eventfd' },
      stateBytes: 0,
    };
  },
  create() {
    return {
      read: () => 0xffffffff,
      write: () => {},
      tick: () => {},
      nextEvent: () => Infinity,
      reset: () => {},
      passive: true,
    };
  },
};
