// The fuzzing engine: one input → one execution of the driver in the sandbox, in virtual device time.
//
// Persistent mode, as AFL++'s: one instance of the instrumented driver per Executor (per fuzzing
// thread), reset between executions by restoring a snapshot (linear memory, the driver's mutable
// globals, the device model's state, device time, the instance's interrupt bookkeeping). Two
// snapshots: `fresh` (instantiated, nothing called) and `probed` (after a probe against the device
// with no fuzzed values). The device session, the DMA mapping and the shared area are made once.
// Only an execution that grows linear memory costs a new instance (V8 cannot shrink a memory).
// What an input means: host/fuzz/input.ts. Every call (probe, each request, each interrupt...) gets its own fuel: loop iterations before it
// counts as a hang (`deadline`). Coverage and comparison operands come from the probe module
// (host/fuzz/instrument.ts); the grant, when given, is enforced as under `wasmdrv run`.

import { loadNative } from '../native.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { SIM_IRQ_BYTES } from '../sim/irq.ts';
import { DEFAULT_LIMITS, type Grant, type Limits } from '../grant.ts';
import { checkModule, DriverInstance } from '../sandbox/instance.ts';
import { checkedGrow } from '../sandbox/memory-grow.ts';
import type { WasmInfo } from '../wasm/read.ts';
import { DeviceSession } from '../sandbox/session.ts';
import { DriverShared } from '../sandbox/shared.ts';
import { PROBE_MODULE, type Instrumented } from './instrument.ts';
import { type FuzzDevice, MODEL_DICTIONARY } from '../sim/fuzz.ts';
import { simModelClass } from '../sim/registry.ts';
import { Coverage, readComparisons } from './coverage.ts';
import { type Crash, crashOf } from './crash.ts';
import { fuzzDeviceSpec } from './device.ts';
import { isFrame, parseInput, skipEvent, slice } from './input.ts';
import { copyChunks, hostChunks, type Snapshot } from './snapshot.ts';

export { type Crash, type CrashKind, crashKey } from './crash.ts';

export interface ExecResult {
  /** Set when the execution ended in a fault (or a refused load): kind and where. */
  crash?: Crash;
  /** Coverage map entries (edge × hit-count bucket) this execution reached first. */
  fresh: number;
  /** Coverage map entries this execution touched. */
  edges: number;
}

export interface ExecutorOptions {
  /** The grant to enforce (a package's manifest grant); default: everything the device offers. */
  grant?: Grant;
  limits?: Partial<Limits>;
  /** Loop iterations per driver call before it is a hang. Default DEFAULT_FUEL. */
  fuel?: number;
  /** Request ops never made (a manifest's `fuzz.skipRequests`: bench-only ops that run for wall-clock time). */
  skipRequests?: number[];
}

/** Loop iterations one driver call may run before it counts as a hang (a `deadline` fault). */
export const DEFAULT_FUEL = 2_000;

export class Executor {
  readonly sites: number;
  readonly mapSize: number;
  readonly dictionary: number[];
  /** Driver calls made, for the profile. */
  calls = 0;
  /** The driver's state_save after the clean probe (undefined without state_save). */
  savedState?: Uint8Array;
  /** Executions that needed a new instance (linear memory grew). */
  rebuilds = 0;
  private readonly module: WebAssembly.Module;
  private readonly probeModule: WebAssembly.Module;
  private readonly inst: Instrumented;
  private readonly shared = new DriverShared(DriverShared.create(16));
  private readonly irqFd: number;
  private readonly cancelFd: number;
  private readonly dmaFd: number;
  private readonly dmaBytes: Uint8Array;
  private readonly spec: DeviceSpec;
  private readonly stateBytes: Uint8Array;
  private readonly irqWords: Int32Array;
  private readonly session: DeviceSession;
  private readonly device: FuzzDevice;
  private readonly fuel: number;
  private readonly grant: Grant;
  private readonly limits: Partial<Limits>;
  private checked?: WasmInfo;
  private driver!: DriverInstance;
  private probe!: WebAssembly.Instance;
  private fuelGlobal!: WebAssembly.Global;
  private epochGlobal!: WebAssembly.Global;
  private prevGlobal!: WebAssembly.Global;
  private map!: Uint8Array;
  private touched!: Uint32Array;
  private dirtyGlobal!: WebAssembly.Global;
  private dshift = 16;
  private hostChunks = 0n;
  private dmaChunks = 0n;
  /** The snapshot the memory now differs from only in dirty chunks; undefined: unknown (copy all). */
  private lastRestored?: Snapshot;
  /** Bytes copied by restores, for the profile. */
  restoredBytes = 0;
  private touchedGlobal!: WebAssembly.Global;
  private hangGlobal!: WebAssembly.Global;
  private cmpView!: DataView;
  private globals: WebAssembly.Global[] = [];
  private fresh!: Snapshot;
  private probed?: Snapshot;
  private epoch = 0;
  private readonly coverage: Coverage;
  /** Bit k set: request op k is not made. */
  private readonly skipOps: number;
  private loadError?: Crash;
  private callFuel = 0;

