// Compiling the register gate into a driver's module (sandbox/inline-rewrite.ts, binaryen.js) off the
// main thread. binaryen's rewrite is synchronous: in the main thread it stopped everything else the
// process does for as long as it ran — under the QEMU guest's emulated CPU a hot reload of the e1000
// driver held the TAP bridge's loop for up to 1.4 s (issue 19's reload stall). Here one compile thread,
// started on first use and unref'd (it never keeps a process alive), runs prepareInlineGate on a copy
// of the module; the main thread only waits for its answer.
//
// The answer is the same bytes the main thread would have made (same function, same inputs, the same
// WASMDRV_* environment sent with each job). When the thread cannot be used — it failed to start, it
// died with jobs in flight, or the inputs cannot be copied to it — the job runs in the main thread as
// before: a slower route to the same answer, never a different one. The thread is never terminated
// after a driver's fault (it runs no driver code), which is what made binaryen in driver workers unsafe.

import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { DeviceSpec } from '../device-spec.ts';
import type { Grant } from '../grant.ts';
import { packageRoot } from '../native.ts';
import type { GateMode } from '../sandbox/gate.ts';
import type { InlineGateBytes } from '../sandbox/inline-gate.ts';
import { prepareInlineGate } from '../sandbox/inline-rewrite.ts';

/** One job for the compile thread: prepareInlineGate's arguments, and the environment it reads. */
export interface GateJob {
  id: number;
  label: string;
  spec: DeviceSpec;
  bytes: Uint8Array;
  grant: Grant;
  mode: GateMode;
  ringEntries: number;
  env: Record<string, string>;
}

/** The thread's answer: the rewritten module (or undefined: no gate inline), or the error it threw. */
export type GateAnswer = { id: number; out?: InlineGateBytes; error?: string };

type Pending = { job: GateJob; resolve: (r: InlineGateBytes | undefined) => void; reject: (e: Error) => void };

let thread: { worker: Worker; pending: Map<number, Pending> } | undefined;
let nextId = 1;
/** Jobs answered by the thread and by the main thread (the fallback), for tests and status. */
export const gateCompiles = { thread: 0, mainThread: 0 };

/** The WASMDRV_* variables, which prepareInlineGate's choices read (e.g. WASMDRV_INSTANCE_GATE). */
function wasmdrvEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('WASMDRV_') && v !== undefined) env[k] = v;
  return env;
}

function inMainThread(job: GateJob): Promise<InlineGateBytes | undefined> {
  gateCompiles.mainThread++;
  return prepareInlineGate(job.label, job.spec, job.bytes, job.grant, job.mode, job.ringEntries);
}

function startThread(): NonNullable<typeof thread> {
  // Not the parent's --input-type/--eval flags: they are about the parent's own entry, and a worker refuses them.
  const execArgv = process.execArgv.filter((a) => !/^--(input-type|eval|print)\b|^-[ep]$/.test(a));
  const worker = new Worker(join(packageRoot(), 'dist', 'gate-compiler.js'), {
    stdout: false,
    stderr: false,
    execArgv,
  });
  worker.unref();
  const t = { worker, pending: new Map<number, Pending>() };
  worker.on('message', (a: GateAnswer) => {
    const p = t.pending.get(a.id);
    if (!p) return;
    t.pending.delete(a.id);
    if (t.pending.size === 0) worker.unref();
    gateCompiles.thread++;
    if (a.error !== undefined) p.reject(new Error(a.error));
    else p.resolve(a.out);
  });
  // A thread that fails hands its jobs back to the main thread; the next job starts a new one.
  const fail = () => {
    if (thread === t) thread = undefined;
    const jobs = [...t.pending.values()];
    t.pending.clear();
    for (const p of jobs) inMainThread(p.job).then(p.resolve, p.reject);
  };
  worker.on('error', fail);
  worker.on('exit', fail);
  return t;
}

/**
 * prepareInlineGate (sandbox/inline-rewrite.ts) in the compile thread: the module with the register
 * gate compiled in, or undefined when the gate is not served inline.
 */
export function prepareGate(...args: Parameters<typeof prepareInlineGate>): Promise<InlineGateBytes | undefined> {
  const [label, spec, bytes, grant, mode, ringEntries] = args;
  const job: GateJob = { id: nextId++, label, spec, bytes, grant, mode, ringEntries, env: wasmdrvEnv() };
  if (mode === 'off') return Promise.resolve(undefined);
  let t: NonNullable<typeof thread>;
  try {
    t = thread ??= startThread();
    t.worker.postMessage(job);
  } catch {
    return inMainThread(job); // the inputs cannot be copied (DataCloneError) or the thread cannot start
  }
  t.worker.ref(); // a load waiting for its gate keeps the process up, as the main-thread compile did
  return new Promise((resolve, reject) => t.pending.set(job.id, { job, resolve, reject }));
}
