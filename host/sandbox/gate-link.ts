// Linking the register gate (the fast route of registers.ts) for one instance: compiled into the
// driver (inline-gate.ts, when the engine has multi-memory and the main thread rewrote the module) or
// as a separate Wasm instance in front of the JavaScript imports (gate.ts). Either serves only the
// memory-backed regions the grant opens, and only the writes `regionHasCheckedWrites` leaves to it.

import { LoadError } from '../faults.ts';
import { grantedSize, regionHasCheckedWrites, regionPolicy } from '../grant.ts';
import type { FixedMapping } from '../native.ts';
import { GATE_FUNCS, encodeGate, type GateMode, type GateRegion } from './gate.ts';
import type { HostContext } from './host-context.ts';
import { ringFirewallOn, ringsMemoryStateBytes } from './ring-hook.ts';
import {
  CLOCK_IMPORT,
  clockImport,
  engineHasMultiMemory,
  inlineLayout,
  regionImport,
  RINGS_IMPORT,
  SHARED_IMPORT,
  type InlineGateBytes,
} from './inline-gate.ts';
import { INLINE_SHARED_AT } from './shared.ts';

const PAGE = 65536;

export type GateKind = 'inline' | 'instance' | 'off';

/** One instance's gate: what it serves and the mappings it holds (closed with the instance). */
export class GateLink {
  /** How the gate is linked: 'inline' (compiled into the driver), 'instance' (gate.ts), 'off'. */
  kind: GateKind = 'off';
  /** Regions the gate serves without calling JavaScript. */
  regions: number[] = [];
  /** The memories of the inline gate (module GATE_MODULE's imports), empty otherwise. */
  readonly gateImports: Record<string, WebAssembly.Memory | (() => void)> = {};
  /**
   * wasmdrv-gate.rings (inline gate with rings it serves): the descriptor firewall's state block, then
   * the real rings (the DMA window's last pages, which the driver is never given) mapped after it.
   */
  ringsMemory?: WebAssembly.Memory;
  /** The gate instance's memory, kept alive as long as the instance: closing the mappings writes over its pages. */
  memory?: WebAssembly.Memory;
  private memories: WebAssembly.Memory[] = [];
  private readonly mappings: FixedMapping[] = [];

  constructor(private readonly ctx: HostContext) {}

  /**
   * Put the gate in front of `imports` (rewriting their register entries for the instance gate).
   * Returns the module to instantiate instead of `module` when the gate is compiled in.
   */
  link(
    imports: Record<string, Function>,
    mode: GateMode,
    module: WebAssembly.Module,
    inlineGate?: InlineGateBytes,
  ): WebAssembly.Module {
    if (mode === 'off') return module;
    const recordReads = mode === 'record-all';
    const inline = engineHasMultiMemory() ? this.linkInline(imports, recordReads, inlineGate) : undefined;
    if (inline) return inline;
    this.linkInstance(imports, recordReads);
    return module;
  }

  close(): void {
    for (const m of this.mappings) m.close();
    this.memory = undefined;
    this.ringsMemory = undefined;
    this.memories = [];
  }

