// One driver instance: a Wasm module linked against a device session under a grant.
//
// The linker is strict (STYLE.md, after wasmtime's Linker): only ABI imports, only the groups the
// grant allows, exact signatures, and the memory import the host creates. Every register and port
// access is checked here (region, bounds without overflow, natural alignment, grant policy) and
// recorded in the flight recorder. Checks throw FaultError; the caller turns what escapes a call
// into a typed Fault.
//
// This class runs wherever it is given a session: in a driver's worker (host/sandbox/worker.ts) or
// in-process (the fuzzer). It never blocks except in irq_wait / sleep_us, which watch `cancelFd`.

import {
  ABI_VERSION,
  ABI_VERSION_GLOBAL,
  IMPORTS,
  IMPORT_MODULE,
  MEMORY_IMPORT,
  OPTIONAL_EXPORTS,
  REQUIRED_EXPORTS,
  WAIT_CANCELLED,
  WAIT_INTERRUPT,
  WAIT_TIMEOUT,
  importGroup,
  type FuncSig,
  type ImportGroup,
  type LogLevel,
  LOG_LEVELS,
} from '../abi.ts';
import { FaultError, LoadError } from '../faults.ts';
import { loadNative, type FixedMapping, type Native } from '../native.ts';
import { formatType, readWasm, type FuncType, type WasmInfo } from '../wasm/read.ts';
import type { Width } from '../sim/model.ts';
import type { DeviceSession } from './session.ts';
import { type DriverShared, OP, STAT } from './shared.ts';
import { GATE_FUNCS, encodeGate, type GateMode, type GateRegion } from './gate.ts';
import { RegionFirewall, regionHasCheckedWrites, type DmaEngineSpec } from './dma-firewall.ts';
import { EventLimiter } from './limiter.ts';
import {
  GATE_MODULE,
  SHARED_IMPORT,
  engineHasMultiMemory,
  inlineLayout,
  regionImport,
  type InlineGateBytes,
} from './inline-gate.ts';

export interface Limits {
  /** Maximum linear memory in 64 KiB pages (growth beyond fails: fault `memory-limit`). Default 256 (16 MiB). */
  memoryPages: number;
  /** Deadline for one probe, request, interrupt, reset or restore call, in ms. Default 2000. */
  deadlineMs: number;
  /** Log messages per second allowed on average. Default 200. */
  logPerSec: number;
  /** Log messages allowed in a burst above the average. Default 1000. */
  logBurst: number;
  /** Interrupt events per second above which the line is masked and the driver faulted. Default 100000. */
  irqPerSec: number;
}

export const DEFAULT_LIMITS: Limits = {
  memoryPages: 256,
  deadlineMs: 2000,
  logPerSec: 200,
  logBurst: 1000,
  irqPerSec: 100_000,
};

/**
 * The most a manifest may ask for, per limit, unless the operator sets other caps (Host option
 * `limitCaps`, the daemon config's `limitCaps`). A manifest asking for more is refused at load,
 * naming the limit, the value and the cap.
 */
export const DEFAULT_LIMIT_CAPS: Limits = {
  memoryPages: 1024,
  deadlineMs: 10_000,
  logPerSec: 1000,
  logBurst: 5000,
  irqPerSec: 200_000,
};

/** Refuse limits above the caps (throws LoadError naming the limit, value and cap). */
export function checkLimitCaps(requested: Partial<Limits>, caps: Limits, where: string): void {
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const v = Object.hasOwn(requested, key) ? requested[key] : undefined;
    if (v !== undefined && v > caps[key]) {
      throw new LoadError(
        `${where}: limit ${key} ${v} is above the host's cap of ${caps[key]} (the operator sets caps with the Host option limitCaps)`,
      );
    }
  }
}

/** What a driver may touch. The default grant allows everything the device offers. */
export interface Grant {
  /** ABI import groups that may be linked. Default: all. */
  imports?: ImportGroup[];
  /** Per memory-mapped region (by index): access mode and policies. Default: read and write. */
  regions?: Record<number, RegionPolicy>;
  /** Per port region. Default: in and out. */
  ports?: Record<number, { read: boolean; write: boolean }>;
  /** How many of the device's DMA windows (from the first) a DMA engine may use. Default: all. */
  dmaWindows?: number;
}

export interface RegionPolicy {
  read: boolean;
  write: boolean;
  /** Bytes of the region the driver may touch, from offset 0 (default: all of it). */
  size?: number;
  /** When present, a write must hit one of these (offset, width) registers with value & ~mask == 0. */
  writable?: { offset: number; width: Width; mask?: bigint }[];
  /**
   * The region's DMA engines (dma-firewall.ts): every write touching one of their registers is merged
   * into a shadow, and the write that starts a transfer is refused (fault `dma-firewall`) unless the
   * whole transfer lies inside one granted DMA window on the RAM side and inside a declared device
   * range on the device side. Checked with or without a `writable` list.
   */
  dmaEngines?: DmaEngineSpec[];
}

export interface InstanceHooks {
  log(level: LogLevel, message: string): void;
}

interface Window {
  addr: number;
  size: number;
  bus: bigint;
  mapping: FixedMapping;
}

const PAGE = 65536;
const MAX_LOG_BYTES = 4096;

