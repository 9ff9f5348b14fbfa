// A campaign worker: runs trials index, index + stride, ... and reports each. The main thread's
// watchdog kills it when a trial overruns (a mutant that loops forever) and starts a new one, which
// first checks that the device recovers.
import { workerData, parentPort } from 'node:worker_threads';
import { DriverShared } from '../sandbox/shared.ts';
import { dmaRecordOf, makeEnv, recoveryFailure, runTrial } from './trial.ts';

const d = workerData as {
  eduBytes: Uint8Array;
  state: SharedArrayBuffer;
  dmaFd: number;
  irqFd: number;
  cancelFd: number;
  heartbeat: SharedArrayBuffer;
  shared: SharedArrayBuffer;
  seed: number;
  first: number;
  stride: number;
  end: number;
  recoverFirst: boolean;
};
const beat = new Float64Array(d.heartbeat);
const env = makeEnv(d.eduBytes, d.state, d.dmaFd, d.irqFd, d.cancelFd, new DriverShared(d.shared));

if (d.recoverFirst) {
  const why = recoveryFailure(env);
  // The record still holds the killed trial's transfers too: the next trial clears it.
  parentPort!.postMessage({ t: 'recovery', recovered: why === undefined, why, ...dmaRecordOf(env) });
}
for (let i = d.first; i < d.end; i += d.stride) {
  beat[0] = i;
  beat[1] = Date.now();
  parentPort!.postMessage({ t: 'trial', result: runTrial(env, d.seed, i) });
}
beat[1] = 0;
parentPort!.postMessage({ t: 'done' });
