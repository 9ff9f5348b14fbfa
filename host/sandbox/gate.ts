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
import { GSTATS_OFFSET, RING_OFFSET, ENTRY_BYTES, GSTAT, OP, entryMeta } from './shared.ts';
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
   * Record (and so count) reads the gate serves (default true). The recording is three i64 stores
   * per access (docs/benchmarks.md has what it costs); a driver of a RAM-backed register file may
   * turn this off.
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
  tee: 0x22,
  i32Load: 0x28,
  i64Load: 0x29,
  i32Store: 0x36,
  i64Store: 0x37,
  i32Store8: 0x3a,
  i32Store16: 0x3b,
  i32Const: 0x41,
  i32Eq: 0x46,
  i32GtU: 0x4b,
  i32Add: 0x6a,
  i32Shl: 0x74,
  i64Add: 0x7c,
  i64Or: 0x84,
  i32And: 0x71,
  i32WrapI64: 0xa7,
  i64ExtendI32U: 0xad,
} as const;
const VOID = 0x40;
const i32c = (n: number) => [op.i32Const, ...sleb(n)];
/** i64.const of a 64-bit pattern (signed LEB128 of its two's-complement value). */
function i64c(v: bigint): number[] {
  let n = BigInt.asIntN(64, v);
  const out: number[] = [0x42];
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && !(b & 0x40)) || (n === -1n && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}
const memarg = (alignLog2: number, offset: number) => [...uleb(alignLog2), ...uleb(offset)];
const LOG2 = { 1: 0, 2: 1, 4: 2, 8: 3 } as const;

type Width = 1 | 2 | 4 | 8;

/**
 * Append a recorder entry exactly as DriverShared.record does (format in shared.ts): word 0 the
 * zero-extended offset ORed with (op, width, region), word 1 the value (`value64` pushes one i64), at
 * slot (gateReads + gateWrites + jsEntries) & mask; the access bumps its own kind's counter. Uses
 * locals `e` (i32) and `t` (i64).
 */
function record(
  ringEntries: number,
  kind: number,
  width: Width,
  region: number,
  e: number,
  t: number,
  value64: number[],
): number[] {
  const at = (i: number) => GSTATS_OFFSET + i * 8;
  const own = at(kind === OP.read ? GSTAT.gateReads : GSTAT.gateWrites);
  const other = at(kind === OP.read ? GSTAT.gateWrites : GSTAT.gateReads);
  return [
    ...i32c(0),
    ...i32c(0),
    op.i64Load,
    ...memarg(3, own),
    op.tee,
    t,
    ...i64c(1n),
    op.i64Add,
    op.i64Store,
    ...memarg(3, own),
    op.get,
    t,
    op.i32WrapI64,
    // + the other two counters' low halves (little-endian): the total modulo 2^32, enough for the slot
    ...i32c(0),
    op.i32Load,
    ...memarg(2, other),
    op.i32Add,
    ...i32c(0),
    op.i32Load,
    ...memarg(2, at(GSTAT.jsEntries)),
    op.i32Add,
    ...i32c(ringEntries - 1),
    op.i32And,
    ...i32c(Math.log2(ENTRY_BYTES)),
    op.i32Shl,
    op.tee,
    e,
    op.get,
    1,
    op.i64ExtendI32U,
    ...i64c(entryMeta(kind, width, region)),
    op.i64Or,
    op.i64Store,
    ...memarg(3, RING_OFFSET),
    op.get,
    e,
    ...value64,
    op.i64Store,
    ...memarg(3, RING_OFFSET + 8),
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
  // locals: 0 region, 1 offset (params); 2 value (i32 or i64); 3 entry address (i32); 4 recorder total (i64)
  const locals = wide
    ? [
        [1, I64],
        [1, I32],
        [1, I64],
      ]
    : [
        [2, I32],
        [1, I64],
      ];
  const v = 2,
    e = 3,
    t = 4;
  const load = width === 8 ? [0xfe, 0x11] : width === 4 ? [0xfe, 0x10] : width === 2 ? [0xfe, 0x13] : [0xfe, 0x12];
  const code: number[] = [op.block, VOID];
  for (const r of layout.regions) {
    if (!r.read || r.size < width) continue;
    const value64 = wide ? [op.get, v] : [op.get, v, op.i64ExtendI32U];
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
        : [op.set, v, ...record(layout.ringEntries, OP.read, width, r.index, e, t, value64), op.get, v]),
      op.ret,
      op.end,
    );
  }
  code.push(op.end, op.get, 0, op.get, 1, op.call, ...uleb(slowIndex), op.end);
  return [...vec(locals.map(([n, t]) => [...uleb(n), t])), ...code];
}

function writeBody(layout: GateLayout, width: Width, slowIndex: number): number[] {
  const wide = width === 8;
  // locals: 0 region, 1 offset, 2 value (params); 3 entry address (i32); 4 recorder total (i64)
  const e = 3,
    t = 4;
  const store = width === 8 ? op.i64Store : width === 4 ? op.i32Store : width === 2 ? op.i32Store16 : op.i32Store8;
  const code: number[] = [];
  // Narrow writes record the value as stored: value & 0xff / 0xffff, like the JS path.
  if (width < 4) code.push(op.get, 2, ...i32c(width === 2 ? 0xffff : 0xff), op.i32And, op.set, 2);
  code.push(op.block, VOID);
  for (const r of layout.regions) {
    if (!r.write || r.size < width) continue;
    const value64 = wide ? [op.get, 2] : [op.get, 2, op.i64ExtendI32U];
    code.push(
      op.get,
      0,
      ...i32c(r.index),
      op.i32Eq,
      op.if,
      VOID,
      ...boundsAndAlignment(r.size, width, 1),
      // Recorded before the store, as in the JS path: a write that hangs the bus is still on record.
      ...record(layout.ringEntries, OP.write, width, r.index, e, t, value64),
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
  return [
    ...vec([
      [1, I32],
      [1, I64],
    ]),
    ...code,
  ];
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
