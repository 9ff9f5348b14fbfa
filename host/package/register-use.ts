// Which registers a driver's code touches, read statically from its Wasm, and whether its manifest's
// grant matches: a grant cannot drift from the code it was written for.
//
// Drivers name registers with constants (`BAR0.write32(RDT, tail)` compiles to a call of the
// `wasmdrv.reg_write32` import whose offset operand is an `i32.const`), so walking every call of a
// register import in every function body recovers the set of (offset, width) a driver can access. A
// helper that forwards one of its parameters as the offset (the SDK's `Region#clearBits32`) is followed
// one call level up, to the constants its callers pass. What stays unknown (an offset computed at run
// time) is reported as such, never guessed: the runtime checks still apply to it.
//
// Two kinds of drift come out: an access the grant refuses (the driver would fault on its first try),
// and a writable register the code never writes (a grant wider than the driver needs — least privilege
// says drop it). `wasmdrv inspect` prints the report, `wasmdrv pack` warns, and test/register-use.test.ts
// holds every shipped driver to "no drift".

import type binaryenNs from 'binaryen';
import type { Manifest } from './manifest.ts';

type Binaryen = typeof binaryenNs;

export interface RegisterUse {
  kind: 'read' | 'write';
  /** Bytes of the access (from the import's name: reg_write32 → 4). */
  width: 1 | 2 | 4 | 8;
  /** The region index when it is a constant at the call; AssemblyScript loads it from a field (null). */
  region: number | null;
  offset: number;
  /** Function that makes the call (or, followed through a forwarding helper, the helper's caller). */
  in: string;
}

export interface RegisterUseReport {
  uses: RegisterUse[];
  /** Register accesses whose offset the code computes at run time: function → count. */
  dynamic: { in: string; kind: 'read' | 'write'; width: number }[];
}

let loaded: Promise<Binaryen> | undefined;
function loadBinaryen(): Promise<Binaryen> {
  loaded ??= import('binaryen').then((m) => m.default);
  return loaded;
}

const REGISTER_IMPORT = /^reg_(read|write)(8|16|32|64)$/;

/** Expression kinds that have no child expressions (binaryen.js has no info table for some of them). */
function leafIds(b: Binaryen): Set<number> {
  return new Set([
    b.NopId,
    b.UnreachableId,
    b.LocalGetId,
    b.GlobalGetId,
    b.ConstId,
    b.MemorySizeId,
    b.AtomicFenceId,
    b.PopId,
    b.DataDropId,
    b.RefNullId,
    b.RefFuncId,
  ]);
}

/** Fields of binaryen's expression info that hold child expressions. */
const CHILD_FIELDS = [
  'children',
  'operands',
  'condition',
  'ifTrue',
  'ifFalse',
  'body',
  'value',
  'ptr',
  'left',
  'right',
  'expected',
  'replacement',
  'delta',
  'dest',
  'source',
  'size',
  'ref',
  'vec',
  'vectors',
  'timeout',
  'notifyCount',
] as const;

interface CallSite {
  caller: string;
  target: string;
  /** Each operand: its constant value, the caller's parameter it forwards, or unknown. */
  operands: ({ const: number } | { param: number } | null)[];
}

/** Every call in `wasm`'s function bodies, with its operands classified. */
function callSites(b: Binaryen, wasm: Uint8Array): { calls: CallSite[]; imports: Map<string, string> } {
  const mod = b.readBinary(wasm);
  try {
    const imports = new Map<string, string>();
    const bodies: { name: string; params: number; body: number }[] = [];
    for (let i = 0; i < mod.getNumFunctions(); i++) {
      const f = b.getFunctionInfo(mod.getFunctionByIndex(i));
      if (f.module) {
        if (f.module === 'wasmdrv' && f.base) imports.set(f.name, f.base);
      } else bodies.push({ name: f.name, params: b.expandType(f.params).length, body: f.body });
    }
    const leaves = leafIds(b);
    const calls: CallSite[] = [];
    const classify = (e: number, params: number): CallSite['operands'][number] => {
      const id = b.getExpressionId(e);
      if (id === b.ConstId) {
        const v = (b.getExpressionInfo(e) as unknown as { value: unknown }).value;
        return typeof v === 'number' ? { const: v >>> 0 } : null;
      }
      if (id === b.LocalGetId) {
        const index = (b.getExpressionInfo(e) as unknown as { index: number }).index;
        return index < params ? { param: index } : null;
      }
      return null;
    };
    for (const fn of bodies) {
      const stack = fn.body ? [fn.body] : [];
      while (stack.length) {
        const e = stack.pop()!;
        const id = b.getExpressionId(e);
        if (leaves.has(id)) continue;
        const info = b.getExpressionInfo(e) as unknown as Record<string, unknown>;
        if (id === b.CallId) {
          const operands = (info.operands as number[]).map((o) => classify(o, fn.params));
          calls.push({ caller: fn.name, target: info.target as string, operands });
        }
        if (id === b.CallIndirectId && typeof info.target === 'number') stack.push(info.target);
        for (const k of CHILD_FIELDS) {
          const v = info[k];
          if (Array.isArray(v)) for (const c of v) c && stack.push(c);
          else if (typeof v === 'number' && v !== 0) stack.push(v);
        }
      }
    }
    return { calls, imports };
  } finally {
    mod.dispose();
  }
}

