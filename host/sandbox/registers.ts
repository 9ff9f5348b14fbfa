// WIT interface `registers`: region_count, region_size, reg_read8..64, reg_write8..64.
//
// A register access takes one of two routes, both answering by the same rule:
//  - the fast route, the Wasm register gate (gate.ts as a separate instance, or inline-gate.ts /
//    inline-rewrite.ts compiled into the driver): it serves an access in Wasm when `accessFits`
//    holds (emitted there as `off > lastOffset(size, width) || off & (width - 1)` → slow) and, for a
//    write, when the region has no checked writes (`regionHasCheckedWrites` / `needsSlowWrite` in
//    host/grant.ts). Anything else calls the slow route with the same arguments.
//  - the slow route, below: the same bounds/alignment rule, then the grant (read/write, the
//    `writable` list with its masks), then the write watchers (`slowWriteWatchers`, the DMA
//    firewall), then one typed-array access of the access's width on the mapping (never DataView: it
//    tears) or the simulated model. Every refusal is a typed FaultError naming region, offset, width.

import { hostImports } from '../abi.ts';
import { FaultError, LoadError } from '../faults.ts';
import { grantedSize, regionPolicy, regionHasCheckedWrites, type RegionPolicy } from '../grant.ts';
import type { Width } from '../sim/model.ts';
import { RegionFirewall, type FirewallWindow, type ReadRegister } from './dma-firewall.ts';
import { type HostContext, where } from './host-context.ts';
import { OP, STAT } from './shared.ts';

// --- THE access rule (region bounds under the grant, natural alignment) -------------------------------

/** The last offset at which an access of `width` bytes fits in `size` bytes (the gates compare against it). */
export const lastOffset = (size: number, width: number): number => size - width;

/**
 * THE bounds/alignment rule for an access at unsigned offset `off`: it lies wholly inside `size`
 * bytes and is naturally aligned. Used by the slow route here, the ports, the host's reset sequence
 * (worker.ts), and emitted into Wasm by gate.ts and inline-rewrite.ts through `lastOffset`.
 */
export const accessFits = (off: number, width: number, size: number): boolean =>
  off <= lastOffset(size, width) && (off & (width - 1)) === 0;

/** The cold path: throw the typed fault for an access that breaks the rule (region index first). */
export function accessFault(
  label: string,
  kind: string,
  r: number,
  off: number,
  width: number,
  n: number,
  size: (r: number) => number,
): void {
  if (r < 0 || r >= n)
    throw new FaultError('bad-region', `${label}: ${where(kind, r, off, width)}: no such ${kind} (granted: ${n})`);
  if (off + width > size(r)) {
    throw new FaultError(
      'register-out-of-bounds',
      `${label}: ${where(kind, r, off, width)}: beyond its ${size(r)} bytes`,
    );
  }
  if (off & (width - 1))
    throw new FaultError('register-misaligned', `${label}: ${where(kind, r, off, width)}: not ${width}-byte aligned`);
}

// --- the slow-write hook -------------------------------------------------------------------------------

/** Sees every register write the grant allowed on the slow route, before it reaches the device; may refuse it. */
export interface WriteWatcher {
  write(offset: number, width: Width, value: bigint): void;
}

/**
 * THE hook for write checks beyond the grant's lists: the watchers of region `r`, called last on the
 * slow route (after bounds, alignment, read/write and `writable`), in order. Today: the region's DMA
 * engine firewall. A descriptor-ring check (ring tail/base/length registers) is added here; the
 * writes it must see are routed here by `needsSlowWrite` / `regionHasCheckedWrites` (host/grant.ts).
 */
export function slowWriteWatchers(
  label: string,
  r: number,
  policy: RegionPolicy,
  granted: number,
  windows: FirewallWindow[],
  readBack: ReadRegister,
): WriteWatcher[] {
  const out: WriteWatcher[] = [];
  if (policy.dmaEngines?.length) {
    try {
      out.push(new RegionFirewall(label, r, policy.dmaEngines, granted, windows, readBack));
    } catch (err) {
      throw new LoadError(`${label}: region ${r}: ${(err as Error).message}`);
    }
  }
  return out;
}

// --- the slow route --------------------------------------------------------------------------------------