function sameSig(t: FuncType, s: FuncSig): boolean {
  return (
    t.params.length === s.params.length &&
    t.results.length === s.results.length &&
    t.params.every((p, i) => p === s.params[i]) &&
    t.results.every((r, i) => r === s.results[i])
  );
}

function sigText(s: FuncSig): string {
  return `(${s.params.join(', ')}) -> (${s.results.join(', ')})`;
}

/** Check a module against the ABI and the grant without instantiating it. Throws LoadError naming the problem. */
export function checkModule(
  bytes: Uint8Array,
  session: { regions: unknown[]; ports: unknown[]; dmaCount: number; hasIrq: boolean },
  grant: Grant,
  limits: Limits,
  label: string,
): WasmInfo {
  let info: WasmInfo;
  try {
    info = readWasm(bytes);
  } catch (err) {
    throw new LoadError(`${label}: not a valid Wasm module: ${(err as Error).message}`);
  }
  const allowed = new Set<ImportGroup>(grant.imports ?? (Object.keys(IMPORTS) as ImportGroup[]));
  // One memory, the host's: none of the module's own, no second import, no other memory index in the
  // code or the data (Node 20 refuses multi-memory modules, Node 24+ runs them: the check must not
  // depend on the engine). At most one table, defined by the module (AssemblyScript's table for
  // indirect calls); an imported table would be a host object the driver could reach.
  if (info.definedMemories > 0)
    throw new LoadError(
      `${label}: the module defines ${info.definedMemories} memory of its own; a driver uses only the host's ${MEMORY_IMPORT.module}.${MEMORY_IMPORT.name}`,
    );
  if (info.importedMemories > 1)
    throw new LoadError(
      `${label}: the module imports ${info.importedMemories} memories; a driver imports exactly one, ${MEMORY_IMPORT.module}.${MEMORY_IMPORT.name}`,
    );
  const tableImport = info.imports.find((i) => i.desc.kind === 'table');
  if (tableImport)
    throw new LoadError(
      `${label}: import ${tableImport.module}.${tableImport.name} is a table; the ABI gives drivers no tables`,
    );
  if (info.definedTables > 1)
    throw new LoadError(
      `${label}: the module defines ${info.definedTables} tables; a driver may define one (for indirect calls)`,
    );
  const other = info.otherMemoryUses[0];
  if (other)
    throw new LoadError(
      `${label}: ${other.what} at byte ${other.at} uses memory index ${other.memory}; a driver has only memory 0`,
    );
  let sawMemory = false;
  for (const imp of info.imports) {
    const name = `${imp.module}.${imp.name}`;
    if (imp.module === MEMORY_IMPORT.module && imp.name === MEMORY_IMPORT.name) {
      if (imp.desc.kind !== 'memory') throw new LoadError(`${label}: import ${name} must be a memory`);
      if (imp.desc.shared || imp.desc.memory64)
        throw new LoadError(`${label}: import ${name} must be a plain 32-bit unshared memory`);
      if (imp.desc.min > limits.memoryPages) {
        throw new LoadError(
          `${label}: import ${name} needs ${imp.desc.min} pages, more than the limit of ${limits.memoryPages}`,
        );
      }
      sawMemory = true;
      continue;
    }
    const group = imp.module === IMPORT_MODULE ? importGroup(imp.name) : undefined;
    if (!group) throw new LoadError(`${label}: import ${name} is not part of the wasmdrv ABI v${ABI_VERSION}`);
    if (!allowed.has(group))
      throw new LoadError(`${label}: import ${name} is not granted (the grant does not allow ${group})`);
    if (imp.desc.kind !== 'function') throw new LoadError(`${label}: import ${name} must be a function`);
    const want = (IMPORTS[group] as Record<string, FuncSig>)[imp.name];
    if (!sameSig(imp.desc.type, want)) {
      throw new LoadError(
        `${label}: import ${name} has type ${formatType(imp.desc.type)}, the ABI says ${sigText(want)}`,
      );
    }
  }
  if (!sawMemory)
    throw new LoadError(
      `${label}: the module must import its memory as ${MEMORY_IMPORT.module}.${MEMORY_IMPORT.name} (asc --importMemory)`,
    );
  const exports = new Map(info.exports.map((e) => [e.name, e]));
  for (const [name, want] of Object.entries(REQUIRED_EXPORTS)) {
    const e = exports.get(name);
    if (!e) throw new LoadError(`${label}: required export ${name} is missing`);
    if (e.desc.kind !== 'function' || !sameSig(e.desc.type, want))
      throw new LoadError(`${label}: export ${name} must be a function ${sigText(want)}`);
  }
  for (const [name, want] of Object.entries(OPTIONAL_EXPORTS)) {
    const e = exports.get(name);
    if (e && (e.desc.kind !== 'function' || !sameSig(e.desc.type, want)))
      throw new LoadError(`${label}: export ${name} must be a function ${sigText(want)}`);
  }
  const v = exports.get(ABI_VERSION_GLOBAL);
  if (!v || v.desc.kind !== 'global' || v.desc.type !== 'i32')
    throw new LoadError(`${label}: export ${ABI_VERSION_GLOBAL} (an i32 global) is missing`);
  if (session.dmaCount > 0 && (!exports.has('dma_area') || !exports.has('dma_area_size'))) {
    throw new LoadError(
      `${label}: the device has ${session.dmaCount} DMA window(s) but the module exports no dma_area/dma_area_size`,
    );
  }
  return info;
}

