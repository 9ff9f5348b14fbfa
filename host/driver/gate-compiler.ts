// Compiling the register gate into a driver's module (sandbox/inline-rewrite.ts, binaryen.js) in a
// process of its own. binaryen's rewrite is synchronous: in the main thread it stopped everything else
// the process does for as long as it ran (under the QEMU guest's emulated CPU a hot reload of the e1000
// driver held the TAP bridge's loop for up to 1.4 s, issue 19). A compile thread fixed that, but a thread
// shares the process: in the QEMU e1000 reload scenario the whole host died once of a V8 bug while the
// thread ran binaryen (SIGTRAP, "Check failed: it->second.Size() > offset" in a stack walk from
// Runtime_WasmTriggerTierUp), and binaryen parses third-party driver bytes. So one compile *process*
// (node:child_process fork of this Node, structured data over IPC with serialization 'advanced'),
// started on first use and unref'd (it never keeps the host alive; ref'd while jobs are in flight),
// runs prepareInlineGate on a copy of the module; the host only waits for its answer.
//
// The answer is the same bytes the main thread would make (same function, same inputs, the same
// WASMDRV_* environment sent with each job). If the process dies with jobs in flight, a new one is
// started and those jobs are tried once more there; a job whose second process dies too is refused
// with a LoadError naming the driver and how the process died. A process that does not answer a job
// within the deadline (gateDeadlineMs) and is not computing (it used almost no CPU in the last period:
// blocked or stopped), or has used a whole deadline of CPU (a loop), is hung: it is killed (SIGKILL) and
// counts as a death, so the job is retried once, then refused ("timed out after N ms"). One that is
// computing on a starved CPU gets another period, up to ten. Never after a death does a job run in
// the main thread: that would expose the host to the very crash. The main thread compiles only when no
// process can be started at all (spawn error, or it exits before it is ready) or the inputs cannot be
// copied to it, as the compile thread's fallback did, and says so in the driver's log.

import type { ChildProcess } from 'node:child_process';
import { fork } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LogLevel } from '../abi.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { LoadError } from '../faults.ts';
import type { Grant } from '../grant.ts';
import { packageRoot } from '../native.ts';
import type { GateMode } from '../sandbox/gate.ts';
import type { InlineGateBytes } from '../sandbox/inline-gate.ts';
import { prepareInlineGate } from '../sandbox/inline-rewrite.ts';
import { inheritedExecArgv } from './exec-argv.ts';

/** One job for the compile process: prepareInlineGate's arguments, and the environment it reads. */
export interface GateJob {
  id: number;
  /** 1 for the first process that gets the job, 2 for the retry after that process died. */
  attempt: number;
  label: string;
  spec: DeviceSpec;
  bytes: Uint8Array;
  grant: Grant;
  mode: GateMode;
  ringEntries: number;
  env: Record<string, string>;
}

/**
 * The process's messages: `ready` once it runs (before binaryen is loaded), then per job the rewritten
 * module (or undefined: no gate inline) or the error it threw, and the ms the job took in the process.
 */
export type GateAnswer =
  | { ready: true }
  | { id: number; out?: InlineGateBytes; error?: string; errorName?: string; ms: number };

/** Where the compile process says what happened to a driver's job (a retry, a death). */
export type GateLog = (level: LogLevel, message: string) => void;

type Pending = {
  job: GateJob;
  log?: GateLog;
  /** How its first process died (set when it is retried). */
  firstDeath?: string;
  /** Its next deadline check in the process it was sent to. */
  timer?: NodeJS.Timeout;
  resolve: (r: InlineGateBytes | undefined) => void;
  reject: (e: Error) => void;
};

type Child = {
  proc: ChildProcess;
  pending: Map<number, Pending>;
  ready: boolean;
  gone: boolean;
  stderr: string;
  /** performance.now() at the fork, the ms from it to the ready message, and whether a first answer was logged. */
  forkedAt: number;
  readyMs?: number;
  answered: boolean;
};