export function registerImports(ctx: HostContext) {
  const { label, shared, grant } = ctx;
  const s = ctx.session;
  const stats = shared.stats;
  const regions = s.regions;
  const nRegions = regions.length;
  const policies = regions.map((_, i) => regionPolicy(grant, i));
  const checked = policies.map((p) => !p.read || regionHasCheckedWrites(p));
  const granted = regions.map((reg, i) => grantedSize(policies[i], reg.size));
  const regionSize = (r: number) => granted[r];
  const windows = s.spec.dma
    .slice(0, grant.dmaWindows ?? s.spec.dma.length)
    .map((w) => ({ name: w.name, bus: w.bus, size: w.size }));
  const readBack =
    (r: number) =>
    (off: number, width: Width): bigint => {
      const reg = regions[r];
      if (reg.sim >= 0) return BigInt.asUintN(width * 8, BigInt(s.readSim(reg.sim, off, width)));
      return width === 8 ? reg.u64![off >>> 3] : BigInt(reg.u32![off >>> 2]);
    };
  const watchers = policies.map((p, r) => slowWriteWatchers(label, r, p, granted[r], windows, readBack(r)));

  const policyCheck = (r: number, off: number, width: number, value: bigint, write: boolean): void => {
    const p = policies[r];
    if (!write) {
      if (!p.read)
        throw new FaultError(
          'access-denied',
          `${label}: ${where('region', r, off, width)}: the grant does not allow reads`,
        );
      return;
    }
    if (!p.write)
      throw new FaultError(
        'access-denied',
        `${label}: ${where('region', r, off, width)}: the grant does not allow writes`,
      );
    if (p.writable) {
      const reg = p.writable.find((w) => w.offset === off && w.width === width);
      if (!reg)
        throw new FaultError(
          'access-denied',
          `${label}: ${where('region', r, off, width)}: not a writable register under the grant`,
        );
      if (reg.mask !== undefined && (value & ~reg.mask) !== 0n) {
        throw new FaultError(
          'access-denied',
          `${label}: ${where('region', r, off, width)}: value 0x${value.toString(16)} sets bits outside mask 0x${reg.mask.toString(16)}`,
        );
      }
    }
    // Last: a watcher (the DMA firewall) commits the write to its shadow only once nothing else refuses it.
    for (const w of watchers[r]) w.write(off, width as Width, value);
  };

  // The hot path: one bounds/alignment test inline, the fault built on a cold path; one typed-array
  // access of the access's width (never DataView: it tears); the stats and recorder writes inline.
  const fail = (r: number, off: number, width: number): never => {
    accessFault(label, 'region', r, off, width, nRegions, regionSize);
    throw new Error('unreachable: accessFault() passed a failing access');
  };
  const check = (r: number, off: number, width: number): void => {
    if (r >>> 0 >= nRegions || !accessFits(off, width, granted[r])) fail(r, off, width);
  };
  const views = regions.map((reg) => ({ sim: reg.sim, u8: reg.u8, u16: reg.u16, u32: reg.u32 }));
  /**
   * The descriptor firewall that serves this access (a 4-byte access to one of its ring registers, or
   * a write of a register whose writes reset rings), or undefined when the access touches none; any
   * other access that touches one (narrow, 8 bytes, straddling) is refused: it would read the real
   * ring's state past the firewall, or write part of a register the firewall owns.
   */
  const ringAt = (r: number, off: number, width: number, what: 'reads' | 'writes') => {
    const ring = ctx.rings.guard?.byRegion[r];
    const write = what === 'writes';
    if (!ring?.overlaps(off, width, write)) return undefined;
    if (width === 4 && ring.claims(off, write)) return ring;
    throw new FaultError(
      'access-denied',
      `${label}: ${where('region', r, off, width)}: ring registers take 4-byte ${what}`,
    );
  };
  const makeRead = (width: 1 | 2 | 4) => {
    const shift = width >>> 1;
    return (r: number, off: number): number => {
      off >>>= 0;
      check(r, off, width);
      if (checked[r]) policyCheck(r, off, width, 0n, false);
      const view = views[r];
      let v: number;
      const ring = ringAt(r, off, width, 'reads');
      if (ring) v = ring.read(off);
      else if (view.sim >= 0) v = Number(s.readSim(view.sim, off, width));
      else v = width === 4 ? view.u32![off >>> 2] : width === 2 ? view.u16![off >>> shift] : view.u8![off];
      stats[0]++; // STAT.regReads
      shared.record(OP.read, r, off, width, v, 0);
      return v | 0;
    };
  };
  const makeWrite =
    (width: 1 | 2 | 4) =>
    (r: number, off: number, value: number): void => {
      off >>>= 0;
      check(r, off, width);
      const v = width === 4 ? value >>> 0 : value & (width === 2 ? 0xffff : 0xff);
      if (checked[r]) policyCheck(r, off, width, BigInt(v), true);
      const view = views[r];
      shared.record(OP.write, r, off, width, v, 0);
      stats[1]++; // STAT.regWrites
      const ring = ringAt(r, off, width, 'writes');
      if (ring) ring.write(off, v);
      else if (view.sim >= 0) s.writeSim(view.sim, off, width, v);
      else if (width === 4) view.u32![off >>> 2] = v;
      else if (width === 2) view.u16![off >>> 1] = v;
      else view.u8![off] = v;
    };
  const read64 = (r: number, off: number): bigint => {
    off >>>= 0;
    check(r, off, 8);
    if (checked[r]) policyCheck(r, off, 8, 0n, false);
    ringAt(r, off, 8, 'reads');
    const reg = regions[r];
    const v = reg.sim >= 0 ? BigInt.asUintN(64, BigInt(s.readSim(reg.sim, off, 8))) : reg.u64![off >>> 3];
    stats[STAT.regReads]++;
    shared.record(OP.read, r, off, 8, Number(v & 0xffffffffn), Number(v >> 32n));
    return BigInt.asIntN(64, v);
  };
  const write64 = (r: number, off: number, value: bigint): void => {
    off >>>= 0;
    check(r, off, 8);
    const v = BigInt.asUintN(64, value);
    if (checked[r]) policyCheck(r, off, 8, v, true);
    ringAt(r, off, 8, 'writes');
    const reg = regions[r];
    shared.record(OP.write, r, off, 8, Number(v & 0xffffffffn), Number(v >> 32n));
    stats[STAT.regWrites]++;
    if (reg.sim >= 0) s.writeSim(reg.sim, off, 8, v);
    else reg.u64![off >>> 3] = v;
  };

  return hostImports('registers', {
    region_count: () => nRegions,
    region_size: (r: number) => {
      if (r < 0 || r >= nRegions)
        throw new FaultError('bad-region', `${label}: region ${r}: no such region (granted: ${nRegions})`);
      return granted[r] | 0;
    },
    reg_read8: makeRead(1),
    reg_read16: makeRead(2),
    reg_read32: makeRead(4),
    reg_read64: read64,
    reg_write8: makeWrite(1),
    reg_write16: makeWrite(2),
    reg_write32: makeWrite(4),
    reg_write64: write64,
  });
}
