// One driver instance (after wasmtime's Store): a PreparedDriver (linker.ts) instantiated over a
// device session, with its memory, DMA windows, register gate and interrupt state.
//
// The host functions are one file per WIT interface: registers.ts, ports.ts, interrupts.ts, dma.ts,
// services.ts; gate-link.ts puts the register gate in front of them. Checks throw FaultError; the
// caller turns what escapes a call into a typed Fault.
//
// This class runs wherever it is given a session: in a driver's worker (host/sandbox/worker.ts) or
// in-process (the fuzzer). It never blocks except in irq_wait / sleep_us, which watch `cancelFd`.

import { ABI_VERSION, ABI_VERSION_GLOBAL, type ImportGroup, type LogLevel } from '../abi.ts';
import { FaultError, LoadError, classify, type MemoryUse } from '../faults.ts';
import { grantedImports, type Grant, type Limits } from '../grant.ts';
import { loadNative } from '../native.ts';
import type { WasmInfo } from '../wasm/read.ts';
import { dmaImports, mapWindows, type DmaWindow } from './dma.ts';
import { GateLink, type GateKind } from './gate-link.ts';
import type { GateMode } from './gate.ts';
import type { HostContext } from './host-context.ts';
import { GATE_MODULE, type InlineGateBytes } from './inline-gate.ts';
import { Interrupts } from './interrupts.ts';
import { EventLimiter } from './limiter.ts';
import { GROW_REFUSED_EXPORT, START_EXPORT } from './memory-grow.ts';
import { prepare, shapeOf, type PreparedDriver } from './linker.ts';
import { portImports } from './ports.ts';
import { RingGuard, type RingsState } from './ring-hook.ts';
import { registerImports } from './registers.ts';
import { serviceImports } from './services.ts';
import type { HostImports } from '../abi.ts';
import type { DeviceSession } from './session.ts';
import { type DriverShared, OP, STAT } from './shared.ts';
import type { IrqWaitKind } from './protocol.ts';

export { checkModule } from './linker.ts';

export interface InstanceHooks {
  log(level: LogLevel, message: string): void;
}

export interface InstanceOptions {
  hooks: InstanceHooks;
  cancelFd: number;
  /** Hot reload: start from this interrupt count instead of reading the device's. */
  inheritCount?: number;
  /** How memory-backed registers are served (gate.ts). Default 'record-all'. */
  gate?: GateMode;
  /** irq_wait may be the native wait where the session allows it (interrupts.ts). Default true. */
  nativeWait?: boolean;
  /** The driver's event limiter, shared with its session's guest errors (default: a new one for this instance). */
  limiter?: EventLimiter;
  /** More import modules (the fuzzer's probe module); the prepared module must then be the uninstrumented one's check. */
  extraImports?: Record<string, WebAssembly.ModuleImports>;
  /** The prepared bytes with the register gate compiled in (inline-rewrite.ts, made by the main thread). */
  inlineGate?: InlineGateBytes;
  /** The previous instance's descriptor-firewall rings (a reload or rollback): taken over, not emptied. */
  rings?: RingsState;
}

const PAGE = 65536;

export class DriverInstance {
  readonly memory: WebAssembly.Memory;
  readonly info: WasmInfo;
  readonly label: string;
  readonly module: WebAssembly.Module;
  readonly limits: Limits;
  private readonly grant: Grant;
  private readonly maxPages: number;
  private exports: Record<string, any> = {};
  private readonly windows: DmaWindow[] = [];
  private readonly gate: GateLink;
  private readonly irq: Interrupts;
  /** Charged for every log call (and, in a worker, every guest error the device reports): limiter.ts. */
  private readonly limiter: EventLimiter;
  private ioBuffer = 0;
  private ioSize = 0;
  private closed = false;
  /** The descriptor firewall (ring-hook.ts), once the windows are mapped; shared with the interface files. */
  private readonly rings: { guard?: RingGuard } = {};