export class DriverInstance {
  readonly memory: WebAssembly.Memory;
  readonly info: WasmInfo;
  private readonly maxPages: number;
  private exports: Record<string, any> = {};
  private readonly windows: Window[] = [];
  /** The register gate's mappings (shared area, regions); empty when every access goes through JS. */
  private readonly gateMappings: FixedMapping[] = [];
  /** Regions the gate serves without calling JavaScript (for status and tests). */
  gateRegions: number[] = [];
  /** Kept alive as long as the instance: closing the mappings writes over its pages. */
  gateMemory?: WebAssembly.Memory;
  /** How the gate is linked: 'inline' (compiled into the driver: inline-gate.ts), 'instance' (gate.ts), 'off'. */
  gateKind: 'inline' | 'instance' | 'off' = 'off';
  /** The inline gate's memories (shared area, then one per region), kept alive with their mappings. */
  private gateMemories: WebAssembly.Memory[] = [];
  private readonly native: Native;
  private lastCount = 0;
  private irqEnabled = true;
  /** Charged for every log call (and, in a worker, every guest error the device reports): limiter.ts. */
  private readonly limiter: EventLimiter;
  private ioBuffer = 0;
  /** irq_wait's poll set and pollRead's result, allocated once (no garbage on the interrupt path). */
  private waitFds?: Int32Array;
  private readonly readOut = new Float64Array(1);
  private ioSize = 0;
  private closed = false;

  private constructor(
    readonly label: string,
    readonly module: WebAssembly.Module,
    bytes: Uint8Array,
    readonly session: DeviceSession,
    readonly shared: DriverShared,
    private readonly grant: Grant,
    readonly limits: Limits,
    private readonly hooks: InstanceHooks,
    private readonly cancelFd: number,
    inheritCount?: number,
    checked?: WasmInfo,
    gateMode: GateMode = 'record-all',
    limiter?: EventLimiter,
    private readonly extraImports: Record<string, WebAssembly.ModuleImports> = {},
    private readonly inlineGate?: InlineGateBytes,
  ) {
    this.native = loadNative();
    this.limiter = limiter ?? new EventLimiter(label, limits.logPerSec, limits.logBurst);
    this.info =
      checked ??
      checkModule(
        bytes,
        {
          regions: session.regions,
          ports: session.ports,
          dmaCount: session.spec.dma.length,
          hasIrq: !!session.irq,
        },
        grant,
        limits,
        label,
      );
    const memImport = this.info.imports.find((i) => i.desc.kind === 'memory')!;
    const min = memImport.desc.kind === 'memory' ? memImport.desc.min : 1;
    const declaredMax = memImport.desc.kind === 'memory' ? memImport.desc.max : undefined;
    const maximum = Math.min(limits.memoryPages, declaredMax ?? limits.memoryPages);
    this.maxPages = maximum;
    this.memory = new WebAssembly.Memory({ initial: min, maximum });
    // A reloaded instance inherits the count its predecessor saw and leaves the fd's readiness alone,
    // so interrupts that arrived during the swap are delivered to it; a new driver starts from now.
    if (inheritCount !== undefined) this.lastCount = inheritCount;
    else this.lastCount = session.irq ? session.irq.consume() : 0;
    try {
      const imports = this.imports();
      let compiled = module;
      const gateImports: Record<string, WebAssembly.Memory> = {};
      if (gateMode !== 'off') {
        const inline = engineHasMultiMemory()
          ? this.linkInlineGate(imports, gateMode === 'record-all', gateImports)
          : undefined;
        if (inline) compiled = inline;
        else this.linkGate(imports, gateMode === 'record-all');
      }
      let instance: WebAssembly.Instance;
      try {
        instance = new WebAssembly.Instance(compiled, {
          ...this.extraImports,
          wasmdrv: imports,
          env: { memory: this.memory },
          [GATE_MODULE]: gateImports,
        } as WebAssembly.Imports);
      } catch (err) {
        if (err instanceof WebAssembly.LinkError) throw new LoadError(`${label}: ${err.message}`);
        throw err; // a trap in the start function: a fault in phase 'load'
      }
      this.exports = instance.exports as Record<string, any>;
      const version = (this.exports[ABI_VERSION_GLOBAL] as WebAssembly.Global).value;
      if (version !== ABI_VERSION)
        throw new LoadError(`${label}: built for ABI v${version}, this host speaks v${ABI_VERSION}`);
      this.ioBuffer = this.exports.io_buffer() >>> 0;
      this.ioSize = this.exports.io_buffer_size() >>> 0;
      if (this.ioBuffer + this.ioSize > this.memory.buffer.byteLength) {
        throw new LoadError(`${label}: io_buffer ${this.ioBuffer}+${this.ioSize} lies outside its memory`);
      }
      this.mapWindows();
    } catch (err) {
      // Nothing stays half-linked: the gate's and the windows' mappings go before the error leaves.
      this.close();
      throw err;
    }
  }