  /**
   * Compile the register gate into the driver (inline-gate.ts): map the shared area and each
   * memory-backed region into memories of their own; the module the main thread rewrote turns its
   * register imports into internal checked accesses to them. Returns undefined when there is nothing
   * to serve inline (no shared memfd, no register imports, no memory-backed region, or a layout that
   * differs from the one the module was rewritten for): then the instance gate or JavaScript serves.
   */
  private linkInline(
    imports: Record<string, Function>,
    recordReads: boolean,
    given: InlineGateBytes | undefined,
  ): WebAssembly.Module | undefined {
    const { shared, native, session } = this.ctx;
    if (!given || shared.fd === undefined || !imports.reg_read32) return undefined;
    const page = native.pageSize();
    // The generated code has the shared area at INLINE_SHARED_AT (4 KiB): a host with larger pages
    // cannot map it there, and takes the instance gate (a slower route to the same checks).
    if (INLINE_SHARED_AT % page !== 0) return undefined;
    const up = (n: number) => Math.ceil(n / page) * page;
    // The worker's own view of what may be served inline must be the one the module was rewritten for.
    const layout = inlineLayout(
      session.regions.map((r) => ({ size: r.size, memory: r.sim < 0 })),
      this.ctx.grant,
      shared.entryCount,
      recordReads,
      ringFirewallOn(session.spec, this.ctx.grant),
    );
    if (!layout || JSON.stringify(layout) !== JSON.stringify(given.layout)) return undefined;
    const regions = layout.regions;
    const rewritten = given.bytes as Uint8Array<ArrayBuffer>;
    const memoryOver = (bytesNeeded: number) => {
      const pages = Math.max(1, Math.ceil(bytesNeeded / PAGE));
      const m = new WebAssembly.Memory({ initial: pages, maximum: pages });
      this.memories.push(m);
      return m;
    };
    // Not at 0: the area's page must not share a QEMU TLB index with a region's page 0 (shared.ts).
    const sharedMem = memoryOver(INLINE_SHARED_AT + shared.byteLength);
    this.mappings.push(
      native.mapIntoBuffer(sharedMem.buffer, INLINE_SHARED_AT, shared.byteLength, shared.fd, 0, 'driver shared area'),
    );
    this.gateImports[SHARED_IMPORT] = sharedMem;
    this.gateImports[CLOCK_IMPORT] = clockImport(this.ctx); // the rewritten clock_ns (inline-gate.ts)
    for (const r of regions) {
      const length = up(session.regions[r.index].size);
      const mem = memoryOver(length);
      const src = session.openRegionSource(r.index)!;
      try {
        this.mappings.push(native.mapIntoBuffer(mem.buffer, 0, length, src.fd, src.offset, src.path));
      } finally {
        if (src.owned) native.close(src.fd);
      }
      this.gateImports[regionImport(r.index)] = mem;
    }
    if (layout.rings?.length) {
      const spec = session.spec;
      const last = spec.dma[spec.dma.length - 1];
      // The whole last window, not only its ring pages: a UIO map is mmapped from its start (the offset
      // names the map), so a mapping that begins at the ring pages fails with EINVAL on /dev/uioN.
      const state = ringsMemoryStateBytes(page);
      const mem = memoryOver(state + last.size);
      const src = session.openDmaSource(last);
      try {
        this.mappings.push(
          native.mapIntoBuffer(
            mem.buffer,
            state,
            last.size,
            src.fd,
            src.offset,
            src.path ?? `${this.ctx.label}: DMA window ${last.name}`,
          ),
        );
      } finally {
        if (src.owned) native.close(src.fd);
      }
      this.gateImports[RINGS_IMPORT] = mem;
      this.ringsMemory = mem;
    }
    let compiled: WebAssembly.Module;
    try {
      compiled = new WebAssembly.Module(rewritten);
    } catch (err) {
      throw new LoadError(
        `${this.ctx.label}: the module with the register gate compiled in does not compile (a host bug): ${(err as Error).message}`,
      );
    }
    this.kind = 'inline';
    this.regions = regions.map((r) => r.index);
    return compiled;
  }

  /**
   * Route the register imports of memory-backed regions through the Wasm register gate (gate.ts).
   * Needs the shared area as a memfd (drivers in workers have one); otherwise every access stays in JS.
   */
  private linkInstance(imports: Record<string, Function>, recordReads: boolean): void {
    const { shared, native, session } = this.ctx;
    if (shared.fd === undefined || !imports.reg_read32) return;
    const page = native.pageSize();
    const up = (n: number) => Math.ceil(n / page) * page;
    const regions: GateRegion[] = [];
    let at = up(shared.byteLength);
    for (const [i, reg] of session.regions.entries()) {
      const p = regionPolicy(this.ctx.grant, i);
      if (reg.sim >= 0 || (!p.read && !p.write)) continue;
      // The gate serves a region's writes only when none of them needs the checked path (needsSlowWrite).
      regions.push({
        index: i,
        size: grantedSize(p, reg.size),
        base: at,
        // With the descriptor firewall on, the ring registers' reads must reach it: this gate has no spans.
        read: p.read && !(p.rings?.length && ringFirewallOn(session.spec, this.ctx.grant)),
        write: !regionHasCheckedWrites(p),
      });
      at += up(reg.size);
    }
    if (regions.length === 0) return;
    const pages = Math.ceil(at / PAGE);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    this.mappings.push(native.mapIntoBuffer(memory.buffer, 0, shared.byteLength, shared.fd, 0, 'driver shared area'));
    for (const r of regions) {
      const src = session.openRegionSource(r.index)!;
      try {
        this.mappings.push(
          native.mapIntoBuffer(memory.buffer, r.base, up(session.regions[r.index].size), src.fd, src.offset, src.path),
        );
      } finally {
        if (src.owned) native.close(src.fd);
      }
    }
    const bytes = encodeGate({ regions, ringEntries: shared.entryCount, recordReads }, pages);
    const slow: Record<string, Function> = {};
    for (const name of GATE_FUNCS) slow[name] = imports[name];
    const gate = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      slow,
      gate: { memory },
    } as WebAssembly.Imports);
    for (const name of GATE_FUNCS) imports[name] = gate.exports[name] as Function;
    this.memory = memory;
    this.kind = 'instance';
    this.regions = regions.map((r) => r.index);
  }
}
