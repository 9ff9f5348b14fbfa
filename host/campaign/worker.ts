// A campaign worker: runs trials index, index + stride, ... and reports each. The main thread's
// watchdog kills it when a trial overruns (a mutant that loops forever) and starts a new one, which
// first checks that the device of the trial that hung recovers.
import { workerData, parentPort } from 'node:worker_threads';
import { DriverShared } from '../sandbox/shared.ts';
import type { TargetName, TargetPort } from './targets.ts';
import { dmaRecordOf, makeEnv, recoveryFailure, runTrial } from './trial.ts';

const d = workerData as {
  drivers: Partial<Record<TargetName, Uint8Array>>;
  order: TargetName[];
  ports: Partial<Record<TargetName, TargetPort>>;
  state: SharedArrayBuffer;
  irqFd: number;
  cancelFd: number;
  kickFd: number;
  heartbeat: SharedArrayBuffer;
  shared: SharedArrayBuffer;
  seed: number;
  first: number;
  stride: number;
  end: number;
  /** The target of the trial that hung or crashed, when this worker replaces the one it ran in. */
  recoverFirst?: TargetName;
};
const beat = new Float64Array(d.heartbeat);
const env = makeEnv(
  d.drivers,
  d.order,
  d.ports,
  { state: d.state, irqFd: d.irqFd, cancelFd: d.cancelFd, kickFd: d.kickFd },
  new DriverShared(d.shared),
);

if (d.recoverFirst) {
  const why = recoveryFailure(env, d.recoverFirst);
  // The record still holds the killed trial's transfers too: the next trial clears it.
  parentPort!.postMessage({ t: 'recovery', recovered: why === undefined, why, ...dmaRecordOf(env, d.recoverFirst) });
}
for (let i = d.first; i < d.end; i += d.stride) {
  beat[0] = i;
  beat[1] = Date.now();
  parentPort!.postMessage({ t: 'trial', result: runTrial(env, d.seed, i) });
}
beat[1] = 0;
parentPort!.postMessage({ t: 'done' });