  private constructor(
    prepared: PreparedDriver,
    readonly session: DeviceSession,
    readonly shared: DriverShared,
    opts: InstanceOptions,
  ) {
    const { label, limits } = prepared;
    this.label = label;
    this.module = prepared.module;
    this.info = prepared.info;
    this.grant = prepared.grant;
    this.limits = limits;
    this.limiter = opts.limiter ?? new EventLimiter(label, limits.logPerSec, limits.logBurst);
    const memImport = this.info.imports.find((i) => i.desc.kind === 'memory')!;
    const min = memImport.desc.kind === 'memory' ? memImport.desc.min : 1;
    const declaredMax = memImport.desc.kind === 'memory' ? memImport.desc.max : undefined;
    const maximum = Math.min(limits.memoryPages, declaredMax ?? limits.memoryPages);
    this.maxPages = maximum;
    this.memory = new WebAssembly.Memory({ initial: min, maximum });
    const ctx: HostContext = {
      label,
      session,
      shared,
      grant: this.grant,
      memory: this.memory,
      native: loadNative(),
      cancelFd: opts.cancelFd,
      rings: this.rings,
    };
    this.irq = new Interrupts(ctx, opts.inheritCount, opts.nativeWait ?? true);
    this.gate = new GateLink(ctx);
    try {
      const all: { [G in ImportGroup]: HostImports<G> } = {
        registers: registerImports(ctx),
        ports: portImports(ctx),
        irq: this.irq.imports(),
        dma: dmaImports(label, this.windows),
        services: serviceImports(ctx, this.limiter, (level, message) => opts.hooks.log(level, message)),
      };
      const imports: Record<string, Function> = {};
      for (const g of grantedImports(this.grant)) Object.assign(imports, all[g]);
      const compiled = this.gate.link(imports, opts.gate ?? 'record-all', this.module, opts.inlineGate);
      let instance: WebAssembly.Instance;
      try {
        instance = new WebAssembly.Instance(compiled, {
          ...opts.extraImports,
          wasmdrv: imports,
          env: { memory: this.memory },
          [GATE_MODULE]: this.gate.gateImports,
        } as WebAssembly.Imports);
      } catch (err) {
        if (err instanceof WebAssembly.LinkError) throw new LoadError(`${label}: ${err.message}`);
        throw err; // a trap in the start function: a fault in phase 'load'
      }
      this.exports = instance.exports as Record<string, any>;
      this.exports[START_EXPORT]?.(); // the start function, moved out of instantiation by memory-grow.ts
      const version = (this.exports[ABI_VERSION_GLOBAL] as WebAssembly.Global).value;
      if (version !== ABI_VERSION)
        throw new LoadError(`${label}: built for ABI v${version}, this host speaks v${ABI_VERSION}`);
      this.ioBuffer = this.exports.io_buffer() >>> 0;
      this.ioSize = this.exports.io_buffer_size() >>> 0;
      if (this.ioBuffer + this.ioSize > this.memory.buffer.byteLength) {
        throw new LoadError(`${label}: io_buffer ${this.ioBuffer}+${this.ioSize} lies outside its memory`);
      }
      mapWindows(ctx, this.exports, this.windows);
      const guard = new RingGuard(
        label,
        session,
        this.grant,
        this.windows,
        this.memory,
        ctx.native,
        opts.rings,
        (why) => opts.hooks.log('warn', why),
        this.gate.ringsMemory,
      );
      if (guard.on) {
        this.rings.guard = guard;
        this.irq.ringsGuarded();
      }
    } catch (err) {
      // Nothing stays half-linked: the gate's and the windows' mappings go before the error leaves.
      this.close();
      const c = classify(err, this.memoryUse); // no instance for the caller to ask: a refused grow says so here
      throw c.kind === 'memory-limit' ? new FaultError(c.kind, c.message) : err;
    }
  }

  /** Instantiate a prepared driver (linker.ts) over a session: the restart and reload path. */
  static instantiate(
    prepared: PreparedDriver,
    session: DeviceSession,
    shared: DriverShared,
    opts: InstanceOptions,
  ): DriverInstance {
    return new DriverInstance(prepared, session, shared, opts);
  }

