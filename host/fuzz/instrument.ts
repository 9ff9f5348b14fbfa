// Coverage, comparison and fuel instrumentation of a driver binary, for the fuzzer, with binaryen.
//
// The driver's code calls into a small second module, the probe module (probeModule below), which
// owns its own memory: the coverage map and the comparison log live there, out of the driver's
// reach (Node 20 has no multi-memory, and a map in the driver's memory could be overwritten by the
// driver it measures). A call from one Wasm instance into another does not leave Wasm, so a hit
// costs a few nanoseconds.
//
//  - coverage: a call `hit(id)` at every function entry, loop head, if/else arm, after every named
//    block (the join point branches land on) and after every br_if / br_table; `id` is a fixed
//    pseudo-random number per site, and the probe module counts the edge (previous id >> 1) ^ id in a
//    byte map with saturating counters (AFL's scheme).
//  - comparisons: both operands of every i32/i64 eq, ne, lt, gt, le, ge go through `cmpl`/`cmpr`,
//    which log them per comparison site; a br_table's index through `swi`. The fuzzer reads the log
//    of an input that found new coverage and feeds the operands back (cmplog).
//  - fuel: at every loop head, inline, a decrement of the `__fuel` global the host sets before each
//    call; at 0 it stores the loop's number in `__hang` and traps, so a hang ends as a `deadline`
//    fault (located without a stack trace) instead of blocking the fuzzer's thread.
//  - every mutable global of the driver is exported as `__g<k>`, so that the host can snapshot and
//    restore the instance between executions (host/fuzz/engine.ts).
//
// Also returns the driver's dictionary: the constants its comparisons use (outside the
// AssemblyScript runtime, `~lib/`) and br_table sizes, not every i32.const.
//
// Every valid module comes out valid (binaryen re-encodes it: sections in order, data count kept);
// one binaryen cannot read, or whose output does not validate, is refused with an error naming it.

import { StoreMarks } from './dirty.ts';
import { PROBE_MODULE, probeModule } from './probe.ts';
import { type Binaryen, type BinaryenModule, loadBinaryen } from './binaryen.ts';

export { loadBinaryen } from './binaryen.ts';
export { CMP_ENTRY, PROBE_MODULE } from './probe.ts';

export interface Instrumented {
  /** The module as given (checked against the ABI and the grant; the instrumented one imports more). */
  original: Uint8Array;
  bytes: Uint8Array;
  /** Coverage sites (hit calls) placed. */
  sites: number;
  /** Comparison sites (including br_tables). */
  cmpSites: number;
  /** Bytes of the coverage map (a power of two). */
  mapSize: number;
  /**
   * Every store of the driver marks the chunk it writes in the `__dirty` global (an i64 bitmask of
   * 2^`__dshift`-byte chunks; bulk memory operations mark the chunks of their destination range), so a restore copies only dirty
   * chunks. False when some code could not be walked: then every restore copies all of memory.
   */
  tracksStores: boolean;
  /** Per loop (the `__hang` global's value when fuel ran out): "function loop k". */
  hangSites: string[];
  /** Export names of the driver's mutable globals, for snapshots. */
  globals: string[];
  /** Constants the driver's comparisons use (u32, and u64 as bigint when they do not fit). */
  dictionary: (number | bigint)[];
  /** The probe module's bytes (linked as import module "__fuzz"). */
  probe: Uint8Array;
}

