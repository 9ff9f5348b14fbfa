// The compile process's entry (dist/gate-compiler.js, forked by gate-compiler.ts, which explains why
// it exists): each job is prepareInlineGate on the module it carries, under the WASMDRV_* environment
// the host had when it sent the job. It runs no driver code and loads binaryen once, on its first job.
//
// Test hook (documented in docs/design.md; tests only): WASMDRV_GATE_CHILD_TEST_KILL=<n>[:<SIGNAL>] in
// a job's environment makes the process write a fake V8 check failure to stderr and kill itself with
// SIGNAL (default SIGKILL) when it gets that job on its attempt 1..n: 1 = the retry succeeds, 2 = the
// retry's process dies too. WASMDRV_GATE_CHILD_TEST_HANG=<n> makes it hang (blocked, never answering)
// on a job's attempt 1..n, for the host's deadline (WASMDRV_GATE_COMPILE_TIMEOUT_MS) to kill it.

import { prepareInlineGate } from '../sandbox/inline-rewrite.ts';
import type { GateAnswer, GateJob } from './gate-compiler.ts';

function setEnv(env: Record<string, string>): void {
  for (const k of Object.keys(process.env)) if (k.startsWith('WASMDRV_') && !(k in env)) delete process.env[k];
  Object.assign(process.env, env);
}

function testKill(job: GateJob): void {
  const hook = /^(\d+)(?::(SIG[A-Z0-9]+))?$/.exec(process.env.WASMDRV_GATE_CHILD_TEST_KILL ?? '');
  if (!hook || job.attempt > Number(hook[1])) return;
  process.stderr.write(`# Check failed: WASMDRV_GATE_CHILD_TEST_KILL (${job.label}, attempt ${job.attempt}).\n`);
  process.kill(process.pid, (hook[2] ?? 'SIGKILL') as NodeJS.Signals);
}

function testHang(job: GateJob): void {
  const n = Number(process.env.WASMDRV_GATE_CHILD_TEST_HANG ?? 0);
  // Blocked in the thread, as a hang in binaryen would be: not even 'disconnect' gets to run.
  if (job.attempt <= n) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}

/**
 * WASMDRV_GATE_CHILD_TEST_SLOW=<ms>: compute at about half duty (5 ms busy, 5 ms asleep) for `ms`
 * before the job, as a process starved of CPU would; WASMDRV_GATE_CHILD_TEST_SPIN=<n>: loop forever,
 * busy, on attempts 1..n (a hang that computes).
 */
function testSlow(job: GateJob): void {
  const slow = Number(process.env.WASMDRV_GATE_CHILD_TEST_SLOW ?? 0);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (const end = performance.now() + slow; performance.now() < end; ) {
    for (const t = performance.now() + 5; performance.now() < t; );
    Atomics.wait(nap, 0, 0, 5);
  }
  if (job.attempt <= Number(process.env.WASMDRV_GATE_CHILD_TEST_SPIN ?? 0)) for (;;);
}

const send = (a: GateAnswer) => process.send!(a);

process.on('message', async (job: GateJob) => {
  const t0 = performance.now();
  let answer: GateAnswer;
  try {
    setEnv(job.env);
    testKill(job);
    testHang(job);
    testSlow(job);
    const out = await prepareInlineGate(job.label, job.spec, job.bytes, job.grant, job.mode, job.ringEntries);
    answer = { id: job.id, out, ms: performance.now() - t0 };
  } catch (err) {
    answer = { id: job.id, error: (err as Error).message, errorName: (err as Error).name, ms: performance.now() - t0 };
  }
  send(answer);
});
// The host went away: nothing is left to answer.
process.on('disconnect', () => process.exit(0));
send({ ready: true });