/** The registers `wasm` reads and writes, as far as its code says so with constants. */
export async function registerUses(wasm: Uint8Array): Promise<RegisterUseReport> {
  const b = await loadBinaryen();
  const { calls, imports } = callSites(b, wasm);
  const uses: RegisterUse[] = [];
  const dynamic: RegisterUseReport['dynamic'] = [];
  // A helper whose offset operand is one of its own parameters: followed to its callers once.
  const forwarders = new Map<
    string,
    { param: number; regionParam: number | null; kind: RegisterUse['kind']; width: RegisterUse['width'] }[]
  >();
  for (const c of calls) {
    const m = REGISTER_IMPORT.exec(imports.get(c.target) ?? '');
    if (!m) continue;
    const kind = m[1] as RegisterUse['kind'];
    const width = (Number(m[2]) / 8) as RegisterUse['width'];
    const [region, offset] = c.operands;
    const regionNo = region && 'const' in region ? region.const : null;
    if (offset && 'const' in offset) uses.push({ kind, width, region: regionNo, offset: offset.const, in: c.caller });
    else if (offset && 'param' in offset) {
      const list = forwarders.get(c.caller) ?? [];
      list.push({ param: offset.param, regionParam: region && 'param' in region ? region.param : null, kind, width });
      forwarders.set(c.caller, list);
    } else dynamic.push({ in: c.caller, kind, width });
  }
  for (const [helper, forwarded] of forwarders) {
    const sites = calls.filter((c) => c.target === helper);
    for (const f of forwarded) {
      if (sites.length === 0) dynamic.push({ in: helper, kind: f.kind, width: f.width });
      for (const s of sites) {
        const off = s.operands[f.param];
        const reg = f.regionParam === null ? null : s.operands[f.regionParam];
        if (off && 'const' in off) {
          const region = reg && 'const' in reg ? reg.const : null;
          uses.push({ kind: f.kind, width: f.width, region, offset: off.const, in: s.caller });
        } else dynamic.push({ in: `${s.caller} → ${helper}`, kind: f.kind, width: f.width });
      }
    }
  }
  return { uses, dynamic };
}

export interface GrantDrift {
  /** Accesses the manifest refuses: the driver would fault on them. */
  refused: { use: RegisterUse; why: string }[];
  /** Writable registers no constant write in the code reaches. */
  unused: { region: number; offset: number; width: number }[];
  /** Whether unknown-offset writes exist, which could reach an `unused` register at run time. */
  dynamicWrites: boolean;
}

const num = (s: string | number) => (typeof s === 'number' ? s : Number(s));
const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * Compares a driver's register uses with its manifest's regions. A use whose region is not a constant
 * is held against every region: refused only if no region would allow it.
 */
export function grantDrift(manifest: Manifest, report: RegisterUseReport): GrantDrift {
  const regions = manifest.regions ?? [];
  const refusal = (u: RegisterUse, r: (typeof regions)[number]): string | null => {
    const size = num(r.size);
    if (u.offset + u.width > size) return `offset ${hex(u.offset)}+${u.width} is past the region's ${hex(size)} bytes`;
    if (u.kind === 'read') return null;
    if (r.access !== 'rw') return 'the region is read-only';
    if (r.writable && !r.writable.some((w) => num(w.offset) === u.offset && w.width === u.width))
      return `${hex(u.offset)}/${u.width * 8} is not among the region's writable registers`;
    return null;
  };
  const refused: GrantDrift['refused'] = [];
  const seen = new Set<string>();
  for (const u of report.uses) {
    const key = `${u.kind} ${u.region} ${u.offset} ${u.width}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const candidates = u.region === null ? regions : regions.filter((r) => r.index === u.region);
    if (candidates.length === 0) {
      refused.push({
        use: u,
        why: u.region === null ? 'the manifest grants no region' : `region ${u.region} is not granted`,
      });
      continue;
    }
    const whys = candidates.map((r) => refusal(u, r));
    if (whys.every((w) => w !== null)) refused.push({ use: u, why: whys[0]! });
  }
  const unused: GrantDrift['unused'] = [];
  for (const r of regions)
    for (const w of r.writable ?? []) {
      const offset = num(w.offset);
      const written = report.uses.some(
        (u) =>
          u.kind === 'write' &&
          u.offset === offset &&
          u.width === w.width &&
          (u.region === null || u.region === r.index),
      );
      if (!written) unused.push({ region: r.index, offset, width: w.width });
    }
  return { refused, unused, dynamicWrites: report.dynamic.some((d) => d.kind === 'write') };
}

/** One line per finding, for `inspect` and `pack`; empty when code and grant agree. */
export function describeDrift(d: GrantDrift): string[] {
  const lines = d.refused.map(
    (f) =>
      `register ${f.use.kind} of ${hex(f.use.offset)}/${f.use.width * 8}${f.use.region === null ? '' : ` in region ${f.use.region}`} (in ${f.use.in}) is refused by the manifest: ${f.why}`,
  );
  for (const u of d.unused)
    lines.push(
      `the manifest lets region ${u.region}'s register ${hex(u.offset)}/${u.width * 8} be written, but no write in the code reaches it${d.dynamicWrites ? ' with a constant offset (some writes compute their offset at run time)' : ': drop it from "writable"'}`,
    );
  return lines;
}