  constructor(
    inst: Instrumented,
    readonly model: string,
    o: ExecutorOptions = {},
  ) {
    this.inst = inst;
    this.sites = inst.sites;
    this.mapSize = inst.mapSize;
    this.coverage = new Coverage(inst.mapSize);
    this.skipOps = (o.skipRequests ?? []).reduce((m, op) => m | (1 << (op & 0x0f)), 0);
    this.fuel = o.fuel ?? DEFAULT_FUEL;
    this.quickFuel = Math.max(32, this.fuel >> 5);
    this.grant = o.grant ?? {};
    this.limits = o.limits ?? {};
    const dict = new Set<number>();
    for (const v of [...(MODEL_DICTIONARY[model] ?? []), ...inst.dictionary]) if (typeof v === 'number') dict.add(v);
    this.dictionary = [...dict];
    this.module = new WebAssembly.Module(checkedGrow(inst.bytes, 'fuzz')); // as every load has it: memory-grow.ts
    this.probeModule = new WebAssembly.Module(inst.probe as Uint8Array<ArrayBuffer>);
    const native = loadNative();
    const desc = simModelClass('fuzz').describe({ inner: model, stream: new Uint8Array() });
    const dmaSize = desc.dma[0]?.size ?? 0;
    this.irqFd = native.eventfdCreate(0);
    this.cancelFd = native.eventfdCreate(0);
    this.dmaFd = dmaSize ? native.memfdCreate('wasmdrv-fuzz-dma', dmaSize) : -1;
    this.dmaBytes = dmaSize ? new Uint8Array(native.mapFd(this.dmaFd, dmaSize, 0).buffer()) : new Uint8Array();
    const state = new SharedArrayBuffer(SIM_IRQ_BYTES + desc.stateBytes);
    this.stateBytes = new Uint8Array(state);
    this.irqWords = new Int32Array(state, 0, SIM_IRQ_BYTES / 4);
    this.spec = fuzzDeviceSpec(model, { dmaFd: this.dmaFd, irqFd: this.irqFd, state });
    // 1 ms of device time per clock read: a driver's poll with a 1 s timeout gives up after 1,000 reads.
    this.session = new DeviceSession(this.spec, { virtual: true, clockStepNs: 1_000_000 });
    this.device = this.session.model as FuzzDevice;
    this.build();
  }

  /** The device spec the driver sees (for a package's grantFor). */
  get deviceSpec(): DeviceSpec {
    return this.spec;
  }

