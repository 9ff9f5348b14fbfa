// The fuzzing engine: one input → one execution of the driver in the sandbox, in virtual device time.
//
// Persistent mode, as AFL++'s: one instance of the instrumented driver per Executor (per fuzzing
// thread), reset between executions by restoring a snapshot (linear memory, the driver's mutable
// globals, the device model's state, device time, the instance's interrupt bookkeeping). Two
// snapshots: `fresh` (instantiated, nothing called) and `probed` (after a probe against the device
// with no fuzzed values). The device session, the DMA mapping and the shared area are made once.
// Only an execution that grows linear memory costs a new instance (V8 cannot shrink a memory).
//
// Input layout (missing bytes read as 0):
//   byte 0       mode = b & 3: 0, 1 start after the clean probe; 2 run probe against the fuzzed
//                device; 3 a reload: state_restore(bytes) instead of probe (probe when the driver has
//                no state_restore). Then 1 + ((b >> 2) & 7) events.
//   mode 3       one length byte L, then L bytes of saved state.
//   per event    e < 0x80: request op (e & 0x0f) with (next & 0x1f) payload bytes that follow;
//                0x80-0xbf: an interrupt: the device's count advances by 1 + (e & 3) and the driver's
//                `interrupt` export is called with it (as the host's loop would, when the driver
//                has interrupts enabled); 0xc0-0xff: even: reset(), odd: remove() (ends the run).
//   DMA          one length byte D, then (D & 0x3f) bytes: the DMA window's first bytes.
//   the rest     the register stream of the fuzzing device (host/sim/fuzz.ts).
//
// Every call (probe, each request, each interrupt...) gets its own fuel: loop iterations before it
// counts as a hang (`deadline`). Coverage and comparison operands come from the probe module
// (host/fuzz/instrument.ts); the grant, when given, is enforced as under `wasmdrv run`.

import { loadNative } from '../native.ts';
import { classify, LoadError, wasmStack, type FaultKind } from '../faults.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { SIM_IRQ_BYTES } from '../sim/irq.ts';
import { DEFAULT_LIMITS, type Grant, type Limits } from '../grant.ts';
import { checkModule, DriverInstance } from '../sandbox/instance.ts';
import type { WasmInfo } from '../wasm/read.ts';
import { DeviceSession } from '../sandbox/session.ts';
import { DriverShared } from '../sandbox/shared.ts';
import { CMP_ENTRY, PROBE_MODULE, type Instrumented } from './instrument.ts';
import { type FuzzDevice, MODEL_DICTIONARY } from '../sim/fuzz.ts';
import { simModelClass } from '../sim/registry.ts';

export type CrashKind = FaultKind | 'load-refused';

export interface Crash {
  kind: CrashKind;
  /** Function and code offset (in the instrumented module) of the innermost driver frame. */
  location: string;
  message: string;
}

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
}

/** Loop iterations one driver call may run before it counts as a hang (a `deadline` fault). */
export const DEFAULT_FUEL = 2_000;
const MAX_EVENTS = 8;

// AFL's hit-count buckets: a count maps to one bit, so that 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+
// hits of an edge are different coverage.
const BUCKET = new Uint8Array(256);
for (let c = 1; c < 256; c++)
  BUCKET[c] = c === 1 ? 1 : c === 2 ? 2 : c === 3 ? 4 : c < 8 ? 8 : c < 16 ? 16 : c < 32 ? 32 : c < 128 ? 64 : 128;