/** How much of the process's output (stdout and stderr) is kept for the message after a death. */
const TAIL_BYTES = 4096;

let child: Child | undefined;
let nextId = 1;
/** A hung process never sees the host's disconnect: it goes with the host (set up with the first process). */
let killOnExit = false;
/**
 * Jobs answered by a compile process and by the main thread (no process could start, or inputs that
 * cannot be copied), jobs sent again after their process died, processes that died (with or without
 * jobs; a killed hung one too), processes killed for missing a job's deadline, and jobs refused
 * because their retry's process died too. For tests and status.
 */
export const gateCompiles = { process: 0, mainThread: 0, retries: 0, deaths: 0, timeouts: 0, refused: 0 };

/**
 * How long a job may wait for its answer once sent: 60 s, or WASMDRV_GATE_COMPILE_TIMEOUT_MS. It only
 * catches a hung process, far above the slowest job (docs/design.md, "A hang").
 */
export function gateDeadlineMs(): number {
  const ms = Number(process.env.WASMDRV_GATE_COMPILE_TIMEOUT_MS);
  return Number.isFinite(ms) && ms > 0 ? ms : 60_000;
}

/** The compile process's pid, if one runs (tests: a killed one must be gone). */
export function gateCompilerPid(): number | undefined {
  return child?.proc.pid;
}

/** The WASMDRV_* variables, which prepareInlineGate's choices read (e.g. WASMDRV_INSTANCE_GATE). */
function wasmdrvEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('WASMDRV_') && v !== undefined) env[k] = v;
  return env;
}

/** The fallback, with `why` no process could be had, said in the driver's log. */
function inMainThread(p: Pending, why: string): void {
  gateCompiles.mainThread++;
  const { job } = p;
  p.log?.('warn', `the gate compile process ${why}: compiling ${job.label}'s gate in the main thread`);
  prepareInlineGate(job.label, job.spec, job.bytes, job.grant, job.mode, job.ringEntries).then(p.resolve, p.reject);
}

