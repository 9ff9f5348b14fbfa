// One `wasmdrv fuzz --jobs N` job in its own thread. The module comes instrumented (the main thread
// ran binaryen once); progress and crashes are posted as they happen, the result at the end.
import { parentPort, workerData } from 'node:worker_threads';
import { fuzzJob, type JobOptions } from './fuzz.ts';
import type { Instrumented } from './instrument.ts';

const d = workerData as { inst: Instrumented; options: JobOptions & { stopShared: SharedArrayBuffer } };
const post = (type: string, value: unknown) => parentPort!.postMessage({ type, value });
const result = fuzzJob(d.inst, {
  ...d.options,
  stop: new Int32Array(d.options.stopShared),
  progress: (s) => post('progress', s),
  onCrash: (c) => post('crash', c),
});
post('done', result);
