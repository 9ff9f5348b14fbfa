// The rewriting half of the inline register gate (inline-gate.ts has the design): binaryen.js turns
// a driver's register imports into checked accesses to memories the host appends. It runs in the
// compile process (host/driver/gate-compiler.ts; the main thread only as its fallback), binaryen loaded
// once and lazily: importing binaryen into every driver worker cost ~0.3 s of CPU per start and, on
// Node 26, made worker.terminate() after a fault crash the whole process now and then (V8 "Check
// failed: !is_null()"), so driver workers never load it.

import { lastOffset } from './registers.ts';
import type binaryenNs from 'binaryen';
import { LoadError } from '../faults.ts';
import { IMPORT_MODULE } from '../abi.ts';
import {
  GSTATS_OFFSET as GSTATS_AREA,
  RING_OFFSET as RING_AREA,
  ENTRY_BYTES,
  GSTAT,
  INLINE_SHARED_AT,
  OP,
  STAT,
  STATS_OFFSET as STATS_AREA,
  entryMeta,
} from './shared.ts';

// The area's fields as addresses in `wasmdrv-gate.shared`, which has the area at INLINE_SHARED_AT.
const GSTATS_OFFSET = INLINE_SHARED_AT + GSTATS_AREA;
const RING_OFFSET = INLINE_SHARED_AT + RING_AREA;
const STATS_OFFSET = INLINE_SHARED_AT + STATS_AREA;
import { GATE_FUNCS } from './gate.ts';
import {
  GATE_MODULE,
  SHARED_IMPORT,
  checkSingleMemory,
  engineHasMultiMemory,
  inlineLayout,
  regionImport,
  RINGS_IMPORT,
  CLOCK_IMPORT,
  type InlineGateBytes,
  type InlineLayout,
} from './inline-gate.ts';
import type { Grant } from '../grant.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { ringFirewallOn } from './ring-hook.ts';
import { GATE_ROWS, type GateMode } from './gate.ts';
import { addRingFunctions } from './ring-fast.ts';

type Binaryen = typeof binaryenNs;
let loaded: Promise<Binaryen> | undefined;
/** binaryen.js, imported on first use. */
export function loadBinaryen(): Promise<Binaryen> {
  return (loaded ??= import('binaryen').then((m) => m.default));
}

/**
 * For a driver about to start: the module with the gate compiled in, or undefined (gate off, an
 * engine without multi-memory, nothing to serve inline, or a module the rewriter refuses: then the
 * worker's own checks decide, and registers go through the instance gate or JavaScript).
 */
export async function prepareInlineGate(
  label: string,
  spec: DeviceSpec,
  bytes: Uint8Array,
  grant: Grant,
  mode: GateMode,
  ringEntries: number,
): Promise<InlineGateBytes | undefined> {
  if (mode === 'off' || !engineHasMultiMemory() || process.env.WASMDRV_INSTANCE_GATE) return undefined;
  const layout = inlineLayout(
    spec.regions.map((r) => ({ size: r.size, memory: r.source.kind !== 'sim' })),
    grant,
    ringEntries,
    mode === 'record-all',
    ringFirewallOn(spec, grant),
  );
  if (!layout) return undefined;
  try {
    const out = inlineGate(await loadBinaryen(), bytes, layout, label);
    return out ? { bytes: out, layout } : undefined;
  } catch {
    return undefined; // the worker's checkModule names what is wrong with the module
  }
}

/**
 * The features the rewriter reads and writes. Set explicitly (binaryen's `All` makes encodings some
 * engines refuse): what our toolchains emit plus multi-memory and atomics for the gate itself.
 */
function features(binaryen: Binaryen): number {
  const F = binaryen.Features;
  return (
    F.MutableGlobals |
    F.NontrappingFPToInt |
    F.SignExt |
    F.BulkMemory |
    F.BulkMemoryOpt |
    F.MultiMemory |
    F.Atomics |
    F.SIMD128 |
    F.ReferenceTypes |
    F.Multivalue |
    F.TailCall |
    F.ExtendedConst
  );
}

type Width = 1 | 2 | 4 | 8;

/** The module's `wasmdrv.clock_ns` import, if it has one with the ABI's type () -> i64. */
function clockImportInfo(binaryen: Binaryen, m: binaryenNs.Module): binaryenNs.FunctionInfo | undefined {
  for (let i = 0; i < m.getNumFunctions(); i++) {
    const info = binaryen.getFunctionInfo(m.getFunctionByIndex(i));
    if (
      info.module === IMPORT_MODULE &&
      info.base === 'clock_ns' &&
      info.params === binaryen.none &&
      info.results === binaryen.i64
    )
      return info;
  }
  return undefined;
}