/** The one line of a dead process's output that says most: V8's "Check failed" / "Fatal", else the last. */
export function crashLine(tail: string): string {
  const lines = tail
    .split('\n')
    .map((l) => l.replace(/^[#\s]+/, '').trim())
    .filter(Boolean);
  const line =
    lines.find((l) => /check failed|debug check/i.test(l)) ??
    lines.find((l) => /fatal|error|abort|out of memory/i.test(l)) ??
    lines.at(-1) ??
    '';
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}

function how(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}

function setRef(c: Child): void {
  const on = c.pending.size > 0;
  const ch = c.proc.channel as { ref(): void; unref(): void } | undefined | null;
  if (on) {
    c.proc.ref();
    ch?.ref();
  } else {
    c.proc.unref();
    ch?.unref();
  }
}

/** Send `p` to the compile process (started if there is none). Why not, when it cannot be sent. */
function send(p: Pending): string | undefined {
  let c: Child;
  try {
    c = child ??= startChild();
  } catch (err) {
    return `could not be started (${(err as Error).message})`; // fork threw, or its entry file is missing
  }
  try {
    c.proc.send(p.job);
  } catch (err) {
    return `could not be sent the job (${(err as Error).message})`; // a DataCloneError
  }
  c.pending.set(p.job.id, p);
  const ms = gateDeadlineMs();
  const pid = c.proc.pid;
  const cpu0 = pid === undefined ? undefined : cpuMs(pid);
  let last = cpu0;
  let periods = 0;
  // At each deadline: hung, or computing on a starved CPU (a loaded machine, a TCG guest beside other
  // work: one e1000 load in a guest on a host running two VMs and the test suite missed 30 s twice).
  const check = () => {
    periods++;
    const cpu = pid === undefined ? undefined : cpuMs(pid);
    const verdict = deadlineVerdict(ms, periods, cpu0, last, cpu);
    if (verdict === 'wait') {
      last = cpu;
      p.timer = setTimeout(check, ms);
    } else hung(c, verdict);
  };
  p.timer = setTimeout(check, ms);
  setRef(c);
  return undefined;
}

/** Periods of `ms` a computing job may take, at most: a starved process is not given forever. */
export const MAX_DEADLINE_PERIODS = 10;

/**
 * At a job's `periods`-th deadline of `ms`: 'wait' (another period) while its process is computing
 * (it used more than 1% of the period's CPU time, or one clock tick) and has used less than `ms` of CPU
 * since the job was sent; else why it is hung. A process whose CPU time cannot be read is hung at
 * the first deadline, as before (CPU times in ms: cpuMs).
 */
export function deadlineVerdict(
  ms: number,
  periods: number,
  cpu0: number | undefined,
  last: number | undefined,
  cpu: number | undefined,
): 'wait' | string {
  // The same words for the same kind of hang, whatever the periods: a job's two attempts then read
  // as one ("... twice"). A new process's start counts as computing, so its hang shows a period later.
  const wall = `timed out after ${ms} ms`;
  if (cpu0 === undefined || last === undefined || cpu === undefined) return wall;
  if (cpu - last <= Math.max(ms / 100, TICK_MS)) return wall; // blocked or stopped: not computing
  if (cpu - cpu0 >= ms) return `${wall} (a whole deadline of CPU: a loop)`;
  return periods >= MAX_DEADLINE_PERIODS ? `${wall} (still computing after ${periods} deadlines)` : 'wait';
}

/** /proc's CPU times count clock ticks of USER_HZ, 100 per second on Linux's architectures. */
const TICK_MS = 10;

/** The CPU time (user + system, ms) process `pid` has used (/proc/PID/stat); undefined if unreadable. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // after "pid (comm) ": state is field 3; utime and stime are fields 14 and 15
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return Number.isFinite(ticks) ? ticks * TICK_MS : undefined;
  } catch {
    return undefined;
  }
}

/** `c` missed a job's deadline (`why`): killed, and gone as a death is (its jobs retried once, or refused). */
function hung(c: Child, why: string): void {
  if (c.gone) return;
  gateCompiles.timeouts++;
  c.proc.kill('SIGKILL');
  gone(c, why);
}

function startChild(): Child {
  // WASMDRV_GATE_CHILD_TEST_ENTRY (tests only): another entry, to make the start fail.
  const entry = process.env.WASMDRV_GATE_CHILD_TEST_ENTRY ?? join(packageRoot(), 'dist', 'gate-compiler.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing`);
  if (!killOnExit) {
    killOnExit = true;
    process.on('exit', () => child?.proc.kill('SIGKILL'));
  }
  // Not the parent's entry flags (--input-type, -e CODE, ...): exec-argv.ts.
  const execArgv = inheritedExecArgv();
  const proc = fork(entry, [], {
    execPath: process.execPath,
    execArgv,
    serialization: 'advanced',
    // Its output never mixes into the host's (a CLI's --json): kept, the tail put into a death's message.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const c: Child = {
    proc,
    pending: new Map(),
    ready: false,
    gone: false,
    stderr: '',
    forkedAt: performance.now(),
    answered: false,
  };
  const keep = (d: Buffer) => {
    c.stderr = (c.stderr + d.toString('utf8')).slice(-TAIL_BYTES);
  };
  for (const s of [proc.stdout, proc.stderr]) {
    s?.on('data', keep);
    (s as unknown as { unref?: () => void } | null)?.unref?.();
  }
  setRef(c);
  proc.on('message', (a: GateAnswer) => {
    if ('ready' in a) {
      c.ready = true;
      c.readyMs = performance.now() - c.forkedAt;
      return;
    }
    const p = c.pending.get(a.id);
    if (!p) return;
    clearTimeout(p.timer);
    c.pending.delete(a.id);
    setRef(c);
    gateCompiles.process++;
    if (!c.answered && process.env.WASMDRV_DEBUG) {
      // What the start cost (seconds under the QEMU guest's emulated CPU), with WASMDRV_DEBUG: once per process.
      c.answered = true;
      const first = (performance.now() - c.forkedAt).toFixed(0);
      p.log?.(
        'debug',
        `gate compile process ready ${c.readyMs?.toFixed(0)} ms after its fork, first answer at ${first} ms`,
      );
    }
    if (a.error === undefined) p.resolve(a.out);
    else if (a.errorName === 'LoadError') p.reject(new LoadError(a.error));
    else p.reject(new Error(a.error));
  });
  // Spawn errors come as 'error' before 'close'; a failed send after the process died, too (then
  // 'close' follows and decides).
  proc.on('error', (err) => {
    if (proc.pid === undefined) gone(c, `could not be started (${err.message})`);
  });
  proc.on('close', (code, signal) => gone(c, how(code, signal)));
  return c;
}

/** Process `c` is gone: its jobs go to a new process once, or are refused; never to the main thread. */
function gone(c: Child, died: string): void {
  if (c.gone) return;
  c.gone = true;
  if (child === c) child = undefined;
  const jobs = [...c.pending.values()];
  for (const p of jobs) clearTimeout(p.timer);
  c.pending.clear();
  if (!c.ready) {
    // It never ran: a process cannot be had. A first try compiles in the main thread, as the compile
    // thread's fallback did; a retry (its first process died in the job) is refused instead.
    for (const p of jobs) {
      const { job } = p;
      if (job.attempt >= 2) {
        gateCompiles.refused++;
        p.reject(
          new LoadError(`gate compile process for ${job.label} died, and a new one ${died} before it was ready`),
        );
        continue;
      }
      inMainThread(p, `${died} before it was ready`);
    }
    return;
  }
  gateCompiles.deaths++;
  const line = crashLine(c.stderr);
  const said = line ? ` (its output ended: ${line})` : '';
  for (const p of jobs) {
    const { job } = p;
    if (job.attempt >= 2) {
      gateCompiles.refused++;
      p.log?.('error', `gate compile process for ${job.label} ${died} again${said}`);
      if (c.stderr) p.log?.('debug', `gate compile process output: ${c.stderr.trim().split('\n').join(' | ')}`);
      const twice = p.firstDeath === died ? `${died} twice` : `${p.firstDeath}, then its retry's process ${died}`;
      p.reject(new LoadError(`gate compile process for ${job.label} ${twice}${said}`));
      continue;
    }
    gateCompiles.retries++;
    p.log?.('warn', `gate compile process for ${job.label} ${died}${said}: retrying once in a new process`);
    job.attempt++;
    p.firstDeath = died;
    const why = send(p);
    if (why) {
      gateCompiles.refused++;
      p.reject(new LoadError(`gate compile process for ${job.label} ${died}, and a new one ${why}`));
    }
  }
}

/** Start the compile process now (if none runs), so that the first job does not wait for its start. */
export function startGateCompiler(): void {
  if (child) return;
  try {
    child = startChild();
  } catch {
    // The first job falls back to the main thread, and says so.
  }
}

/**
 * prepareInlineGate (sandbox/inline-rewrite.ts) in the compile process: the module with the register
 * gate compiled in, or undefined when the gate is not served inline. `log` hears of a retry or a death.
 */
export function prepareGate(
  label: string,
  spec: DeviceSpec,
  bytes: Uint8Array,
  grant: Grant,
  mode: GateMode,
  ringEntries: number,
  log?: GateLog,
): Promise<InlineGateBytes | undefined> {
  if (mode === 'off') return Promise.resolve(undefined);
  // Not a simulated model's live state (`sim`: shared memory, which a process cannot share): the
  // rewrite never reads it, and a real device has none.
  const { sim: _model, ...gateSpec } = spec;
  const job: GateJob = {
    id: nextId++,
    attempt: 1,
    label,
    spec: gateSpec,
    bytes,
    grant,
    mode,
    ringEntries,
    env: wasmdrvEnv(),
  };
  return new Promise((resolve, reject) => {
    const p: Pending = { job, log, resolve, reject };
    const why = send(p);
    if (why) inMainThread(p, why);
  });
}