  /** Prepare (check, compile) and instantiate in one step. Throws LoadError for a module that cannot be loaded. */
  static create(
    label: string,
    bytes: Uint8Array,
    session: DeviceSession,
    shared: DriverShared,
    opts: InstanceOptions & {
      grant?: Grant;
      limits?: Partial<Limits>;
      module?: WebAssembly.Module;
      /** The result of checkModule for these bytes under this grant, when the caller already has it (the fuzzer). */
      checked?: WasmInfo;
    },
  ): DriverInstance {
    const prepared = prepare(label, bytes, shapeOf(session), opts.grant, opts.limits, {
      module: opts.module,
      checked: opts.checked,
    });
    return new DriverInstance(prepared, session, shared, opts);
  }

  /** Regions the gate serves without calling JavaScript (for status and tests). */
  get gateRegions(): number[] {
    return this.gate.regions;
  }

  /** How the gate is linked: 'inline' (compiled into the driver: inline-gate.ts), 'instance' (gate.ts), 'off'. */
  get gateKind(): GateKind {
    return this.gate.kind;
  }

  /** Whether irq_wait is the native wait or the JavaScript one (interrupts.ts). */
  get irqWaitKind(): IrqWaitKind {
    return this.irq.waitKind;
  }

  /** How full linear memory is, and the pages of a refused memory.grow (memory-grow.ts), for classify. */
  get memoryUse(): MemoryUse {
    const refused = this.exports[GROW_REFUSED_EXPORT] as WebAssembly.Global | undefined;
    return {
      bytes: this.memory.buffer.byteLength,
      maxBytes: this.maxPages * PAGE,
      refusedPages: refused ? refused.value >>> 0 : undefined,
    };
  }

  /** The instance's exports, for the fuzzer's coverage and fuel globals. */
  exportsForFuzz(): Record<string, WebAssembly.Global> {
    return this.exports as Record<string, WebAssembly.Global>;
  }

  /** Program the descriptor firewall's rings afresh (after the host's own reset sequence wrote the device). */
  restartRings(): void {
    this.rings.guard?.restart();
  }

  /** The descriptor firewall's rings (undefined when it is off), for the next instance. */
  ringState(): RingsState | undefined {
    return this.rings.guard?.state();
  }

  /** The host-side state a snapshot of the instance must capture (the fuzzer's snapshot restore). */
  fuzzState(): { count: number; irqEnabled: boolean } {
    return { count: this.irq.lastCount, irqEnabled: this.irq.enabled };
  }

  restoreFuzzState(s: { count: number; irqEnabled: boolean }): void {
    this.irq.lastCount = s.count;
    this.irq.enabled = s.irqEnabled;
    this.limiter.refill();
    const refused = this.exports[GROW_REFUSED_EXPORT] as WebAssembly.Global | undefined;
    if (refused) refused.value = 0; // a refused grow of the last run is not this one's
  }

  /** Account for a count the host loop observed (interrupts.ts). */
  noteCount(count: number): void {
    this.irq.noteCount(count);
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
    this.rings.guard?.sync();
    this.exports.interrupt(count);
  }

  /** Serve one request: returns response bytes, or a negative driver error code. */
  request(op: number, payload: Uint8Array): Uint8Array | number {
    if (payload.length > this.ioSize)
      throw new RangeError(`request of ${payload.length} bytes exceeds the driver's io buffer (${this.ioSize})`);
    new Uint8Array(this.memory.buffer, this.ioBuffer, this.ioSize).set(payload);
    this.shared.record(OP.request, 0, op, 0, payload.length, 0);
    this.shared.stats[STAT.requests]++;
    this.rings.guard?.sync();
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
    return this.irq.lastCount;
  }

  set seenCount(c: number) {
    this.irq.lastCount = c >>> 0;
  }

  get wantsInterrupts(): boolean {
    return this.irq.enabled;
  }

  /** Unmap the DMA windows and the gate's mappings (the memory stays valid: zero pages go back over them). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.windows) w.mapping.close();
    this.rings.guard?.close();
    this.gate.close();
  }
}
