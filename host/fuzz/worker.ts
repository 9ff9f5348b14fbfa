// One `wasmdrv fuzz --jobs N` job in its own thread.
import { parentPort, workerData } from 'node:worker_threads';
import { fuzzJob } from './fuzz.ts';

const d = workerData as { driver: Uint8Array; model: string; execs: number; seed: number; seedCorpus: Uint8Array[] };
parentPort!.postMessage(fuzzJob(d.driver, d.model, d.execs, d.seed, d.seedCorpus));