  /** Compile, check and instantiate. Throws LoadError for a module that cannot be loaded. */
  static create(
    label: string,
    bytes: Uint8Array,
    session: DeviceSession,
    shared: DriverShared,
    opts: {
      grant?: Grant;
      limits?: Partial<Limits>;
      hooks: InstanceHooks;
      cancelFd: number;
      module?: WebAssembly.Module;
      /** Hot reload: start from this interrupt count instead of reading the device's. */
      inheritCount?: number;
      /** The result of checkModule for these bytes under this grant, when the caller already has it (the fuzzer). */
      checked?: WasmInfo;
      /** How memory-backed registers are served (gate.ts). Default 'record-all'. */
      gate?: GateMode;
      /** The driver's event limiter, shared with its session's guest errors (default: a new one for this instance). */
      limiter?: EventLimiter;
      /** More import modules (the fuzzer's probe module); `checked` must then be the uninstrumented module's. */
      extraImports?: Record<string, WebAssembly.ModuleImports>;
      /** These bytes with the register gate compiled in (inline-rewrite.ts, made by the main thread). */
      inlineGate?: InlineGateBytes;
    },
  ): DriverInstance {
    let module = opts.module;
    // Check before compiling: the refusal names our rule whatever the engine supports (Node 20 does
    // not compile a second memory at all, Node 24+ does).
    const checked =
      opts.checked ??
      checkModule(
        bytes,
        {
          regions: session.regions,
          ports: session.ports,
          dmaCount: session.spec.dma.length,
          hasIrq: !!session.irq,
        },
        opts.grant ?? {},
        { ...DEFAULT_LIMITS, ...opts.limits },
        label,
      );
    if (!module) {
      try {
        module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
      } catch (err) {
        throw new LoadError(`${label}: does not compile: ${(err as Error).message}`);
      }
    }
    return new DriverInstance(
      label,
      module,
      bytes,
      session,
      shared,
      opts.grant ?? {},
      { ...DEFAULT_LIMITS, ...opts.limits },
      opts.hooks,
      opts.cancelFd,
      opts.inheritCount,
      checked,
      opts.gate ?? 'record-all',
      opts.limiter,
      opts.extraImports,
      opts.inlineGate,
    );
  }

  /** How full linear memory is, for telling a refused growth from other traps. */
  get memoryUse(): { bytes: number; maxBytes: number } {
    return { bytes: this.memory.buffer.byteLength, maxBytes: this.maxPages * PAGE };
  }

  /** The instance's exports, for the fuzzer's coverage and fuel globals. */
  exportsForFuzz(): Record<string, WebAssembly.Global> {
    return this.exports as Record<string, WebAssembly.Global>;
  }

  /** The host-side state a snapshot of the instance must capture (the fuzzer's snapshot restore). */
  fuzzState(): { count: number; irqEnabled: boolean } {
    return { count: this.lastCount, irqEnabled: this.irqEnabled };
  }

  restoreFuzzState(s: { count: number; irqEnabled: boolean }): void {
    this.lastCount = s.count;
    this.irqEnabled = s.irqEnabled;
    this.limiter.refill();
  }

  has(name: string): boolean {
    return typeof this.exports[name] === 'function';
  }

  // --- the exports, as the host calls them ---------------------------------------------------------

  probe(): number {
    return this.exports.probe() | 0;
  }

  remove(): void {
    this.exports.remove();
  }

  reset(): void {
    if (this.has('reset')) this.exports.reset();
  }

  /** Deliver a count the host loop observed (noteCount has accounted for it). */
  interrupt(count: number): void {
    this.shared.record(OP.interrupt, 0, 0, 0, count, 0);
    this.exports.interrupt(count);
  }

  /** Serve one request: returns response bytes, or a negative driver error code. */
  request(op: number, payload: Uint8Array): Uint8Array | number {
    if (payload.length > this.ioSize)
      throw new RangeError(`request of ${payload.length} bytes exceeds the driver's io buffer (${this.ioSize})`);
    new Uint8Array(this.memory.buffer, this.ioBuffer, this.ioSize).set(payload);
    this.shared.record(OP.request, 0, op, 0, payload.length, 0);
    this.shared.stats[STAT.requests]++;
    const r = this.exports.request(op, payload.length) | 0;
    if (r < 0) return r;
    if (r > this.ioSize)
      throw new FaultError(
        'abi-violation',
        `request ${op} returned ${r} bytes, more than the io buffer's ${this.ioSize}`,
      );
    return new Uint8Array(this.memory.buffer, this.ioBuffer, r).slice();
  }

  /** Saved state bytes, or undefined when the driver has no state_save (or refused). */
  saveState(): Uint8Array | undefined {
    if (!this.has('state_save')) return undefined;
    const r = this.exports.state_save() | 0;
    if (r < 0) return undefined;
    if (r > this.ioSize)
      throw new FaultError('abi-violation', `state_save returned ${r} bytes, more than the io buffer's ${this.ioSize}`);
    return new Uint8Array(this.memory.buffer, this.ioBuffer, r).slice();
  }

  /** 0 on success; < 0 when the driver refused the state; undefined when it has no state_restore. */
  restoreState(state: Uint8Array): number | undefined {
    if (!this.has('state_restore')) return undefined;
    if (state.length > this.ioSize) return -1;
    new Uint8Array(this.memory.buffer, this.ioBuffer, this.ioSize).set(state);
    return this.exports.state_restore(state.length) | 0;
  }