  /** A new instance and its two snapshots. */
  private build(): void {
    this.driver?.close();
    this.loadError = undefined;
    this.stateBytes.fill(0);
    this.session.setVirtualNow(1_000_000);
    this.probe = new WebAssembly.Instance(this.probeModule, {});
    const px = this.probe.exports as Record<string, WebAssembly.Global & WebAssembly.Memory>;
    this.touchedGlobal = px.ntouched;
    this.epochGlobal = px.epoch;
    this.prevGlobal = px.prev;
    const buf = (px.memory as WebAssembly.Memory).buffer;
    this.map = new Uint8Array(buf, 0, this.mapSize);
    this.touched = new Uint32Array(buf, this.mapSize, this.mapSize);
    this.cmpView = new DataView(buf, 5 * this.mapSize);
    const limits: Partial<Limits> = { memoryPages: 64, ...this.limits, logBurst: 1e12, logPerSec: 1e12 };
    try {
      this.checked ??= checkModule(
        this.inst.original,
        { regions: this.spec.regions, ports: this.spec.ports, dmaCount: this.spec.dma.length, hasIrq: true },
        this.grant,
        { ...DEFAULT_LIMITS, ...limits },
        'fuzz',
      );
      this.driver = DriverInstance.create('fuzz', this.inst.bytes, this.session, this.shared, {
        module: this.module,
        checked: this.checked,
        cancelFd: this.cancelFd,
        grant: this.grant,
        hooks: { log: () => {} },
        // log-flood depends on wall-clock time: off, so that a run replays exactly
        limits,
        extraImports: { [PROBE_MODULE]: this.probe.exports },
      });
    } catch (err) {
      // A module this host refuses (or whose start function traps) is one crash for every input.
      this.loadError = this.crashOf(err);
      return;
    }
    const ex = this.driver.exportsForFuzz();
    this.fuelGlobal = ex.__fuel;
    this.hangGlobal = ex.__hang;
    this.dirtyGlobal = ex.__dirty;
    // Chunks of 2^shift bytes, at most 64 over the whole memory (one bit each in __dirty).
    const bytes = this.driver.memory.buffer.byteLength;
    this.dshift = Math.max(12, Math.ceil(Math.log2(bytes / 64)));
    ex.__dshift.value = this.dshift;
    const fx = ex as unknown as Record<string, () => number>;
    ({ host: this.hostChunks, dma: this.dmaChunks } = hostChunks(fx, this.spec.dma[0]?.size ?? 0, this.dshift));
    this.globals = this.inst.globals.map((n) => ex[n]);
    this.fresh = this.snapshot();
    this.probed = undefined;
    this.device.load(new Uint8Array(), 0);
    try {
      this.fuelGlobal.value = this.fuel;
      if (this.driver.probe() === 0) {
        this.probed = this.snapshot();
        // What a reload would hand the next version: a seed for state_restore (mode 3) inputs.
        this.fuelGlobal.value = this.fuel;
        this.savedState = this.driver.saveState();
        this.lastRestored = undefined;
      }
    } catch {
      /* the clean probe failed: every execution starts fresh */
    }
  }

  private snapshot(): Snapshot {
    this.lastRestored = undefined;
    return {
      memory: new Uint8Array(this.driver.memory.buffer.slice(0)),
      globals: this.globals.map((g) => g.value),
      state: this.stateBytes.slice(),
      now: this.session.now(),
      host: this.driver.fuzzState(),
    };
  }

  private restore(s: Snapshot): void {
    const mem = this.driver.memory.buffer;
    if (mem.byteLength !== s.memory.length) {
      // The last execution grew the memory: a new instance (V8 cannot shrink one).
      this.rebuilds++;
      this.build();
      return this.restore(s === this.fresh || !this.probed ? this.fresh : this.probed);
    }
    const u8 = new Uint8Array(mem);
    if (!this.inst.tracksStores || this.lastRestored !== s) {
      u8.set(s.memory);
      this.restoredBytes += s.memory.length;
    } else {
      // Only what the last execution may have written: the driver's stores (the __dirty bits), the
      // host's own writes, and the whole DMA window when the device wrote into it.
      let dirty = BigInt.asUintN(64, this.dirtyGlobal.value as bigint) | this.hostChunks;
      if (this.device.dmaWritten) dirty |= this.dmaChunks;
      this.restoredBytes += copyChunks(u8, s.memory, dirty, this.dshift);
    }
    this.dirtyGlobal.value = 0n;
    this.device.dmaWritten = false;
    this.lastRestored = s;
    for (let i = 0; i < this.globals.length; i++) this.globals[i].value = s.globals[i];
    this.stateBytes.set(s.state);
    this.session.setVirtualNow(s.now);
    this.driver.restoreFuzzState(s.host);
  }

  /**
   * Run one input. Every call first gets a short budget (fuel / 8): a run that spends it at a
   * hang site already known is that known hang (not run again); otherwise it is run again with the
   * full budget, and a hang there becomes a known site.
   */
  run(input: Uint8Array): ExecResult {
    if (this.quickFuel >= this.fuel) return this.runWith(input, this.fuel);
    const quick = this.runWith(input, this.quickFuel);
    if (quick.crash?.kind !== 'deadline') return quick;
    if (this.knownHangs.has(quick.crash.location)) {
      this.knownHangRuns++;
      return quick;
    }
    this.coverage.rollback();
    const full = this.runWith(input, this.fuel);
    if (full.crash?.kind === 'deadline') this.knownHangs.add(full.crash.location);
    return full;
  }

  /** Hang sites seen with the full budget. */
  readonly knownHangs = new Set<string>();
  knownHangRuns = 0;
  private readonly quickFuel: number;

