// One fault-injection trial, run inside a campaign worker: on one of the campaign's targets (edu,
// uart16550, e1000: targets.ts), a mutated driver on a good device, or the good driver on a
// misbehaving device; then, if anything went wrong, a recovery check: a fresh good instance resets
// the device and must serve again.

import { FaultError, LoadError, classify, type FaultKind } from '../faults.ts';
import { loadNative } from '../native.ts';
import { DmaRecord, dmaRecordOffset } from '../sim/dma-record.ts';
import { simModelClass } from '../sim/registry.ts';
import { DriverInstance } from '../sandbox/instance.ts';
import { checkedGrow } from '../sandbox/memory-grow.ts';
import { DeviceSession } from '../sandbox/session.ts';
import type { DriverShared } from '../sandbox/shared.ts';
import { readWasm } from '../wasm/read.ts';
import { TARGETS, type Target, type TargetName, type TargetPort, targetGrant, targetSpec } from './targets.ts';

export { CANARY } from './targets.ts';

/** What one target needs in a worker: its good driver (bytes, compiled module, code section) and grant. */
export interface TargetEnv {
  target: Target;
  bytes: Uint8Array;
  module: WebAssembly.Module;
  code: { offset: number; size: number };
  port: TargetPort;
  /** The shipped manifest's grant: every trial runs under it (the DMA and descriptor firewalls included). */
  grant: ReturnType<typeof targetGrant>;
}

export interface TrialEnv {
  targets: Partial<Record<TargetName, TargetEnv>>;
  /** The campaign's targets, in the order the generator picks from. */
  order: TargetName[];
  state: SharedArrayBuffer;
  irqFd: number;
  cancelFd: number;
  kickFd: number;
  shared: DriverShared;
}

