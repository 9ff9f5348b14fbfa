// The fuzzing engine: one input → one execution of the driver in the sandbox, in virtual device time
// with a fresh instance of the instrumented module; coverage guides which inputs are kept.
//
// Input layout: byte 0 → how many requests (1 + b % 4); per request an op byte (op = b % 8) and a
// 4-byte payload; the rest is the register stream the fuzzing device reads from (host/fuzz/model.ts).
// The DMA window starts each execution holding the input's last 64 bytes (when it has more than 64).
// Missing bytes read as 0.

import { loadNative } from '../native.ts';
import { classify, LoadError, wasmStack, type FaultKind } from '../faults.ts';
import type { DeviceSpec } from '../devices/spec.ts';
import { SIM_IRQ_BYTES } from '../sim/irq.ts';
import { checkModule, DEFAULT_LIMITS, DriverInstance } from '../sandbox/instance.ts';
import type { WasmInfo } from '../wasm.ts';
import { DeviceSession } from '../sandbox/session.ts';
import { DriverShared } from '../sandbox/shared.ts';
import { instrument } from './instrument.ts';
import { fuzzModel } from './model.ts';

export interface ExecResult {
  /** Set when the execution ended in a fault (or a refused load): kind and where. */
  crash?: { kind: FaultKind | 'load-refused'; location: string; message: string };
  /** Indices of the blocks this execution reached. */
  blocks: number[];
}

// Loop iterations one execution may run before it counts as a hang (a `deadline` fault).
const FUEL = 5_000;
const HEADER_REQUESTS = 4;

export class Executor {
  readonly blocks: number;
  readonly dictionary: number[];
  private readonly module: WebAssembly.Module;
  private readonly bytes: Uint8Array;
  private readonly shared = new DriverShared(DriverShared.create(16));
  private readonly irqFd: number;
  private readonly cancelFd: number;
  private readonly dmaFd: number;
  private readonly dmaBytes: Uint8Array;
  private readonly stateBytes: number;
  private readonly dmaBus: bigint;
  private readonly dmaSize: number;
  private checked?: WasmInfo;

  constructor(driver: Uint8Array, readonly model: string) {
    const inst = instrument(driver, FUEL);
    this.bytes = inst.bytes;
    this.blocks = inst.blocks;
    this.dictionary = inst.constants;
    this.module = new WebAssembly.Module(inst.bytes as Uint8Array<ArrayBuffer>);
    const native = loadNative();
    const desc = fuzzModel.describe({ inner: model, stream: new Uint8Array() });
    this.stateBytes = SIM_IRQ_BYTES + desc.stateBytes;
    this.dmaBus = desc.dma[0]?.bus ?? 0n;
    this.dmaSize = desc.dma[0]?.size ?? 0;
    this.irqFd = native.eventfdCreate(0);
    this.cancelFd = native.eventfdCreate(0);
    this.dmaFd = this.dmaSize ? native.memfdCreate('wasmdrv-fuzz-dma', this.dmaSize) : -1;
    this.dmaBytes = this.dmaSize ? new Uint8Array(native.mapFd(this.dmaFd, this.dmaSize, 0).buffer()) : new Uint8Array();
  }