/**
 * Rewrite `bytes` (already checked by checkModule) so that its register imports are served inline
 * for `layout`. Returns the new binary, or undefined when the module imports none of the register
 * functions. Throws LoadError when binaryen cannot take the module.
 */
export function inlineGate(
  binaryen: Binaryen,
  bytes: Uint8Array,
  layout: InlineLayout,
  label: string,
): Uint8Array<ArrayBuffer> | undefined {
  if (layout.ringEntries & (layout.ringEntries - 1))
    throw new Error('inline gate: recorder size must be a power of two');
  checkSingleMemory(bytes, label);
  let m: binaryenNs.Module;
  try {
    m = binaryen.readBinary(bytes);
  } catch (err) {
    throw new LoadError(`${label}: the register gate cannot rewrite this module: ${(err as Error).message}`);
  }
  try {
    m.setFeatures(features(binaryen));
    const imported = new Map<string, binaryenNs.FunctionInfo>();
    for (let i = 0; i < m.getNumFunctions(); i++) {
      const info = binaryen.getFunctionInfo(m.getFunctionByIndex(i));
      if (info.module === IMPORT_MODULE && (GATE_FUNCS as readonly string[]).includes(info.base ?? ''))
        imported.set(info.base!, info);
    }
    if (imported.size === 0) return undefined;

    const fresh = (base: string) => {
      let n = base;
      for (let k = 0; m.getFunction(n) !== 0; k++) n = `${base}$${k}`;
      return n;
    };
    const shared = `${GATE_MODULE}.${SHARED_IMPORT}`;
    const ringsMem = `${GATE_MODULE}.${RINGS_IMPORT}`;
    // Before any memory is added: the ring functions' unnamed accesses resolve to memory 0 (ring-fast.ts).
    const ringFuncs = addRingFunctions(
      binaryen,
      m,
      layout.rings ?? [],
      { rings: ringsMem, region: (i) => `${GATE_MODULE}.${regionImport(i)}` },
      fresh,
    );
    m.addMemoryImport(shared, GATE_MODULE, SHARED_IMPORT, false);
    const regionMemory = new Map<number, string>();
    for (const r of layout.regions) {
      const name = `${GATE_MODULE}.${regionImport(r.index)}`;
      m.addMemoryImport(name, GATE_MODULE, regionImport(r.index), false);
      regionMemory.set(r.index, name);
    }
    if (layout.rings?.length) m.addMemoryImport(ringsMem, GATE_MODULE, RINGS_IMPORT, false);
    const fastOf = (region: number) => (layout.rings ?? []).filter((f) => f.region === region);

    const i32 = binaryen.i32,
      i64 = binaryen.i64;
    const c = (n: number) => m.i32.const(n);
    const get = (i: number, t: binaryenNs.Type) => m.local.get(i, t);
    /** gstats[i] += 1 (an i64 in the shared area). */
    const bumpStat = (i: number) => {
      const at = GSTATS_OFFSET + i * 8;
      return m.i64.store(at, 0, c(0), m.i64.add(m.i64.load(at, 0, c(0), shared), m.i64.const(1n)), shared);
    };
    /**
     * Append a recorder entry as DriverShared.record does (shared.ts has the format): word 0 is the
     * zero-extended offset ORed with a constant (op, width, region), word 1 the value as an i64; the
     * slot is (gateReads + gateWrites + jsEntries) & mask, and the access bumps its own kind's counter.
     * Uses locals `e` (i32, the entry's address) and `t` (i64, that counter before). Kept short in wire
     * bytes: V8 inlines a register function into its caller only while the caller grows by ~10%.
     */
    const record = (
      kind: number,
      width: Width,
      region: number,
      e: number,
      t: number,
      value64: binaryenNs.ExpressionRef,
    ) => {
      const at = (i: number) => GSTATS_OFFSET + i * 8;
      const own = at(kind === OP.read ? GSTAT.gateReads : GSTAT.gateWrites);
      const other = at(kind === OP.read ? GSTAT.gateWrites : GSTAT.gateReads);
      // the low halves (little-endian): their sum is the total modulo 2^32, enough for the slot
      const low = (a: number) => m.i32.load(a, 0, c(0), shared);
      const sum = m.i32.add(m.i32.add(m.i32.wrap(get(t, i64)), low(other)), low(at(GSTAT.jsEntries)));
      return [
        m.i64.store(
          own,
          0,
          c(0),
          m.i64.add(m.local.tee(t, m.i64.load(own, 0, c(0), shared), i64), m.i64.const(1n)),
          shared,
        ),
        m.i64.store(
          RING_OFFSET,
          0,
          m.local.tee(e, m.i32.shl(m.i32.and(sum, c(layout.ringEntries - 1)), c(Math.log2(ENTRY_BYTES))), i32),
          m.i64.or(m.i64.extend_u(get(1, i32)), m.i64.const(entryMeta(kind, width, region))),
          shared,
        ),
        m.i64.store(RING_OFFSET + 8, 0, get(e, i32), value64, shared),
      ];
    };
    // THE access rule (registers.ts `accessFits`): `off > lastOffset(size, width) || off & (width - 1)` → br $slow.
    // For a power-of-two size the two tests are one: the in-bounds, aligned offsets are exactly those
    // with no bit outside (size - width). Fewer wire bytes, so V8 inlines the function more readily.
    const checks = (size: number, width: Width) =>
      (size & (size - 1)) === 0
        ? [m.br('slow', m.i32.and(get(1, i32), c(~lastOffset(size, width))))]
        : [
            m.br('slow', m.i32.gt_u(get(1, i32), c(lastOffset(size, width)))),
            m.br('slow', m.i32.and(get(1, i32), c(width - 1))),
          ];
    /** local 0 (the region argument) is `index` */
    const isRegion = (index: number) => (index === 0 ? m.i32.eqz(get(0, i32)) : m.i32.eq(get(0, i32), c(index)));

    for (const [fi, base] of GATE_FUNCS.entries()) {
      const info = imported.get(base);
      if (!info) continue;
      const { width, kind } = GATE_ROWS[fi];
      const isRead = kind === 'read';
      const wide = width === 8;
      const vt = wide ? i64 : i32;
      const slowName = fresh(`${GATE_MODULE}.slow.${base}`);
      m.removeFunction(info.name);
      m.addFunctionImport(slowName, IMPORT_MODULE, base, info.params, info.results);
      const arms: binaryenNs.ExpressionRef[] = [];
      if (isRead) {
        // params: 0 region, 1 offset; locals: 2 value, 3 entry address, 4 recorder total
        const v = 2,
          e = 3,
          t = 4;
        for (const r of layout.regions) {
          if (!r.read || r.size < width) continue;
          const mem = regionMemory.get(r.index)!;
          const load =
            width === 8
              ? m.i64.atomic.load(0, get(1, i32), mem)
              : width === 4
                ? m.i32.atomic.load(0, get(1, i32), mem)
                : width === 2
                  ? m.i32.atomic.load16_u(0, get(1, i32), mem)
                  : m.i32.atomic.load8_u(0, get(1, i32), mem);
          const value64 = wide ? get(v, i64) : m.i64.extend_u(get(v, i32));
          const body = layout.recordReads
            ? [m.local.set(v, load), ...record(OP.read, width, r.index, e, t, value64), m.return(get(v, vt))]
            : [m.return(load)];
          // A read overlapping [lo, hi) goes slow: off in (lo - width, hi), one unsigned compare.
          const ringChecks = r.slowReads.map(([lo, hi]) => {
            const from = Math.max(0, lo - width + 1);
            return m.br('slow', m.i32.lt_u(m.i32.sub(get(1, i32), c(from)), c(hi - from)));
          });
          // The descriptor firewall's head reads (ring-fast.ts): served here unless its sync says slow.
          const heads =
            width !== 4
              ? []
              : fastOf(r.index).map((f) =>
                  m.if(
                    m.i32.eq(get(1, i32), c(f.head)),
                    m.block(null, [
                      m.local.set(v, m.call(ringFuncs.get(f.slot)!.sync, [], i32)),
                      m.br('slow', m.i32.lt_s(get(v, i32), c(0))),
                      bumpStat(GSTAT.ringFastHeads),
                      ...(layout.recordReads ? record(OP.read, width, r.index, e, t, m.i64.extend_u(get(v, i32))) : []),
                      m.return(get(v, i32)),
                    ]),
                  ),
                );
          arms.push(
            m.if(isRegion(r.index), m.block(null, [...checks(r.size, width), ...heads, ...ringChecks, ...body])),
          );
        }
        const fallback = m.return(m.call(slowName, [get(0, i32), get(1, i32)], vt));
        m.addFunction(
          info.name,
          info.params,
          info.results,
          [vt, i32, i64],
          m.block(null, [m.block('slow', arms.length ? arms : [m.nop()]), fallback]),
        );
      } else {
        // params: 0 region, 1 offset, 2 value; locals: 3 entry address, 4 (doorbells' check), 5 recorder total
        const e = 3,
          t = 5;
        const pre: binaryenNs.ExpressionRef[] = [];
        // Narrow writes record the value as stored: value & 0xff / 0xffff, like the JavaScript path.
        if (width < 4) pre.push(m.local.set(2, m.i32.and(get(2, i32), c(width === 2 ? 0xffff : 0xff))));
        // The descriptor firewall's doorbells (ring-fast.ts): checked and copied in Wasm, or the JavaScript
        // import decides (nothing recorded or changed before the check has passed). local 4: fresh.
        for (const r of width === 4 ? layout.regions : []) {
          const bells = fastOf(r.index).map((f) => {
            const fn = ringFuncs.get(f.slot)!;
            return m.if(
              m.i32.eq(get(1, i32), c(f.tail)),
              m.block(null, [
                ...(f.tailMask === undefined ? [] : [m.br('slow', m.i32.and(get(2, i32), c(~f.tailMask)))]),
                m.local.set(4, m.call(fn.check, [get(2, i32)], i32)),
                m.br('slow', m.i32.lt_s(get(4, i32), c(0))),
                ...record(OP.write, width, r.index, e, t, m.i64.extend_u(get(2, i32))),
                bumpStat(GSTAT.ringFastDoorbells),
                m.call(fn.commit, [get(2, i32), get(4, i32)], binaryen.none),
                m.return(),
              ]),
            );
          });
          if (bells.length) arms.push(m.if(isRegion(r.index), m.block(null, [...checks(r.size, width), ...bells])));
        }
        for (const r of layout.regions) {
          if (!r.write || r.size < width) continue;
          const mem = regionMemory.get(r.index)!;
          const store =
            width === 8
              ? m.i64.store(0, 0, get(1, i32), get(2, i64), mem)
              : width === 4
                ? m.i32.store(0, 0, get(1, i32), get(2, i32), mem)
                : width === 2
                  ? m.i32.store16(0, 0, get(1, i32), get(2, i32), mem)
                  : m.i32.store8(0, 0, get(1, i32), get(2, i32), mem);
          const value64 = wide ? get(2, i64) : m.i64.extend_u(get(2, i32));
          // Recorded before the store, as in the JavaScript path: a write that hangs the bus is still on record.
          arms.push(
            m.if(
              isRegion(r.index),
              m.block(null, [
                ...checks(r.size, width),
                ...record(OP.write, width, r.index, e, t, value64),
                store,
                m.return(),
              ]),
            ),
          );
        }
        const fallback = m.call(slowName, [get(0, i32), get(1, i32), get(2, vt)], binaryen.none);
        m.addFunction(
          info.name,
          info.params,
          info.results,
          [i32, i32, i64],
          m.block(null, [...pre, m.block('slow', arms.length ? arms : [m.nop()]), fallback]),
        );
      }
    }
    // clock_ns: call wasmdrv-gate.clock (clockImport, inline-gate.ts), which stores the ns as an f64 in the
    // shared area, and load it: an i64 returned by JavaScript would be a BigInt made on every read.
    const clock = imported.size ? clockImportInfo(binaryen, m) : undefined;
    if (clock) {
      const fill = fresh(`${GATE_MODULE}.${CLOCK_IMPORT}`);
      m.removeFunction(clock.name);
      m.addFunctionImport(fill, GATE_MODULE, CLOCK_IMPORT, binaryen.none, binaryen.none);
      m.addFunction(
        clock.name,
        clock.params,
        clock.results,
        [],
        m.block(
          null,
          [
            m.call(fill, [], binaryen.none),
            m.i64.trunc_u_sat.f64(m.f64.load(STATS_OFFSET + STAT.clockNs * 8, 0, c(0), shared)),
          ],
          i64,
        ),
      );
    }
    binaryen.setDebugInfo(true); // keep the name section: fault reports show Wasm function names
    return m.emitBinary() as Uint8Array<ArrayBuffer>;
  } catch (err) {
    if (err instanceof LoadError) throw err;
    throw new LoadError(`${label}: the register gate cannot rewrite this module: ${(err as Error).message}`);
  } finally {
    m.dispose();
  }
}