  /** Bytes of the driver's io buffer (requests, responses, saved state). */
  get ioBufferSize(): number {
    return this.ioSize;
  }

  /** The interrupt count the driver has seen. */
  get seenCount(): number {
    return this.lastCount;
  }

  set seenCount(c: number) {
    this.lastCount = c >>> 0;
  }

  get wantsInterrupts(): boolean {
    return this.irqEnabled;
  }

  /** Unmap the DMA windows (the memory stays valid: zero pages go back over them). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.windows) w.mapping.close();
    for (const m of this.gateMappings) m.close();
    this.gateMemory = undefined;
    this.gateMemories = [];
  }

  /**
   * Compile the register gate into the driver (inline-gate.ts): map the shared area and each
   * memory-backed region into memories of their own, rewrite the module so that its register imports
   * become internal checked accesses to them. Returns the compiled module, or undefined when there is
   * nothing to serve inline (no shared memfd, no register imports, no memory-backed region): then
   * every access goes through JavaScript.
   */
  private linkInlineGate(
    imports: Record<string, Function>,
    recordReads: boolean,
    out: Record<string, WebAssembly.Memory>,
  ): WebAssembly.Module | undefined {
    const shared = this.shared;
    const given = this.inlineGate;
    if (!given || shared.fd === undefined || !imports.reg_read32) return undefined;
    const page = this.native.pageSize();
    const up = (n: number) => Math.ceil(n / page) * page;
    // The worker's own view of what may be served inline must be the one the module was rewritten for.
    const layout = inlineLayout(
      this.session.regions.map((r) => ({ size: r.size, memory: r.sim < 0 })),
      this.grant,
      shared.entryCount,
      recordReads,
    );
    if (!layout || JSON.stringify(layout) !== JSON.stringify(given.layout)) return undefined;
    const regions = layout.regions;
    const rewritten = given.bytes as Uint8Array<ArrayBuffer>;
    const memoryOver = (bytesNeeded: number) => {
      const pages = Math.max(1, Math.ceil(bytesNeeded / PAGE));
      const m = new WebAssembly.Memory({ initial: pages, maximum: pages });
      this.gateMemories.push(m);
      return m;
    };
    const sharedMem = memoryOver(shared.byteLength);
    this.gateMappings.push(
      this.native.mapIntoBuffer(sharedMem.buffer, 0, shared.byteLength, shared.fd, 0, 'driver shared area'),
    );
    out[SHARED_IMPORT] = sharedMem;
    for (const r of regions) {
      const length = up(this.session.regions[r.index].size);
      const mem = memoryOver(length);
      const src = this.session.openRegionSource(r.index)!;
      try {
        this.gateMappings.push(this.native.mapIntoBuffer(mem.buffer, 0, length, src.fd, src.offset, src.path));
      } finally {
        if (src.owned) this.native.close(src.fd);
      }
      out[regionImport(r.index)] = mem;
    }
    let compiled: WebAssembly.Module;
    try {
      compiled = new WebAssembly.Module(rewritten);
    } catch (err) {
      throw new LoadError(
        `${this.label}: the module with the register gate compiled in does not compile (a host bug): ${(err as Error).message}`,
      );
    }
    this.gateKind = 'inline';
    this.gateRegions = regions.map((r) => r.index);
    return compiled;
  }