  run(input: Uint8Array): ExecResult {
    const native = loadNative();
    let at = 0;
    const next = () => (at < input.length ? input[at++] : 0);
    const requests: { op: number; payload: Uint8Array }[] = [];
    const nreq = 1 + (next() % HEADER_REQUESTS);
    for (let i = 0; i < nreq; i++) {
      const op = next() % 8;
      const payload = new Uint8Array(4);
      for (let j = 0; j < 4; j++) payload[j] = next();
      requests.push({ op, payload });
    }
    this.dmaBytes.fill(0, 0, Math.min(4096, this.dmaBytes.length));
    if (input.length > 64 && this.dmaBytes.length) this.dmaBytes.set(input.subarray(input.length - 64), 0);
    const stream = input.subarray(Math.min(at, input.length));
    native.eventfdRead(this.irqFd);
    const desc = fuzzModel.describe({ inner: this.model, stream });
    const spec: DeviceSpec = {
      id: 'sim:fuzz',
      name: `fuzzed ${this.model}`,
      pci: desc.pci,
      regions: desc.regions.map((r, index) => ({ name: r.name, size: r.size, source: { kind: 'sim', index } })),
      ports: desc.ports.map((p, index) => ({ name: p.name, base: 0x2f8, size: p.size, source: { kind: 'sim', index } })),
      dma: this.dmaSize ? [{ name: 'dma', size: this.dmaSize, bus: this.dmaBus, source: { kind: 'fd', fd: this.dmaFd, offset: 0 } }] : [],
      irq: { kind: 'sim', eventfd: this.irqFd },
      sim: { model: 'fuzz', options: { inner: this.model, stream } as unknown as Record<string, unknown>, state: new SharedArrayBuffer(this.stateBytes), kickFd: -1 },
    };
    // 1 ms of device time per clock read: a driver's poll with a 1 s timeout gives up after 1,000 reads.
    const session = new DeviceSession(spec, { virtual: true, clockStepNs: 1_000_000 });
    let inst: DriverInstance | undefined;
    const result: ExecResult = { blocks: [] };
    try {
      const limits = { memoryPages: 64, logBurst: 1e12, logPerSec: 1e12 };
      this.checked ??= checkModule(this.bytes, { regions: spec.regions, ports: spec.ports, dmaCount: spec.dma.length, hasIrq: true }, {}, { ...DEFAULT_LIMITS, ...limits }, 'fuzz');
      inst = DriverInstance.create('fuzz', this.bytes, session, this.shared, {
        module: this.module,
        checked: this.checked,
        cancelFd: this.cancelFd,
        hooks: { log: () => {} },
        // log-flood depends on wall-clock time: off, so that a run replays exactly
        limits: { memoryPages: 64, logBurst: 1e12, logPerSec: 1e12 },
      });
      if (inst.probe() === 0) for (const r of requests) inst.request(r.op, r.payload);
    } catch (err) {
      if (err instanceof LoadError) {
        result.crash = { kind: 'load-refused', location: 'load', message: err.message };
      } else {
        let { kind, message } = classify(err, inst?.memoryUse);
        const fuel = inst && inst.exportsForFuzz().__fuel;
        if (kind === 'unreachable' && fuel && fuel.value === 0) {
          kind = 'deadline';
          message = `ran out of fuel (${FUEL} loop iterations): a hang`;
        }
        const frame = wasmStack(err)[0] ?? 'host';
        result.crash = { kind, location: frame.replace(/\(wasm:\/\/wasm\/[0-9a-f]+:/, '(').replace(/^(\S+) \((.*)\)$/, '$1 $2'), message };
      }
    } finally {
      if (inst) {
        const ex = inst.exportsForFuzz();
        for (let k = 0; k < this.blocks; k++) if (ex[`__cov_${k}`].value) result.blocks.push(k);
        inst.close();
      }
      session.close();
    }
    return result;
  }

  close(): void {
    const native = loadNative();
    native.close(this.irqFd);
    native.close(this.cancelFd);
    if (this.dmaFd >= 0) native.close(this.dmaFd);
  }
}

/** xorshift32 */
export class Rng {
  private x: number;
  constructor(seed: number) {
    this.x = (seed >>> 0) || 0x9e3779b9;
  }
  next(): number {
    let x = this.x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.x = x >>> 0);
  }
  below(n: number): number {
    return this.next() % n;
  }
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

/** Havoc: a stack of byte-level mutations, sometimes a splice with another corpus entry. */
export function mutate(input: Uint8Array, r: Rng, corpus: Uint8Array[], dictionary: number[]): Uint8Array {
  let b = Array.from(input);
  if (corpus.length > 1 && r.below(10) === 0) {
    const other = corpus[r.below(corpus.length)];
    const cut = r.below(Math.max(1, Math.min(b.length, other.length)));
    b = [...b.slice(0, cut), ...other.slice(cut)];
  }
  const put32 = (at: number, v: number) => {
    for (let i = 0; i < 4; i++) b[at + i] = (v >>> (8 * i)) & 0xff;
  };
  for (let n = 1 << r.below(4); n > 0; n--) {
    const at = b.length ? r.below(b.length) : 0;
    switch (r.below(8)) {
      case 0:
        if (b.length) b[at] ^= 1 << r.below(8);
        break;
      case 1:
        if (b.length) b[at] = r.below(256);
        break;
      case 2:
        b.splice(at, 0, ...Array.from({ length: 1 + r.below(8) }, () => r.below(256)));
        break;
      case 3:
        if (b.length > 1) b.splice(at, 1 + r.below(Math.min(8, b.length - at)));
        break;
      case 4:
        while (b.length < at + 4) b.push(0);
        put32(at, INTERESTING[r.below(INTERESTING.length)]);
        break;
      case 5:
        while (b.length < at + 4) b.push(0);
        if (dictionary.length) put32(at, dictionary[r.below(dictionary.length)]);
        break;
      case 6:
        // a "return this value" control byte (ctrl & 3 == 0) followed by a value
        b.splice(at, 0, r.below(64) << 2, ...[0, 0, 0, 0]);
        put32(at + 1, r.below(2) ? INTERESTING[r.below(INTERESTING.length)] : r.next());
        break;
      default:
        if (b.length) b[at] = (b[at] + 1 + r.below(16)) & 0xff;
    }
  }
  return Uint8Array.from(b.slice(0, 4096));
}

export function crashKey(c: NonNullable<ExecResult['crash']>): string {
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
