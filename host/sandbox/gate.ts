// The register gate: a small trusted Wasm module the host generates for each driver instance. The
// driver's reg_read*/reg_write* imports are the gate's exports, so a checked register access is a
// Wasm-to-Wasm call (~5 ns) instead of a call into JavaScript (~13 ns on top of the checks).
//
// The gate's memory holds, all mapped MAP_SHARED|MAP_FIXED (the same pages other mappings see):
//
//   0                 the driver's shared area (control, statistics, flight recorder: shared.ts), so
//                     every access the gate lets through is counted and recorded where the main thread
//                     reads it, even after the worker is killed
//   regionBase[r]     memory-backed region r (a UIO map, a PCI resource, a memfd), page aligned
//
// For each region whose grant has no per-register policy the gate itself checks the region index,
// bounds (granted size) and natural alignment, does one access of the access's width (an atomic load,
// so it is never merged, split or elided), counts and records it. Everything else (a failing check,
// a simulated register file, a region with a write policy or DMA-address registers) goes to the
// JavaScript implementation in registers.ts, which checks again and raises the typed fault. So the gate
// is only ever a faster route to the same answer, never a second policy. Its functions, their order
// and their Wasm types are host/abi.ts's register rows that declare an `access` (GATE_ROWS below).
//
// The module is encoded here by hand (a few hundred bytes) with the host's Wasm writer (wasm/write.ts):
// no compiler in the loop, no dependency.

import { IMPORTS, type FuncSig, type RegisterAccess } from '../abi.ts';
import { lastOffset } from './registers.ts';
import { STATS_OFFSET, RING_OFFSET, ENTRY_BYTES, STAT, OP } from './shared.ts';
import { encodeSection as section, name as str, sleb, uleb, vec, WASM_HEADER } from '../wasm/write.ts';

export interface GateRegion {
  /** Region index in the driver's view. */
  index: number;
  /** Bytes the driver may touch from offset 0. */
  size: number;
  /** Byte address of the region's first byte in the gate's memory. */
  base: number;
  read: boolean;
  write: boolean;
}

export interface GateLayout {
  regions: GateRegion[];
  /** Recorder entries (a power of two). */
  ringEntries: number;
  /**
   * Count and record reads the gate serves (default true). Any store in the gate costs ~4 ns on our
   * machines (docs/benchmarks.md); a driver of a RAM-backed register file may turn this off.
   */
  recordReads?: boolean;
}

/**
 * How a driver's register imports are served: 'record-all' (the gate; every access counted and
 * recorded: the default), 'record-writes' (the gate; reads it serves are neither counted nor
 * recorded, ~4 ns cheaper), 'off' (every access calls the JavaScript implementation).
 */
export type GateMode = 'record-all' | 'record-writes' | 'off';
export const GATE_MODES: readonly GateMode[] = ['record-all', 'record-writes', 'off'];

type Registers = (typeof IMPORTS)['registers'];
/** The register rows the gate serves: those with an `access` in host/abi.ts's table. */
export type GateFunc = {
  [N in keyof Registers]: Registers[N] extends { access: RegisterAccess } ? N : never;
}[keyof Registers];
export interface GateRow extends RegisterAccess, FuncSig {
  name: GateFunc;
}
/** The gate's functions, in the table's order, each with its row (names, Wasm types, kind and width). */
export const GATE_ROWS: readonly GateRow[] = Object.entries(IMPORTS.registers).flatMap(([name, row]) =>
  'access' in row ? [{ name: name as GateFunc, ...row.access, params: row.params, results: row.results }] : [],
);
export const GATE_FUNCS: readonly GateFunc[] = GATE_ROWS.map((r) => r.name);

// --- encoding helpers --------------------------------------------------------------------------------

