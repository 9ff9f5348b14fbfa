// One fault-injection trial, run inside a campaign worker: a mutated edu driver on a good device, or
// the good driver on a misbehaving device; then, if anything went wrong, a recovery check: a fresh
// good instance resets the device and must serve a factorial again.

import { FaultError, LoadError, classify, type FaultKind } from '../faults.ts';
import { loadNative } from '../native.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DmaRecord, dmaRecordOffset, simStateBytes } from '../sim/dma-record.ts';
import { packageRoot } from '../native.ts';
import { grantFor, parseManifest } from '../package/manifest.ts';
import { edu } from '../sim/edu.ts';
import type { Grant } from '../grant.ts';
import { DriverInstance } from '../sandbox/instance.ts';
import { DeviceSession } from '../sandbox/session.ts';
import type { DriverShared } from '../sandbox/shared.ts';
import { readWasm } from '../wasm/read.ts';

export const DMA_WINDOW = 65536;
export const CANARY = 4096;
export const DMA_BUS = 0x0100_0000n;

export interface TrialEnv {
  eduBytes: Uint8Array;
  eduModule: WebAssembly.Module;
  code: { offset: number; size: number };
  state: SharedArrayBuffer;
  dmaFd: number;
  irqFd: number;
  cancelFd: number;
  shared: DriverShared;
  /** The shipped edu manifest's grant: every trial runs under the DMA firewall and the write policy. */
  grant: Grant;
}

export interface TrialResult {
  index: number;
  kind: 'mutant' | 'device';
  /** The fault the sandbox detected, 'load-refused', 'probe-refused', or undefined when the trial ran clean. */
  outcome?: FaultKind | 'load-refused' | 'probe-refused';
  recovered: boolean;
  /** When not recovered: what the fresh driver ran into. */
  whyNotRecovered?: string;
  /** False when no validating mutant was found (the trial then injected nothing). */
  injected: boolean;
  /** From the device's DMA record (sim/dma-record.ts), trial and recovery together: transfers, and bytes outside the window. */
  dmaTransfers: number;
  outsideDmaBytes: number;
}

/** xorshift32 seeded per trial: a campaign is reproducible from its seed. */
/** Whether trial `index` injects a misbehaving device or a mutant: the first draw of its generator. */
export function trialKind(seed: number, index: number): TrialResult['kind'] {
  return rng(seed, index)() & 1 ? 'device' : 'mutant';
}