export interface TrialResult {
  index: number;
  kind: 'mutant' | 'device';
  target: TargetName;
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
export function rng(seed: number, index: number): () => number {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

/** What trial `index` injects and where: the first draw of its generator picks kind and target. */
export function trialPlan(
  seed: number,
  index: number,
  order: readonly TargetName[],
): { kind: TrialResult['kind']; target: TargetName } {
  const x = rng(seed, index)();
  return { kind: x & 1 ? 'device' : 'mutant', target: order[(x >>> 1) % order.length] };
}

export function makeEnv(
  drivers: Partial<Record<TargetName, Uint8Array>>,
  order: TargetName[],
  ports: Partial<Record<TargetName, TargetPort>>,
  fds: { state: SharedArrayBuffer; irqFd: number; cancelFd: number; kickFd: number },
  shared: DriverShared,
): TrialEnv {
  const env: TrialEnv = { targets: {}, order, shared, ...fds };
  for (const name of order) {
    const bytes = drivers[name]!;
    const info = readWasm(bytes);
    if (!info.code) throw new Error(`${name} driver has no code section`);
    const target = TARGETS[name];
    const port = ports[name]!;
    env.targets[name] = {
      target,
      bytes,
      module: new WebAssembly.Module(checkedGrow(bytes, name)),
      code: info.code,
      port,
      grant: targetGrant(target, targetSpec(target, port, fds, target.model, {})),
    };
  }
  return env;
}

/**
 * Random byte mutations of the code section (opcodes, immediates, local indices) until the module
 * still validates: the mutant is a different but well-formed program.
 */
export function mutate(t: TargetEnv, r: () => number): Uint8Array | undefined {
  for (let attempt = 0; attempt < 50; attempt++) {
    const bytes = t.bytes.slice();
    const flips = 1 + (r() % 3);
    for (let i = 0; i < flips; i++) {
      const at = t.code.offset + 4 + (r() % (t.code.size - 4));
      bytes[at] = r() % 4 === 0 ? bytes[at] ^ (1 << (r() % 8)) : r() & 0xff;
    }
    if (WebAssembly.validate(bytes)) return bytes;
  }
  return undefined;
}

const quiet = { log: () => {} };

/** A fresh device: zero state, no pending interrupt or kick. */
function freshDevice(env: TrialEnv, t: TargetEnv): void {
  new Uint8Array(env.state, 0, t.target.stateBytes).fill(0);
  const native = loadNative();
  native.eventfdRead(env.irqFd);
  native.eventfdRead(env.kickFd);
}

export function runTrial(env: TrialEnv, seed: number, index: number): TrialResult {
  const r = rng(seed, index);
  r(); // the plan's draw (trialPlan)
  const { kind, target: name } = trialPlan(seed, index, env.order);
  const t = env.targets[name]!;
  freshDevice(env, t);
  let bytes = t.bytes;
  let model = t.target.model;
  let options: Record<string, unknown> = t.target.modelOptions;
  const none = { index, kind, target: name, recovered: false, dmaTransfers: 0, outsideDmaBytes: 0 };
  if (kind === 'mutant') {
    const m = mutate(t, r);
    if (!m) return { ...none, injected: false };
    bytes = m;
  } else {
    model = 'faulty';
    options = t.target.misbehave(r, t.grant);
  }
  const result: TrialResult = { ...none, injected: true };
  const spec = targetSpec(t.target, t.port, env, model, options);
  const session = new DeviceSession(spec, { virtual: true });
  let inst: DriverInstance | undefined;
  try {
    inst = DriverInstance.create('trial', bytes, session, env.shared, {
      cancelFd: env.cancelFd,
      grant: t.grant,
      hooks: quiet,
      limits: { memoryPages: 64, logBurst: 200, logPerSec: 100 },
      module: bytes === t.bytes ? t.module : undefined,
    });
    result.outcome = inst.probe() !== 0 ? 'probe-refused' : t.target.smoke(inst, session);
  } catch (err) {
    result.outcome = err instanceof LoadError ? 'load-refused' : classify(err, inst?.memoryUse).kind;
  } finally {
    inst?.close();
    session.close();
  }
  if (result.outcome) {
    result.whyNotRecovered = recoveryFailure(env, name);
    result.recovered = result.whyNotRecovered === undefined;
  }
  Object.assign(result, dmaRecordOf(env, name));
  return result;
}

/** What the device's DMA record holds since the state was last cleared (the start of a trial). */
export function dmaRecordOf(env: TrialEnv, name: TargetName): { dmaTransfers: number; outsideDmaBytes: number } {
  const t = TARGETS[name];
  const at = dmaRecordOffset(simModelClass(t.model).describe(t.modelOptions));
  const r = new DmaRecord(env.state, at).snapshot();
  return { dmaTransfers: r.transfers, outsideDmaBytes: r.outsideReadBytes + r.outsideWriteBytes };
}

/**
 * The device comes back: a fresh good instance on a well-behaved view of the same device state.
 * Returns undefined when it served again, else why not.
 */
export function recoveryFailure(env: TrialEnv, name: TargetName): string | undefined {
  const t = env.targets[name]!;
  const spec = targetSpec(t.target, t.port, env, t.target.model, t.target.modelOptions);
  const session = new DeviceSession(spec, { virtual: true });
  let inst: DriverInstance | undefined;
  try {
    loadNative().eventfdRead(env.irqFd);
    inst = DriverInstance.create('recovery', t.bytes, session, env.shared, {
      cancelFd: env.cancelFd,
      hooks: quiet,
      module: t.module,
      grant: t.grant,
    });
    inst.reset();
    const status = inst.probe();
    if (status !== 0) return `probe returned ${status}`;
    return t.target.serves(inst, session);
  } catch (err) {
    if (!(err instanceof FaultError) && !(err instanceof WebAssembly.RuntimeError)) throw err;
    return `${(err as Error).name}: ${(err as Error).message}`;
  } finally {
    inst?.close();
    session.close();
  }
}
