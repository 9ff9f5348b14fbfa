// The driver ABI v1 as data: core import and export names with their signatures.
// wit/wasmdrv-driver.wit is the specification; test/abi.test.ts checks this table against it.

export const ABI_VERSION = 1;
export const IMPORT_MODULE = 'wasmdrv';

export type ValType = 'i32' | 'i64';
export interface FuncSig {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

/** What a register row does, for the register gate (gate.ts, inline-rewrite.ts), which serves these rows in Wasm. */
export interface RegisterAccess {
  readonly kind: 'read' | 'write';
  readonly width: 1 | 2 | 4 | 8;
}

// `const` type parameters keep each row's types as literal tuples, for the mapped types below.
function sig<const P extends readonly ValType[], const R extends readonly ValType[] = []>(
  params: P,
  results?: R,
): { params: P; results: R };
function sig<const P extends readonly ValType[], const R extends readonly ValType[], const A extends RegisterAccess>(
  params: P,
  results: R,
  access: A,
): { params: P; results: R; access: A };
function sig(params: readonly ValType[], results: readonly ValType[] = [], access?: RegisterAccess) {
  return access ? { params, results, access } : { params, results };
}

/** Every function a driver may import from "wasmdrv", grouped by the grant that links it. */
export const IMPORTS = {
  registers: {
    region_count: sig([], ['i32']),
    region_size: sig(['i32'], ['i32']),
    reg_read8: sig(['i32', 'i32'], ['i32'], { kind: 'read', width: 1 }),
    reg_read16: sig(['i32', 'i32'], ['i32'], { kind: 'read', width: 2 }),
    reg_read32: sig(['i32', 'i32'], ['i32'], { kind: 'read', width: 4 }),
    reg_read64: sig(['i32', 'i32'], ['i64'], { kind: 'read', width: 8 }),
    reg_write8: sig(['i32', 'i32', 'i32'], [], { kind: 'write', width: 1 }),
    reg_write16: sig(['i32', 'i32', 'i32'], [], { kind: 'write', width: 2 }),
    reg_write32: sig(['i32', 'i32', 'i32'], [], { kind: 'write', width: 4 }),
    reg_write64: sig(['i32', 'i32', 'i64'], [], { kind: 'write', width: 8 }),
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

// --- the table as types: each host implementation's signature is its row's -----------------------------

/** A core value as the JS API passes it: an i64 is a BigInt, every other number type a number. */
export type JsValue<T extends ValType | 'f32' | 'f64'> = T extends 'i64' ? bigint : number;
type JsParams<P extends readonly ValType[]> = { -readonly [K in keyof P]: JsValue<P[K]> };
type JsResult<R extends readonly ValType[]> = R extends readonly []
  ? void
  : R extends readonly [infer V extends ValType]
    ? JsValue<V>
    : never;
/** The JavaScript function a row is implemented by: (i32, i32) -> i64 is (a: number, b: number) => bigint. */
export type HostFunc<S> = S extends FuncSig ? (...args: JsParams<S['params']>) => JsResult<S['results']> : never;
type Rows<G extends ImportGroup> = (typeof IMPORTS)[G];
/** A group's import object: exactly the group's rows, each implemented with its row's types. */
export type HostImports<G extends ImportGroup> = { [N in keyof Rows<G>]: HostFunc<Rows<G>[N]> };

type Arity<F> = F extends (...args: infer A) => unknown ? A['length'] : never;
type RowArity<S> = S extends FuncSig ? S['params']['length'] : never;
/**
 * `T` with each function whose parameter count is not its row's replaced by one a caller cannot
 * supply: TypeScript lets a function that takes fewer parameters stand for one that takes more, and a
 * host function that ignored the driver's value argument would be a silent ABI break.
 */
type ExactArity<G extends ImportGroup, T> = {
  [N in keyof T]: N extends keyof Rows<G>
    ? [Arity<T[N]>] extends [RowArity<Rows<G>[N]>]
      ? T[N]
      : { 'takes a different number of parameters than its ABI row': RowArity<Rows<G>[N]> }
    : never;
};

/**
 * Declare group `group`'s host implementation: a compile-time error unless `impl` has exactly the
 * group's functions, each with its row's parameter count and types and result type. At run time it
 * checks the same names and parameter counts (a host bug, thrown as a plain Error) and returns `impl`.
 */
export function hostImports<G extends ImportGroup, T extends HostImports<G>>(
  group: G,
  impl: T & ExactArity<G, T>,
): HostImports<G> {
  const rows = IMPORTS[group] as Record<string, FuncSig>;
  const have = Object.keys(impl);
  for (const name of new Set([...have, ...Object.keys(rows)])) {
    const fn = (impl as Record<string, unknown>)[name];
    const row = Object.hasOwn(rows, name) ? rows[name] : undefined;
    if (!row || typeof fn !== 'function' || fn.length !== row.params.length)
      throw new Error(
        `host imports ${group}.${name}: ${row ? `must be a function of ${row.params.length} parameters` : 'is not in the ABI'}`,
      );
  }
  return impl;
}

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