  private runWith(input: Uint8Array, fuel: number): ExecResult {
    this.callFuel = fuel;
    if (this.loadError) return { crash: this.loadError, fresh: 0, edges: 0 };
    const frames = this.device.receivesFrames;
    const { mode, events, state, eventsAt, dmaAt, dmaLen, streamAt } = parseInput(input, !!this.probed, frames);
    this.restore(mode < 2 ? this.probed! : this.fresh);
    if (this.loadError) return { crash: this.loadError, fresh: 0, edges: 0 };
    // The DMA bytes replace the window's first bytes (the restore put back the snapshot's).
    if (this.dmaBytes.length && dmaLen) this.dmaBytes.set(slice(input, dmaAt, dmaLen), 0);
    this.device.load(input, streamAt);
    this.prevGlobal.value = 0;
    this.epochGlobal.value = ++this.epoch;
    const result: ExecResult = { fresh: 0, edges: 0 };
    const d = this.driver;
    try {
      let ok = true;
      if (mode === 2) {
        this.fuelGlobal.value = fuel;
        this.calls++;
        ok = d.probe() === 0;
      } else if (mode === 3) {
        this.fuelGlobal.value = fuel;
        this.calls++;
        const r = d.restoreState(state!) ?? d.probe();
        ok = r >= 0;
      }
      // Events are parsed as they run (a payload is a view into the input, no copy).
      let at = eventsAt;
      for (let k = 0; ok && k < events; k++) {
        const e = at < input.length ? input[at++] : 0;
        const end = skipEvent(input, at, e, frames);
        if (isFrame(e, frames)) {
          // The device receives a frame: contents and write-back as the input gives them.
          const wb = e & 1 ? slice(input, at, 4) : undefined;
          const n = end - at - (wb ? 5 : 1);
          this.device.receiveFrame(
            slice(input, end - n, n),
            wb && { length: wb[0] | (wb[1] << 8), status: wb[2], errors: wb[3] },
            (e & 2) !== 0,
          );
          at = end;
          continue;
        }
        if (e < 0x80 && (this.skipOps >>> (e & 0x0f)) & 1) {
          at = end; // a request the manifest says not to fuzz
          continue;
        }
        this.fuelGlobal.value = fuel;
        this.calls++;
        if (e < 0x80) {
          d.request(e & 0x0f, slice(input, at + 1, end - at - 1));
        } else if (e < 0xc0) {
          const count = (this.irqWords[2] = (this.irqWords[2] + 1 + (e & 3)) | 0) >>> 0;
          if (d.wantsInterrupts) {
            d.noteCount(count);
            d.interrupt(count);
          }
        } else if (e & 1) {
          d.remove();
          ok = false;
        } else {
          d.reset();
        }
        at = end;
      }
    } catch (err) {
      result.crash = this.crashOf(err);
    }
    this.account(result);
    return result;
  }

  private crashOf(err: unknown): Crash {
    // A hang is told by the fuel, located by the loop that spent it: no stack trace to format.
    const hung = err instanceof WebAssembly.RuntimeError && this.fuelGlobal?.value === 0 && this.hangGlobal.value >= 0;
    const site = hung ? (this.inst.hangSites[this.hangGlobal.value] ?? 'unknown loop') : undefined;
    if (hung) this.hangGlobal.value = -1;
    return crashOf(err, site, this.callFuel, this.driver?.memoryUse);
  }

  /** Map entries seen so far. */
  get covered(): number {
    return this.coverage.covered;
  }

  /** Read the coverage of the last execution (only the entries it touched) and clear them. */
  private account(r: ExecResult): void {
    const n = Math.min(this.touchedGlobal.value, this.touched.length);
    r.fresh = this.coverage.account(this.map, this.touched, n);
    this.touchedGlobal.value = 0;
    r.edges = n;
  }

  /** Comparison operands the last execution logged (both sides of each comparison site it ran). */
  comparisons(): (number | bigint)[] {
    return readComparisons(this.cmpView, this.inst.cmpSites, this.epoch);
  }

  /** Does the device receive frames from the input (host/fuzz/input.ts)? */
  get receivesFrames(): boolean {
    return this.device.receivesFrames;
  }

  /** Where the last execution's register reads sit in its input: [ctrl offset, value offset] pairs (-1: none). */
  reads(): Int32Array {
    return this.device.readLog.slice(0, this.device.readCount * 2);
  }

  close(): void {
    this.driver?.close();
    this.session.close();
    const native = loadNative();
    native.close(this.irqFd);
    native.close(this.cancelFd);
    if (this.dmaFd >= 0) native.close(this.dmaFd);
  }
}