export function rng(seed: number, index: number): () => number {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

export function makeEnv(
  eduBytes: Uint8Array,
  state: SharedArrayBuffer,
  dmaFd: number,
  irqFd: number,
  cancelFd: number,
  shared: DriverShared,
): TrialEnv {
  const info = readWasm(eduBytes);
  if (!info.code) throw new Error('edu driver has no code section');
  const env = {
    eduBytes,
    eduModule: new WebAssembly.Module(eduBytes as Uint8Array<ArrayBuffer>),
    code: info.code,
    state,
    dmaFd,
    irqFd,
    cancelFd,
    shared,
    grant: {},
  };
  const where = join(packageRoot(), 'guest-drivers', 'edu', 'manifest.json');
  env.grant = grantFor(parseManifest(readFileSync(where, 'utf8'), where), spec(env, 'edu', {}), where).grant;
  return env;
}

/**
 * Random byte mutations of the code section (opcodes, immediates, local indices) until the module
 * still validates: the mutant is a different but well-formed program.
 */
export function mutate(env: TrialEnv, r: () => number): Uint8Array | undefined {
  for (let attempt = 0; attempt < 50; attempt++) {
    const bytes = env.eduBytes.slice();
    const flips = 1 + (r() % 3);
    for (let i = 0; i < flips; i++) {
      const at = env.code.offset + 4 + (r() % (env.code.size - 4));
      bytes[at] = r() % 4 === 0 ? bytes[at] ^ (1 << (r() % 8)) : r() & 0xff;
    }
    if (WebAssembly.validate(bytes)) return bytes;
  }
  return undefined;
}

function spec(env: TrialEnv, model: string, options: Record<string, unknown>): DeviceSpec {
  return {
    id: 'sim:campaign',
    name: 'campaign edu',
    regions: [{ name: 'bar0', size: 1 << 20, source: { kind: 'sim', index: 0 } }],
    ports: [],
    // The window sits between two canary pages of the same memfd: any write outside it is seen.
    dma: [{ name: 'dma0', size: DMA_WINDOW, bus: DMA_BUS, source: { kind: 'fd', fd: env.dmaFd, offset: CANARY } }],
    irq: { kind: 'sim', eventfd: env.irqFd },
    sim: { model, options, state: env.state, kickFd: -1 },
  };
}

const le32 = (...v: number[]) => new Uint8Array(Uint32Array.from(v).buffer);

/** Run the good driver's smoke sequence; throws what the driver threw. */
function exercise(inst: DriverInstance): 'probe-refused' | undefined {
  if (inst.probe() !== 0) return 'probe-refused';
  inst.request(1, new Uint8Array());
  inst.request(2, le32(5));
  inst.request(3, le32(3, 0x1000));
  inst.request(
    4,
    Uint8Array.from({ length: 64 }, (_, i) => i),
  );
  return undefined;
}

const quiet = { log: () => {} };

export function runTrial(env: TrialEnv, seed: number, index: number): TrialResult {
  const r = rng(seed, index);
  r(); // the kind's draw (trialKind)
  const kind = trialKind(seed, index);
  new Uint8Array(env.state).fill(0);
  loadNative().eventfdRead(env.irqFd);
  let bytes = env.eduBytes;
  let model = 'edu';
  let options: Record<string, unknown> = {};
  if (kind === 'mutant') {
    const m = mutate(env, r);
    if (!m) return { index, kind, recovered: false, injected: false, dmaTransfers: 0, outsideDmaBytes: 0 };
    bytes = m;
  } else {
    model = 'faulty';
    const p = (scale: number) => ((r() % 1000) / 1000) * scale;
    options = {
      inner: 'edu',
      seed: r(),
      garbageReads: p(0.3),
      spuriousIrqs: p(0.2),
      dropIrqs: p(0.5),
      stuck:
        r() % 3 === 0 ? { offset: [0x20, 0x24, 0x00, 0x08][r() % 4], mask: 1 << (r() % 32), value: r() } : undefined,
    };
  }
  const result: TrialResult = { index, kind, recovered: false, injected: true, dmaTransfers: 0, outsideDmaBytes: 0 };
  const session = new DeviceSession(spec(env, model, options), { virtual: true });
  let inst: DriverInstance | undefined;
  try {
    inst = DriverInstance.create('trial', bytes, session, env.shared, {
      cancelFd: env.cancelFd,
      grant: env.grant,
      hooks: quiet,
      limits: { memoryPages: 64, logBurst: 200, logPerSec: 100 },
      module: bytes === env.eduBytes ? env.eduModule : undefined,
    });
    result.outcome = exercise(inst);
  } catch (err) {
    result.outcome = err instanceof LoadError ? 'load-refused' : classify(err, inst?.memoryUse).kind;
  } finally {
    inst?.close();
    session.close();
  }
  if (result.outcome) {
    result.whyNotRecovered = recoveryFailure(env);
    result.recovered = result.whyNotRecovered === undefined;
  }
  Object.assign(result, dmaRecordOf(env));
  return result;
}

/** What the device's DMA record holds since the state was last cleared (the start of a trial). */
export function dmaRecordOf(env: TrialEnv): { dmaTransfers: number; outsideDmaBytes: number } {
  const r = new DmaRecord(env.state, dmaRecordOffset(edu.describe({}))).snapshot();
  return { dmaTransfers: r.transfers, outsideDmaBytes: r.outsideReadBytes + r.outsideWriteBytes };
}

/**
 * The device comes back: a fresh good instance on a well-behaved view of the same device state.
 * Returns undefined when it served again, else why not.
 */
export function recoveryFailure(env: TrialEnv): string | undefined {
  const session = new DeviceSession(spec(env, 'edu', {}), { virtual: true });
  let inst: DriverInstance | undefined;
  try {
    loadNative().eventfdRead(env.irqFd);
    inst = DriverInstance.create('recovery', env.eduBytes, session, env.shared, {
      cancelFd: env.cancelFd,
      hooks: quiet,
      module: env.eduModule,
      grant: env.grant,
    });
    inst.reset();
    const status = inst.probe();
    if (status !== 0) return `probe returned ${status}`;
    const r = inst.request(2, le32(5));
    if (!(r instanceof Uint8Array)) return `5! answered with status ${r}`;
    const v = new Uint32Array(r.slice().buffer)[0];
    return v === 120 ? undefined : `5! answered ${v}`;
  } catch (err) {
    if (!(err instanceof FaultError) && !(err instanceof WebAssembly.RuntimeError)) throw err;
    return `${(err as Error).name}: ${(err as Error).message}`;
  } finally {
    inst?.close();
    session.close();
  }
}

export const EDU_STATE_BYTES = simStateBytes(edu.describe({}));