interface Snapshot {
  memory: Uint8Array;
  globals: (number | bigint)[];
  state: Uint8Array;
  now: number;
  host: { count: number; irqEnabled: boolean };
}

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
  /** Buckets seen so far, per map entry. */
  readonly virgin: Uint8Array;
  /** Map entries seen so far. */
  covered = 0;
  private loadError?: Crash;
  private callFuel = 0;
  /** What the last accounted execution added to `virgin` (undone when a quick run is run again). */
  private added: number[] = [];

  constructor(
    inst: Instrumented,
    readonly model: string,
    o: ExecutorOptions = {},
  ) {
    this.inst = inst;
    this.sites = inst.sites;
    this.mapSize = inst.mapSize;
    this.virgin = new Uint8Array(inst.mapSize);
    this.fuel = o.fuel ?? DEFAULT_FUEL;
    this.quickFuel = Math.max(32, this.fuel >> 5);
    this.grant = o.grant ?? {};
    this.limits = o.limits ?? {};
    const dict = new Set<number>();
    for (const v of [...(MODEL_DICTIONARY[model] ?? []), ...inst.dictionary]) if (typeof v === 'number') dict.add(v);
    this.dictionary = [...dict];
    this.module = new WebAssembly.Module(inst.bytes as Uint8Array<ArrayBuffer>);
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
    // Always restored: the chunks the host itself writes (the io buffer, the DMA window's input bytes).
    const fx = ex as unknown as Record<string, () => number>;
    const chunks = (at: number, len: number) => {
      let m = 0n;
      for (let c = at >>> this.dshift; c <= (at + Math.max(1, len) - 1) >>> this.dshift; c++) m |= 1n << BigInt(c);
      return m;
    };
    this.hostChunks = chunks(fx.io_buffer() >>> 0, fx.io_buffer_size() >>> 0);
    this.dmaChunks = 0n;
    if (this.spec.dma.length && typeof fx.dma_area === 'function') {
      const area = fx.dma_area() >>> 0;
      this.hostChunks |= chunks(area, 64);
      this.dmaChunks = chunks(area, this.spec.dma[0].size);
    }
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
      const size = 1 << this.dshift;
      for (let c = 0; dirty !== 0n; c++, dirty >>= 1n) {
        if ((dirty & 1n) === 0n) continue;
        const at = c * size;
        if (at >= u8.length) break;
        const end = Math.min(u8.length, at + size);
        u8.set(s.memory.subarray(at, end), at);
        this.restoredBytes += end - at;
      }
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
    this.rollback(quick);
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
    let at = 0;
    const next = () => (at < input.length ? input[at++] : 0);
    const head = next();
    let mode = head & 3;
    if (mode < 2 && !this.probed) mode = 2;
    const events = 1 + ((head >> 2) & (MAX_EVENTS - 1));
    let state: Uint8Array | undefined;
    if (mode === 3) {
      const n = next();
      state = input.subarray(at, Math.min(input.length, at + n));
      at += n;
    }
    // Events are parsed as they run (a payload slice is a view, no copy).
    const eventsAt = at;
    for (let k = 0; k < events; k++) {
      const e = next();
      if (e < 0x80) at += next() & 0x1f;
    }
    const dmaLen = next() & 0x3f;
    const dmaAt = at;
    at += dmaLen;
    const streamAt = Math.min(at, input.length);

    this.restore(mode < 2 ? this.probed! : this.fresh);
    if (this.loadError) return { crash: this.loadError, fresh: 0, edges: 0 };
    if (this.dmaBytes.length) {
      this.dmaBytes.fill(0, 0, 64);
      if (dmaLen) this.dmaBytes.set(input.subarray(dmaAt, Math.min(input.length, dmaAt + dmaLen)), 0);
    }
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
      at = eventsAt;
      for (let k = 0; ok && k < events; k++) {
        const e = next();
        this.fuelGlobal.value = fuel;
        this.calls++;
        if (e < 0x80) {
          const len = next() & 0x1f;
          const payload = input.subarray(Math.min(at, input.length), Math.min(input.length, at + len));
          at += len;
          d.request(e & 0x0f, payload.length === len ? payload : padded(payload, len));
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
      }
    } catch (err) {
      result.crash = this.crashOf(err);
    }
    this.account(result);
    return result;
  }

  private crashOf(err: unknown): Crash {
    if (err instanceof LoadError) return { kind: 'load-refused', location: 'load', message: err.message };
    // A hang is told by the fuel, located by the loop that spent it: no stack trace to format.
    if (err instanceof WebAssembly.RuntimeError && this.fuelGlobal?.value === 0 && this.hangGlobal.value >= 0) {
      const site = this.inst.hangSites[this.hangGlobal.value] ?? 'unknown loop';
      this.hangGlobal.value = -1;
      return {
        kind: 'deadline',
        location: site,
        message: `ran out of fuel (${this.callFuel} loop iterations in one call): a hang`,
      };
    }
    const { kind, message } = classify(err, this.driver?.memoryUse);
    const frame = wasmStack(err)[0] ?? 'host';
    return {
      kind,
      location: frame.replace(/\(wasm:\/\/wasm\/[0-9a-f]+:/, '(').replace(/^(\S+) \((.*)\)$/, '$1 $2'),
      message,
    };
  }

  /** Read the coverage of the last execution (only the entries it touched) and clear them. */
  private account(r: ExecResult): void {
    const map = this.map,
      virgin = this.virgin,
      touched = this.touched;
    const n = Math.min(this.touchedGlobal.value, touched.length);
    this.added.length = 0;
    let fresh = 0;
    for (let j = 0; j < n; j++) {
      const i = touched[j];
      const bit = BUCKET[map[i]];
      map[i] = 0;
      if ((virgin[i] & bit) === 0) {
        if (virgin[i] === 0) this.covered++;
        this.added.push(i, virgin[i]);
        virgin[i] |= bit;
        fresh++;
      }
    }
    this.touchedGlobal.value = 0;
    r.edges = n;
    r.fresh = fresh;
  }

  /** Forget the coverage a run added (its result is replaced by a run with more fuel). */
  private rollback(r: ExecResult): void {
    const a = this.added;
    for (let j = a.length - 2; j >= 0; j -= 2) {
      if (a[j + 1] === 0) this.covered--;
      this.virgin[a[j]] = a[j + 1];
    }
    a.length = 0;
    r.fresh = 0;
  }

  /** Comparison operands the last execution logged (both sides of each comparison site it ran). */
  comparisons(): (number | bigint)[] {
    const out: (number | bigint)[] = [];
    const v = this.cmpView;
    const n = this.inst.cmpSites;
    for (let s = 0; s < n; s++) {
      const at = s * CMP_ENTRY;
      if (v.getInt32(at + 16, true) !== this.epoch) continue;
      const kind = v.getInt32(at + 20, true);
      const a = v.getBigUint64(at, true),
        b = v.getBigUint64(at + 8, true);
      if (kind === 1) continue; // br_table: its cases are in the dictionary
      if (a === b) continue;
      for (const x of [a, b]) out.push(x <= 0xffffffffn ? Number(x) : x);
    }
    return out;
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

/** The device the fuzzed driver sees (for a package's grantFor, the fds and state may be left out). */
export function fuzzDeviceSpec(
  model: string,
  o: { dmaFd?: number; irqFd?: number; state?: SharedArrayBuffer } = {},
): DeviceSpec {
  const desc = simModelClass('fuzz').describe({ inner: model, stream: new Uint8Array() });
  const dma = desc.dma[0];
  return {
    id: 'sim:fuzz',
    name: `fuzzed ${model}`,
    pci: desc.pci,
    regions: desc.regions.map((r, index) => ({ name: r.name, size: r.size, source: { kind: 'sim', index } })),
    ports: desc.ports.map((p, index) => ({ name: p.name, base: 0x2f8, size: p.size, source: { kind: 'sim', index } })),
    dma: dma
      ? [{ name: 'dma', size: dma.size, bus: dma.bus, source: { kind: 'fd', fd: o.dmaFd ?? -1, offset: 0 } }]
      : [],
    irq: { kind: 'sim', eventfd: o.irqFd ?? -1 },
    sim: {
      model: 'fuzz',
      options: { inner: model, stream: new Uint8Array() } as unknown as Record<string, unknown>,
      state: o.state ?? new SharedArrayBuffer(SIM_IRQ_BYTES + desc.stateBytes),
      kickFd: -1,
    },
  };
}

function padded(b: Uint8Array, len: number): Uint8Array {
  const out = new Uint8Array(len);
  out.set(b);
  return out;
}

export function crashKey(c: Crash): string {
  return `${c.kind}@${c.location}`;
}

/** Shrink an input while it still crashes the same way (same kind and location). */
export function minimize(ex: Executor, input: Uint8Array): Uint8Array {
  const first = ex.run(input).crash;
  if (!first) throw new Error('minimize: the input does not crash');
  const key = crashKey(first);
  let best = input;
  for (let chunk = best.length >> 1; chunk >= 1; chunk >>= 1) {
    for (let at = 0; at < best.length; ) {
      const cand = Uint8Array.from([...best.subarray(0, at), ...best.subarray(at + chunk)]);
      const c = ex.run(cand).crash;
      if (c && crashKey(c) === key) best = cand;
      else at += chunk;
    }
  }
  for (let at = 0; at < best.length; at++) {
    if (best[at] === 0) continue;
    const cand = best.slice();
    cand[at] = 0;
    const c = ex.run(cand).crash;
    if (c && crashKey(c) === key) best = cand;
  }
  return best;
}
