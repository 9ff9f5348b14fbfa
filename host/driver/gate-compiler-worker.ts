// The compile thread's entry (dist/gate-compiler.js; gate-compiler.ts explains why it exists): each
// job is prepareInlineGate on the module it carries, under the WASMDRV_* environment the main thread
// had when it sent the job. It runs no driver code and loads binaryen once, on its first job.

import { parentPort } from 'node:worker_threads';
import { prepareInlineGate } from '../sandbox/inline-rewrite.ts';
import type { GateAnswer, GateJob } from './gate-compiler.ts';

const port = parentPort!;

function setEnv(env: Record<string, string>): void {
  for (const k of Object.keys(process.env)) if (k.startsWith('WASMDRV_') && !(k in env)) delete process.env[k];
  Object.assign(process.env, env);
}

port.on('message', async (job: GateJob) => {
  let answer: GateAnswer;
  try {
    setEnv(job.env);
    const out = await prepareInlineGate(job.label, job.spec, job.bytes, job.grant, job.mode, job.ringEntries);
    answer = { id: job.id, out };
  } catch (err) {
    answer = { id: job.id, error: (err as Error).message };
  }
  port.postMessage(answer, answer.out ? [answer.out.bytes.buffer as ArrayBuffer] : []);
});