const I32 = 0x7f;
const I64 = 0x7e;
const op = {
  block: 0x02,
  if: 0x04,
  end: 0x0b,
  brIf: 0x0d,
  ret: 0x0f,
  call: 0x10,
  get: 0x20,
  set: 0x21,
  f64Load: 0x2b,
  i32Store: 0x36,
  i64Store: 0x37,
  f64Store: 0x39,
  i32Store8: 0x3a,
  i32Store16: 0x3b,
  i32Const: 0x41,
  f64Const: 0x44,
  i32Eq: 0x46,
  i32GtU: 0x4b,
  i32Mul: 0x6c,
  i32And: 0x71,
  i64ShrU: 0x88,
  f64Add: 0xa0,
  i32WrapI64: 0xa7,
} as const;
const VOID = 0x40;
const i32c = (n: number) => [op.i32Const, ...sleb(n)];
const i64c32 = [0x42, 32]; // i64.const 32
const f64one = [op.f64Const, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f];
const memarg = (alignLog2: number, offset: number) => [...uleb(alignLog2), ...uleb(offset)];
const i64TruncSatF64U = [0xfc, 0x07];
const LOG2 = { 1: 0, 2: 1, 4: 2, 8: 3 } as const;

type Width = 1 | 2 | 4 | 8;

/** stats[i] += 1 (an f64 in the shared area). */
function bumpStat(i: number): number[] {
  const at = STATS_OFFSET + i * 8;
  return [...i32c(0), ...i32c(0), op.f64Load, ...memarg(3, at), ...f64one, op.f64Add, op.f64Store, ...memarg(3, at)];
}

/**
 * Append a recorder entry {op, region, offset, width, lo, hi} exactly as DriverShared.record does:
 * at (total & mask), then total += 1. `lo`/`hi` are code pushing one i32 each. Uses local `e`.
 */
function record(ringEntries: number, kind: number, width: Width, e: number, lo: number[], hi: number[]): number[] {
  const total = STATS_OFFSET + STAT.recorderTotal * 8;
  const field = (k: number, value: number[]) => [op.get, e, ...value, op.i32Store, ...memarg(2, RING_OFFSET + k * 4)];
  return [
    ...i32c(0),
    op.f64Load,
    ...memarg(3, total),
    ...i64TruncSatF64U,
    op.i32WrapI64,
    ...i32c(ringEntries - 1),
    op.i32And,
    ...i32c(ENTRY_BYTES),
    op.i32Mul,
    op.set,
    e,
    ...field(0, i32c(kind)),
    ...field(1, [op.get, 0]),
    ...field(2, [op.get, 1]),
    ...field(3, i32c(width)),
    ...field(4, lo),
    ...field(5, hi),
    ...bumpStat(STAT.recorderTotal),
  ];
}

/** THE access rule (registers.ts `accessFits`): `if (off > lastOffset(size, width) || off & (width - 1)) br $slow` for a region, inside the region's `if`. */
function boundsAndAlignment(size: number, width: Width, depth: number): number[] {
  return [
    op.get,
    1,
    ...i32c(lastOffset(size, width)),
    op.i32GtU,
    op.brIf,
    depth,
    op.get,
    1,
    ...i32c(width - 1),
    op.i32And,
    op.brIf,
    depth,
  ];
}

function readBody(layout: GateLayout, width: Width, slowIndex: number): number[] {
  const wide = width === 8;
  // locals: 0 region, 1 offset (params); 2 value (i32 or i64); 3 entry address (i32)
  const locals = wide
    ? [
        [1, I64],
        [1, I32],
      ]
    : [[2, I32]];
  const v = 2,
    e = 3;
  const load = width === 8 ? [0xfe, 0x11] : width === 4 ? [0xfe, 0x10] : width === 2 ? [0xfe, 0x13] : [0xfe, 0x12];
  const code: number[] = [op.block, VOID];
  for (const r of layout.regions) {
    if (!r.read || r.size < width) continue;
    const lo = wide ? [op.get, v, op.i32WrapI64] : [op.get, v];
    const hi = wide ? [op.get, v, ...i64c32, op.i64ShrU, op.i32WrapI64] : i32c(0);
    code.push(
      op.get,
      0,
      ...i32c(r.index),
      op.i32Eq,
      op.if,
      VOID,
      ...boundsAndAlignment(r.size, width, 1),
      op.get,
      1,
      ...load,
      ...memarg(LOG2[width], r.base),
      ...(layout.recordReads === false
        ? []
        : [op.set, v, ...bumpStat(STAT.regReads), ...record(layout.ringEntries, OP.read, width, e, lo, hi), op.get, v]),
      op.ret,
      op.end,
    );
  }
  code.push(op.end, op.get, 0, op.get, 1, op.call, ...uleb(slowIndex), op.end);
  return [...vec(locals.map(([n, t]) => [...uleb(n), t])), ...code];
}

