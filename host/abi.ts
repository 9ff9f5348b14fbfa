// The driver ABI v1 as data: core import and export names with their signatures.
// wit/wasmdrv-driver.wit is the specification; test/abi.test.ts checks this table against it.

export const ABI_VERSION = 1;
export const IMPORT_MODULE = 'wasmdrv';

type ValType = 'i32' | 'i64';
export interface FuncSig {
  params: ValType[];
  results: ValType[];
}

const sig = (params: ValType[], results: ValType[] = []): FuncSig => ({ params, results });

/** Every function a driver may import from "wasmdrv", grouped by the grant that links it. */
export const IMPORTS = {
  registers: {
    region_count: sig([], ['i32']),
    region_size: sig(['i32'], ['i32']),
    reg_read8: sig(['i32', 'i32'], ['i32']),
    reg_read16: sig(['i32', 'i32'], ['i32']),
    reg_read32: sig(['i32', 'i32'], ['i32']),
    reg_read64: sig(['i32', 'i32'], ['i64']),
    reg_write8: sig(['i32', 'i32', 'i32']),
    reg_write16: sig(['i32', 'i32', 'i32']),
    reg_write32: sig(['i32', 'i32', 'i32']),
    reg_write64: sig(['i32', 'i32', 'i64']),
  },
  ports: {
    port_count: sig([], ['i32']),
    port_size: sig(['i32'], ['i32']),
    io_in8: sig(['i32', 'i32'], ['i32']),
    io_in16: sig(['i32', 'i32'], ['i32']),
    io_in32: sig(['i32', 'i32'], ['i32']),
    io_out8: sig(['i32', 'i32', 'i32']),
    io_out16: sig(['i32', 'i32', 'i32']),
    io_out32: sig(['i32', 'i32', 'i32']),
  },
  irq: {
    irq_wait: sig(['i32'], ['i32']),
    irq_count: sig([], ['i32']),
    irq_enable: sig([]),
    irq_disable: sig([]),
  },
  dma: {
    dma_window_count: sig([], ['i32']),
    dma_window_addr: sig(['i32'], ['i32']),
    dma_window_size: sig(['i32'], ['i32']),
    dma_window_bus: sig(['i32'], ['i64']),
  },
  services: {
    log: sig(['i32', 'i32', 'i32']),
    clock_ns: sig([], ['i64']),
    sleep_us: sig(['i32'], ['i32']),
    panic: sig(['i32', 'i32']),
  },
} as const;

export type ImportGroup = keyof typeof IMPORTS;

/** The memory a driver must import (the host creates it and sets its maximum). */
export const MEMORY_IMPORT = { module: 'env', name: 'memory' } as const;

export const REQUIRED_EXPORTS = {
  probe: sig([], ['i32']),
  remove: sig([]),
  interrupt: sig(['i32']),
  request: sig(['i32', 'i32'], ['i32']),
  io_buffer: sig([], ['i32']),
  io_buffer_size: sig([], ['i32']),
} as const;

export const OPTIONAL_EXPORTS = {
  dma_area: sig([], ['i32']),
  dma_area_size: sig([], ['i32']),
  reset: sig([]),
  state_save: sig([], ['i32']),
  state_restore: sig(['i32'], ['i32']),
} as const;

/** Exported immutable i32 global holding the ABI version the driver was built for. */
export const ABI_VERSION_GLOBAL = 'wasmdrv_abi_version';

/** irq_wait / sleep_us results. */
export const WAIT_INTERRUPT = 1;
export const WAIT_TIMEOUT = 0;
export const WAIT_CANCELLED = -1;

/** Log levels. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Find which group an import name belongs to, or undefined if the ABI has no such import. */
export function importGroup(name: string): ImportGroup | undefined {
  for (const group of Object.keys(IMPORTS) as ImportGroup[]) {
    // Own properties only: an import called toString, constructor or __proto__ is not in the ABI.
    if (Object.hasOwn(IMPORTS[group], name)) return group;
  }
  return undefined;
}