  /**
   * Route the register imports of memory-backed regions through the Wasm register gate (gate.ts).
   * Needs the shared area as a memfd (drivers in workers have one); otherwise every access stays in JS.
   */
  private linkGate(imports: Record<string, Function>, recordReads: boolean): void {
    const shared = this.shared;
    if (shared.fd === undefined || !imports.reg_read32) return;
    const page = this.native.pageSize();
    const up = (n: number) => Math.ceil(n / page) * page;
    const policies = this.session.regions.map((_, i) => this.grant.regions?.[i] ?? { read: true, write: true });
    const regions: GateRegion[] = [];
    let at = up(shared.byteLength);
    for (const [i, reg] of this.session.regions.entries()) {
      const p = policies[i];
      if (reg.sim >= 0 || (!p.read && !p.write)) continue;
      const size = Math.min(reg.size, p.size ?? reg.size);
      // The gate serves a region's writes only when none of them needs the checked path (needsSlowWrite).
      regions.push({ index: i, size, base: at, read: p.read, write: !regionHasCheckedWrites(p) });
      at += up(reg.size);
    }
    if (regions.length === 0) return;
    const pages = Math.ceil(at / PAGE);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    this.gateMappings.push(
      this.native.mapIntoBuffer(memory.buffer, 0, shared.byteLength, shared.fd, 0, 'driver shared area'),
    );
    for (const r of regions) {
      const src = this.session.openRegionSource(r.index)!;
      try {
        this.gateMappings.push(
          this.native.mapIntoBuffer(
            memory.buffer,
            r.base,
            up(this.session.regions[r.index].size),
            src.fd,
            src.offset,
            src.path,
          ),
        );
      } finally {
        if (src.owned) this.native.close(src.fd);
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
    this.gateMemory = memory;
    this.gateKind = 'instance';
    this.gateRegions = regions.map((r) => r.index);
  }

  // --- linking ------------------------------------------------------------------------------------------

  private mapWindows(): void {
    const dma = this.session.spec.dma;
    if (dma.length === 0) return;
    const page = this.native.pageSize();
    const area = this.exports.dma_area() >>> 0;
    const areaSize = this.exports.dma_area_size() >>> 0;
    if (area % page || areaSize % page || area + areaSize > this.memory.buffer.byteLength) {
      throw new LoadError(`${this.label}: dma_area ${area}+${areaSize} must be page-aligned and inside its memory`);
    }
    let at = area;
    for (const w of dma) {
      if (w.size % page)
        throw new LoadError(`${this.label}: DMA window ${w.name} size ${w.size} is not a multiple of the page size`);
      if (at + w.size > area + areaSize) {
        throw new LoadError(
          `${this.label}: DMA window ${w.name} (${w.size} bytes) does not fit in dma_area (${areaSize} bytes)`,
        );
      }
      const src = this.session.openDmaSource(w);
      try {
        const mapping = this.native.mapIntoBuffer(this.memory.buffer, at, w.size, src.fd, src.offset, src.path);
        this.windows.push({ addr: at, size: w.size, bus: w.bus, mapping });
      } finally {
        if (src.owned) this.native.close(src.fd);
      }
      at += w.size;
    }
  }

  private imports(): Record<string, Function> {
    const s = this.session;
    const shared = this.shared;
    const stats = shared.stats;
    const regions = s.regions;
    const nRegions = regions.length;
    const ports = s.ports;
    const nPorts = ports.length;
    const policies = regions.map((_, i) => this.grant.regions?.[i] ?? { read: true, write: true });
    const portPolicies = ports.map((_, i) => this.grant.ports?.[i] ?? { read: true, write: true });
    const checked = policies.map((p) => !p.read || regionHasCheckedWrites(p));
    const label = this.label;

    const where = (kind: string, r: number, off: number, width: number) =>
      `${kind} ${r} offset 0x${(off >>> 0).toString(16)} width ${width}`;

    const check = (
      r: number,
      off: number,
      width: number,
      n: number,
      kind: string,
      size: (r: number) => number,
    ): void => {
      if (r < 0 || r >= n)
        throw new FaultError('bad-region', `${label}: ${where(kind, r, off, width)}: no such ${kind} (granted: ${n})`);
      if (off + width > size(r)) {
        throw new FaultError(
          'register-out-of-bounds',
          `${label}: ${where(kind, r, off, width)}: beyond its ${size(r)} bytes`,
        );
      }
      if (off & (width - 1))
        throw new FaultError(
          'register-misaligned',
          `${label}: ${where(kind, r, off, width)}: not ${width}-byte aligned`,
        );
    };
    const granted = regions.map((reg, i) => Math.min(reg.size, policies[i].size ?? reg.size));
    const regionSize = (r: number) => granted[r];
    const windows = s.spec.dma
      .slice(0, this.grant.dmaWindows ?? s.spec.dma.length)
      .map((w) => ({ name: w.name, bus: w.bus, size: w.size }));
    const readBack =
      (r: number) =>
      (off: number, width: Width): bigint => {
        const reg = regions[r];
        if (reg.sim >= 0) return BigInt.asUintN(width * 8, BigInt(s.readSim(reg.sim, off, width)));
        return width === 8 ? reg.u64![off >>> 3] : BigInt(reg.u32![off >>> 2]);
      };
    const firewalls = policies.map((p, r) => {
      if (!p.dmaEngines?.length) return undefined;
      try {
        return new RegionFirewall(label, r, p.dmaEngines, granted[r], windows, readBack(r));
      } catch (err) {
        throw new LoadError(`${label}: region ${r}: ${(err as Error).message}`);
      }
    });
    const portSize = (r: number) => ports[r].size;

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
      // Last: the firewall commits the write to its shadow only once nothing else refuses it.
      firewalls[r]?.write(off, width as Width, value);
    };

    // The hot path: one bounds/alignment test inline, the fault built on a cold path; one typed-array
    // access of the access's width (never DataView: it tears); the stats and recorder writes inline.
    const fail = (r: number, off: number, width: number): never => {
      check(r, off, width, nRegions, 'region', regionSize);
      throw new Error('unreachable: check() passed a failing access');
    };
    const views = regions.map((reg) => ({ sim: reg.sim, u8: reg.u8, u16: reg.u16, u32: reg.u32 }));
    const makeRead = (width: 1 | 2 | 4) => {
      const shift = width >>> 1;
      return (r: number, off: number): number => {
        off >>>= 0;
        if (r >>> 0 >= nRegions || off + width > granted[r] || off & (width - 1)) fail(r, off, width);
        if (checked[r]) policyCheck(r, off, width, 0n, false);
        const view = views[r];
        let v: number;
        if (view.sim >= 0) v = Number(s.readSim(view.sim, off, width));
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
        if (r >>> 0 >= nRegions || off + width > granted[r] || off & (width - 1)) fail(r, off, width);
        const v = width === 4 ? value >>> 0 : value & (width === 2 ? 0xffff : 0xff);
        if (checked[r]) policyCheck(r, off, width, BigInt(v), true);
        const view = views[r];
        shared.record(OP.write, r, off, width, v, 0);
        stats[1]++; // STAT.regWrites
        if (view.sim >= 0) s.writeSim(view.sim, off, width, v);
        else if (width === 4) view.u32![off >>> 2] = v;
        else if (width === 2) view.u16![off >>> 1] = v;
        else view.u8![off] = v;
      };
    const read64 = (r: number, off: number): bigint => {
      off >>>= 0;
      check(r, off, 8, nRegions, 'region', regionSize);
      if (checked[r]) policyCheck(r, off, 8, 0n, false);
      const reg = regions[r];
      const v = reg.sim >= 0 ? BigInt.asUintN(64, BigInt(s.readSim(reg.sim, off, 8))) : reg.u64![off >>> 3];
      stats[STAT.regReads]++;
      shared.record(OP.read, r, off, 8, Number(v & 0xffffffffn), Number(v >> 32n));
      return BigInt.asIntN(64, v);
    };
    const write64 = (r: number, off: number, value: bigint): void => {
      off >>>= 0;
      check(r, off, 8, nRegions, 'region', regionSize);
      const v = BigInt.asUintN(64, value);
      if (checked[r]) policyCheck(r, off, 8, v, true);
      const reg = regions[r];
      shared.record(OP.write, r, off, 8, Number(v & 0xffffffffn), Number(v >> 32n));
      stats[STAT.regWrites]++;
      if (reg.sim >= 0) s.writeSim(reg.sim, off, 8, v);
      else reg.u64![off >>> 3] = v;
    };

    const native = this.native;
    const portIn =
      (width: 1 | 2 | 4) =>
      (r: number, off: number): number => {
        off >>>= 0;
        check(r, off, width, nPorts, 'port region', portSize);
        if (!portPolicies[r].read)
          throw new FaultError(
            'access-denied',
            `${label}: ${where('port region', r, off, width)}: the grant does not allow in`,
          );
        const p = ports[r];
        let v: number;
        if (p.sim >= 0) {
          s.tick();
          v = s.model!.portIn!(p.sim, off, width);
          s.checkGuestErrors();
        } else {
          const port = p.base + off;
          v = width === 1 ? native.inb(port) : width === 2 ? native.inw(port) : native.inl(port);
        }
        stats[STAT.portIns]++;
        shared.record(OP.in, r, off, width, v, 0);
        return v | 0;
      };
    const portOut =
      (width: 1 | 2 | 4) =>
      (r: number, off: number, value: number): void => {
        off >>>= 0;
        check(r, off, width, nPorts, 'port region', portSize);
        if (!portPolicies[r].write)
          throw new FaultError(
            'access-denied',
            `${label}: ${where('port region', r, off, width)}: the grant does not allow out`,
          );
        const v = width === 4 ? value >>> 0 : value & (width === 2 ? 0xffff : 0xff);
        shared.record(OP.out, r, off, width, v, 0);
        stats[STAT.portOuts]++;
        const p = ports[r];
        if (p.sim >= 0) {
          s.tick();
          s.model!.portOut!(p.sim, off, width, v);
          s.checkGuestErrors();
        } else {
          const port = p.base + off;
          if (width === 1) native.outb(port, v);
          else if (width === 2) native.outw(port, v);
          else native.outl(port, v);
        }
      };

    const windowIndex = (w: number): Window => {
      const win = this.windows[w];
      if (!win)
        throw new FaultError(
          'bad-region',
          `${label}: DMA window ${w}: no such window (granted: ${this.windows.length})`,
        );
      return win;
    };

    const all: Record<ImportGroup, Record<string, Function>> = {
      registers: {
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
      },
      ports: {
        port_count: () => nPorts,
        port_size: (r: number) => {
          if (r < 0 || r >= nPorts)
            throw new FaultError('bad-region', `${label}: port region ${r}: no such port region (granted: ${nPorts})`);
          return ports[r].size;
        },
        io_in8: portIn(1),
        io_in16: portIn(2),
        io_in32: portIn(4),
        io_out8: portOut(1),
        io_out16: portOut(2),
        io_out32: portOut(4),
      },
      irq: {
        irq_wait: (timeoutUs: number) => this.irqWait(timeoutUs >>> 0),
        irq_count: () => this.lastCount | 0,
        irq_enable: () => {
          this.irqEnabled = true;
        },
        irq_disable: () => {
          this.irqEnabled = false;
        },
      },
      dma: {
        dma_window_count: () => this.windows.length,
        dma_window_addr: (w: number) => windowIndex(w).addr,
        dma_window_size: (w: number) => windowIndex(w).size,
        dma_window_bus: (w: number) => BigInt.asIntN(64, windowIndex(w).bus),
      },
      services: {
        log: (level: number, ptr: number, len: number) => this.log(level, ptr >>> 0, len >>> 0),
        // In virtual time each clock read costs 1 us of device time, so polling loops make progress.
        clock_ns: s.virtual
          ? () => {
              s.advance(s.now() + s.clockStepNs);
              return BigInt(Math.floor(s.now()));
            }
          : s.monotonic
            ? () => process.hrtime.bigint() // the same clock as monotonicNs(), without a round trip through Number
            : () => BigInt(Math.floor(s.now())),
        sleep_us: (us: number) => this.sleep(us >>> 0),
        panic: (ptr: number, len: number) => {
          throw new FaultError(
            'panic',
            `${label}: panic: ${this.string(ptr >>> 0, Math.min(len >>> 0, MAX_LOG_BYTES))}`,
          );
        },
      },
    };
    const allowed = this.grant.imports ?? (Object.keys(IMPORTS) as ImportGroup[]);
    const out: Record<string, Function> = {};
    for (const g of allowed) Object.assign(out, all[g]);
    return out;
  }

  private string(ptr: number, len: number): string {
    if (ptr + len > this.memory.buffer.byteLength) {
      throw new FaultError('abi-violation', `${this.label}: string at ${ptr}+${len} lies outside its memory`);
    }
    return new TextDecoder().decode(new Uint8Array(this.memory.buffer, ptr, len));
  }

  private log(level: number, ptr: number, len: number): void {
    this.limiter.charge('log message');
    this.shared.stats[STAT.logs]++;
    const msg = this.string(ptr, Math.min(len, MAX_LOG_BYTES));
    this.hooks.log(LOG_LEVELS[Math.max(0, Math.min(3, level))], msg);
  }

  /**
   * Wait for the interrupt count to advance (irq_wait). Re-arms the line first when the backend
   * masks on each event. Runs the simulated device's deferred work while waiting.
   */
  private irqWait(timeoutUs: number): number {
    if (this.shared.stopRequested) return WAIT_CANCELLED;
    const irq = this.session.irq;
    if (!irq || !this.irqEnabled) return this.sleep(timeoutUs) === WAIT_CANCELLED ? WAIT_CANCELLED : WAIT_TIMEOUT;
    if (irq.needsRearm) irq.rearm();
    if (this.session.virtual) return this.irqWaitVirtual(irq, timeoutUs);
    const fds = (this.waitFds ??= new Int32Array(
      this.session.kickFd >= 0 ? [irq.fd, this.cancelFd, this.session.kickFd] : [irq.fd, this.cancelFd],
    ));
    const model = this.session.model !== null;
    const deadline = this.session.now() + timeoutUs * 1000;
    for (;;) {
      let waitNs = deadline - this.session.now();
      if (model) {
        this.session.tick();
        waitNs = Math.min(deadline - this.session.now(), this.session.untilNextEvent());
      }
      // poll() takes milliseconds: sub-millisecond waits for device work poll without blocking.
      const ms = waitNs >= 1e6 ? Math.floor(waitNs / 1e6) : 0;
      // The hot path: one native call polls and reads the count (pollRead); otherwise poll, then consume.
      const bits = irq.readWidth
        ? this.native.pollRead(fds, ms, irq.readWidth, this.readOut)
        : this.native.poll(fds, ms);
      if (bits & 2 || this.shared.stopRequested) return WAIT_CANCELLED;
      if (bits & 4) this.session.kicked();
      if (bits & 0x80000000 || ((bits & 1 || bits & 4) && !irq.readWidth)) {
        const count = bits & 0x80000000 ? irq.absorb(this.readOut[0]) : irq.consume();
        if (count !== this.lastCount) {
          this.noteCount(count);
          return WAIT_INTERRUPT;
        }
      }
      if (this.session.now() >= deadline) return WAIT_TIMEOUT;
    }
  }

  /** irq_wait in virtual time: check the line, else jump to the next device event or the timeout. */
  private irqWaitVirtual(irq: NonNullable<DeviceSession['irq']>, timeoutUs: number): number {
    const s = this.session;
    const deadline = s.now() + timeoutUs * 1000;
    for (;;) {
      s.tick();
      if (this.shared.stopRequested) return WAIT_CANCELLED;
      // Virtual sessions run in the caller's thread: the count itself says whether the line fired.
      const count = irq.consume();
      if (count !== this.lastCount) {
        this.noteCount(count);
        return WAIT_INTERRUPT;
      }
      const next = s.now() + s.untilNextEvent();
      if (next > deadline) {
        s.advance(deadline);
        return WAIT_TIMEOUT;
      }
      s.advance(next);
    }
  }

  /** Account for a new count seen (by irq_wait or by the host loop): coalesced events are counted, never hidden. */
  noteCount(count: number): void {
    const delta = (count - this.lastCount) >>> 0;
    if (delta > 1) this.shared.stats[STAT.coalesced] += delta - 1;
    this.lastCount = count >>> 0;
    this.shared.record(OP.irq, 0, 0, 0, count, 0);
    this.shared.stats[STAT.interrupts]++;
  }

  private sleep(us: number): number {
    if (this.shared.stopRequested) return WAIT_CANCELLED;
    if (this.session.virtual) {
      this.session.advance(this.session.now() + us * 1000);
      return 0;
    }
    const fds = new Int32Array([this.cancelFd]);
    const deadline = this.session.now() + us * 1000;
    for (;;) {
      this.session.tick();
      const left = deadline - this.session.now();
      if (left <= 0) return 0;
      const bits = this.native.poll(fds, left >= 1e6 ? Math.floor(left / 1e6) : 0);
      if (bits || this.shared.stopRequested) return WAIT_CANCELLED;
    }
  }
}