function writeBody(layout: GateLayout, width: Width, slowIndex: number): number[] {
  const wide = width === 8;
  // locals: 0 region, 1 offset, 2 value (params); 3 entry address
  const e = 3;
  const store = width === 8 ? op.i64Store : width === 4 ? op.i32Store : width === 2 ? op.i32Store16 : op.i32Store8;
  const code: number[] = [];
  // Narrow writes record the value as stored: value & 0xff / 0xffff, like the JS path.
  if (width < 4) code.push(op.get, 2, ...i32c(width === 2 ? 0xffff : 0xff), op.i32And, op.set, 2);
  code.push(op.block, VOID);
  for (const r of layout.regions) {
    if (!r.write || r.size < width) continue;
    const lo = wide ? [op.get, 2, op.i32WrapI64] : [op.get, 2];
    const hi = wide ? [op.get, 2, ...i64c32, op.i64ShrU, op.i32WrapI64] : i32c(0);
    code.push(
      op.get,
      0,
      ...i32c(r.index),
      op.i32Eq,
      op.if,
      VOID,
      ...boundsAndAlignment(r.size, width, 1),
      // Recorded before the store, as in the JS path: a write that hangs the bus is still on record.
      ...record(layout.ringEntries, OP.write, width, e, lo, hi),
      ...bumpStat(STAT.regWrites),
      op.get,
      1,
      op.get,
      2,
      store,
      ...memarg(LOG2[width], r.base),
      op.ret,
      op.end,
    );
  }
  code.push(op.end, op.get, 0, op.get, 1, op.get, 2, op.call, ...uleb(slowIndex), op.end);
  return [...vec([[1, I32]]), ...code];
}

/**
 * Encode the gate for `layout`. Imports: `slow.<name>` for each of GATE_FUNCS (the JavaScript
 * implementation) and `gate.memory`; exports GATE_FUNCS.
 */
export function encodeGate(layout: GateLayout, memoryPages: number): Uint8Array<ArrayBuffer> {
  if (layout.ringEntries & (layout.ringEntries - 1)) throw new Error('gate: recorder size must be a power of two');
  // One Wasm function type per distinct row signature, in order of first use; typeOf[i] is GATE_ROWS[i]'s.
  const valType = { i32: I32, i64: I64 } as const;
  const typeKeys: string[] = [];
  const types: number[][] = [];
  const typeOf = GATE_ROWS.map(({ params, results }) => {
    const key = `${params}->${results}`;
    if (!typeKeys.includes(key)) {
      typeKeys.push(key);
      types.push([0x60, ...vec(params.map((t) => [valType[t]])), ...vec(results.map((t) => [valType[t]]))]);
    }
    return typeKeys.indexOf(key);
  });
  const imports = [
    ...GATE_FUNCS.map((name, i) => [...str('slow'), ...str(name), 0x00, typeOf[i]]),
    [...str('gate'), ...str('memory'), 0x02, 0x01, ...uleb(memoryPages), ...uleb(memoryPages)],
  ];
  const n = GATE_FUNCS.length;
  const bodies = GATE_ROWS.map(({ kind, width }, i) => {
    const body = kind === 'read' ? readBody(layout, width, i) : writeBody(layout, width, i);
    return [...uleb(body.length), ...body];
  });
  const names = [
    ...section(0, str('wasmdrv-gate')),
    ...section(
      1,
      vec([
        ...GATE_FUNCS.map((name, i) => [...uleb(i), ...str(`slow.${name}`)]),
        ...GATE_FUNCS.map((name, i) => [...uleb(n + i), ...str(`gate.${name}`)]),
      ]),
    ),
  ];
  return Uint8Array.from([
    ...WASM_HEADER,
    ...section(1, vec(types)),
    ...section(2, vec(imports)),
    ...section(3, vec(typeOf.map((t) => [t]))),
    ...section(7, vec(GATE_FUNCS.map((name, i) => [...str(name), 0x00, ...uleb(n + i)]))),
    ...section(10, vec(bodies)),
    ...section(0, [...str('name'), ...names]),
  ]);
}