export async function instrument(input: Uint8Array, label = 'driver'): Promise<Instrumented> {
  // binaryen reads some invalid modules leniently and writes them out valid: refuse them first.
  if (!WebAssembly.validate(input as Uint8Array<ArrayBuffer>))
    throw new Error(`${label}: not a valid WebAssembly module (this Node's V8 refuses it)`);
  const b = await loadBinaryen();
  let m: BinaryenModule;
  try {
    m = (b.readBinary as (data: Uint8Array, features: number) => BinaryenModule)(input, nodeFeatures(b));
  } catch (err) {
    throw new Error(
      `${label}: binaryen cannot read the module for instrumentation: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  try {
    return { original: input, ...build(b, m, label) };
  } finally {
    m.dispose();
  }
}

/**
 * The proposals V8 in Node 20 and later runs. Not Features.All: binaryen would then be free to use
 * encodings V8 does not read (compact imports, for one).
 */
function nodeFeatures(b: Binaryen): number {
  const F = b.Features as unknown as Record<string, number>;
  return (
    F.MutableGlobals |
    F.NontrappingFPToInt |
    F.SignExt |
    F.BulkMemory |
    F.BulkMemoryOpt |
    F.SIMD128 |
    F.ReferenceTypes |
    F.Multivalue |
    F.TailCall |
    F.ExceptionHandling |
    F.Atomics
  );
}

const CMP_OPS = (b: Binaryen) => {
  const o = b as unknown as Record<string, number>;
  const names = ['Eq', 'Ne', 'LtS', 'LtU', 'GtS', 'GtU', 'LeS', 'LeU', 'GeS', 'GeU'];
  const i32 = new Set(names.map((n) => o[`${n}Int32`]));
  const i64 = new Set(names.map((n) => o[`${n}Int64`]));
  return { i32, i64 };
};

function build(b: Binaryen, m: BinaryenModule, label: string): Omit<Instrumented, 'original'> {
  const { i32: cmp32, i64: cmp64 } = CMP_OPS(b);
  const none = b.none,
    i32 = b.i32,
    i64 = b.i64;
  // Imported functions must come before defined ones in binaryen's list: add them first.
  m.addFunctionImport('__fz_hit', PROBE_MODULE, 'hit', i32, none);
  m.addFunctionImport('__fz_cmpl32', PROBE_MODULE, 'cmpl32', b.createType([i32, i32]), i32);
  m.addFunctionImport('__fz_cmpr32', PROBE_MODULE, 'cmpr32', b.createType([i32, i32]), i32);
  m.addFunctionImport('__fz_cmpl64', PROBE_MODULE, 'cmpl64', b.createType([i64, i32]), i64);
  m.addFunctionImport('__fz_cmpr64', PROBE_MODULE, 'cmpr64', b.createType([i64, i32]), i64);
  m.addFunctionImport('__fz_swi', PROBE_MODULE, 'swi', b.createType([i32, i32, i32]), i32);

  m.addGlobal('__fz_fuel', i32, true, m.i32.const(1_000_000)); // the start function's budget
  m.addGlobal('__fz_hang', i32, true, m.i32.const(-1));
  m.addGlobal('__fz_dirty', i64, true, (m.i64.const as unknown as (v: bigint) => number)(0n));
  m.addGlobal('__fz_dshift', i32, true, m.i32.const(16));
  m.addGlobalExport('__fz_dirty', '__dirty');
  m.addGlobalExport('__fz_dshift', '__dshift');
  m.addGlobalExport('__fz_fuel', '__fuel');
  m.addGlobalExport('__fz_hang', '__hang');
  const hangSites: string[] = [];
  let fnName = '';
  let loopsInFn = 0;
  let sites = 0;
  let cmpSites = 0;
  const dict = new Set<number | bigint>();
  // Deterministic pseudo-random site ids (a module instruments the same way every time).
  let seed = 0x2545f491;
  const nextId = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) & 0xffff;
  };
  const hit = () => {
    sites++;
    return m.call('__fz_hit', [m.i32.const(nextId())], none);
  };
  const constOf = (e: number): number | bigint | undefined => {
    if (b.getExpressionId(e) !== b.ConstId) return undefined;
    const v = (b.getExpressionInfo(e) as unknown as { value: number | bigint | { low: number; high: number } }).value;
    if (typeof v === 'number') return v >>> 0;
    const big = typeof v === 'bigint' ? BigInt.asUintN(64, v) : (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
    return big <= 0xffffffffn ? Number(big) : big;
  };

  const E = b as unknown as Record<string, Record<string, (...a: number[]) => any>>;
  let inRuntime = false;
  /** False once a subtree was skipped: a store in it would go untracked (then every restore is full). */
  let complete = true;
  const LEAVES = new Set([
    b.ConstId,
    b.LocalGetId,
    b.GlobalGetId,
    b.NopId,
    b.UnreachableId,
    b.MemorySizeId,
    b.DataDropId,
  ]);
  const marks = new StoreMarks(b, m);

  // Visit an expression tree, instrumenting in place (every change is a setter on the node itself,
  // so no parent needs rewriting). Kinds not listed keep their children uninstrumented: still valid.
  const visit = (e: number): void => {
    if (!e) return;
    const id = b.getExpressionId(e);
    switch (id) {
      case b.BlockId: {
        const n = E.Block.getNumChildren(e);
        const kids: number[] = [];
        for (let i = 0; i < n; i++) kids.push(E.Block.getChildAt(e, i));
        for (const k of kids) visit(k);
        // After a named block (a branch target) and after a br_if / br_table: a new site. Inserted
        // back to front so that indices stay right; never after the last child (it may be the
        // block's value).
        for (let i = n - 2; i >= 0; i--) {
          const k = kids[i];
          const kid = b.getExpressionId(k);
          const named = kid === b.BlockId && E.Block.getName(k);
          const brIf = kid === b.BreakId && E.Break.getCondition(k);
          if (named || brIf || kid === b.SwitchId) E.Block.insertChildAt(e, i + 1, hit());
        }
        return;
      }
      case b.IfId: {
        visit(E.If.getCondition(e));
        const t = E.If.getIfTrue(e);
        const f = E.If.getIfFalse(e);
        visit(t);
        visit(f);
        E.If.setIfTrue(e, m.block(null, [hit(), t], b.auto));
        if (f) E.If.setIfFalse(e, m.block(null, [hit(), f], b.auto));
        else if (b.getExpressionType(e) === none) E.If.setIfFalse(e, hit());
        return;
      }
      case b.LoopId: {
        const body = E.Loop.getBody(e);
        visit(body);
        // Fuel, inline: if (fuel == 0) { hang = site; unreachable } fuel -= 1
        const site = hangSites.length;
        hangSites.push(`${fnName} loop ${loopsInFn++}`);
        const burn = m.block(
          null,
          [
            m.if(
              m.i32.eqz(m.global.get('__fz_fuel', i32)),
              m.block(null, [m.global.set('__fz_hang', m.i32.const(site)), m.unreachable()], none),
            ),
            m.global.set('__fz_fuel', m.i32.sub(m.global.get('__fz_fuel', i32), m.i32.const(1))),
          ],
          none,
        );
        E.Loop.setBody(e, m.block(null, [burn, hit(), body], b.auto));
        return;
      }
      case b.BreakId:
        visit(E.Break.getValue(e));
        visit(E.Break.getCondition(e));
        return;
      case b.SwitchId: {
        visit(E.Switch.getValue(e));
        const cond = E.Switch.getCondition(e);
        visit(cond);
        const cases = E.Switch.getNumNames(e);
        if (!inRuntime) for (let i = 0; i <= cases; i++) dict.add(i);
        E.Switch.setCondition(e, m.call('__fz_swi', [cond, m.i32.const(cmpSites++), m.i32.const(cases)], i32));
        return;
      }
      case b.BinaryId: {
        const l = E.Binary.getLeft(e);
        const r = E.Binary.getRight(e);
        visit(l);
        visit(r);
        const op = E.Binary.getOp(e);
        const w = cmp32.has(op) ? 32 : cmp64.has(op) ? 64 : 0;
        if (w) {
          if (!inRuntime) {
            for (const c of [constOf(l), constOf(r)]) if (c !== undefined && c !== 0) dict.add(c);
          }
          const site = cmpSites++;
          const t = w === 32 ? i32 : i64;
          E.Binary.setLeft(e, m.call(`__fz_cmpl${w}`, [l, m.i32.const(site)], t));
          E.Binary.setRight(e, m.call(`__fz_cmpr${w}`, [r, m.i32.const(site)], t));
        }
        return;
      }
      case b.CallId:
      case b.CallIndirectId: {
        const W = id === b.CallId ? E.Call : E.CallIndirect;
        const n = W.getNumOperands(e);
        for (let i = 0; i < n; i++) visit(W.getOperandAt(e, i));
        if (id === b.CallIndirectId) visit(E.CallIndirect.getTarget(e));
        return;
      }
      case b.LocalSetId:
        return visit(E.LocalSet.getValue(e));
      case b.GlobalSetId:
        return visit(E.GlobalSet.getValue(e));
      case b.LoadId:
        return visit(E.Load.getPtr(e));
      case b.StoreId:
        visit(E.Store.getPtr(e));
        visit(E.Store.getValue(e));
        if (E.Store.isAtomic(e)) complete = false;
        E.Store.setPtr(e, marks.store(E.Store.getPtr(e), E.Store.getOffset(e), E.Store.getBytes(e)));
        return;
      case b.UnaryId:
        return visit(E.Unary.getValue(e));
      case b.SelectId:
        visit(E.Select.getIfTrue(e));
        visit(E.Select.getIfFalse(e));
        return visit(E.Select.getCondition(e));
      case b.DropId:
        return visit(E.Drop.getValue(e));
      case b.ReturnId:
        return visit(E.Return.getValue(e));
      case b.MemoryGrowId:
        return visit(E.MemoryGrow.getDelta(e));
      case b.MemoryInitId:
        visit(E.MemoryInit.getDest(e));
        visit(E.MemoryInit.getOffset(e));
        visit(E.MemoryInit.getSize(e));
        E.MemoryInit.setDest(e, marks.bulkDest(E.MemoryInit.getDest(e)));
        return E.MemoryInit.setSize(e, marks.bulkSize(E.MemoryInit.getSize(e)));
      case b.MemoryCopyId:
        visit(E.MemoryCopy.getDest(e));
        visit(E.MemoryCopy.getSource(e));
        visit(E.MemoryCopy.getSize(e));
        E.MemoryCopy.setDest(e, marks.bulkDest(E.MemoryCopy.getDest(e)));
        return E.MemoryCopy.setSize(e, marks.bulkSize(E.MemoryCopy.getSize(e)));
      case b.MemoryFillId:
        visit(E.MemoryFill.getDest(e));
        visit(E.MemoryFill.getValue(e));
        visit(E.MemoryFill.getSize(e));
        E.MemoryFill.setDest(e, marks.bulkDest(E.MemoryFill.getDest(e)));
        return E.MemoryFill.setSize(e, marks.bulkSize(E.MemoryFill.getSize(e)));
      default:
        if (!LEAVES.has(id)) complete = false;
        return;
    }
  };

  const nf = m.getNumFunctions();
  for (let i = 0; i < nf; i++) {
    const f = m.getFunctionByIndex(i);
    const info = b.getFunctionInfo(f);
    if (info.module) continue; // an import
    inRuntime = info.name.startsWith('~lib/');
    fnName = info.name;
    loopsInFn = 0;
    marks.startFunction(f as unknown as number);
    const body = info.body;
    visit(body);
    E.Function.setBody(f as unknown as number, m.block(null, [hit(), body], b.auto));
  }

  const globals: string[] = [];
  const ng = m.getNumGlobals();
  for (let i = 0; i < ng; i++) {
    const g = b.getGlobalInfo(m.getGlobalByIndex(i));
    if (!g.mutable || g.module || g.name.startsWith('__fz_')) continue;
    const name = `__g${globals.length}`;
    m.addGlobalExport(g.name, name);
    globals.push(name);
  }

  if (!m.validate()) throw new Error(`${label}: binaryen finds the instrumented module invalid`);
  b.setDebugInfo(true); // keep the name section: fault stacks name functions
  let bytes: Uint8Array;
  try {
    bytes = m.emitBinary();
  } finally {
    b.setDebugInfo(false);
  }
  if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) {
    throw new Error(
      `${label}: the instrumented module does not validate (a binaryen round trip of this module is not supported)`,
    );
  }
  const mapSize = Math.min(1 << 16, Math.max(1 << 12, 1 << Math.ceil(Math.log2(Math.max(1, sites) * 8))));
  return {
    bytes,
    sites,
    cmpSites,
    mapSize,
    globals,
    hangSites,
    tracksStores: complete,
    dictionary: [...dict],
    probe: probeModule(b, mapSize, cmpSites),
  };
}
