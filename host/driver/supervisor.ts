// The supervisor: what becomes of a driver after a fault. Owns the restart policy (a budget of
// restarts in a window, backoff doubling per restart), the decision after a fault (roll a reload
// still in its grace period back, stay down, or restart), the restart itself (the backend's device
// recovery, then a start that resets the device first, in the parked thread when the driver's own
// fault left it sound), "down for good", and the watchdog that turns a call past Limits.deadlineMs
// into a `deadline` fault. Each Driver (host/driver.ts) owns one and reports to it every fault, failed
// probe or load, and unexpected thread exit. Which requests survive a fault is the queue's rule
// (host/driver/queue.ts); what a rollback restores is kept by host/driver/reload.ts.
// The other two limits of a Limits object are enforced inside the worker thread, where the driver
// runs: the interrupt storm in host/sandbox/interrupts.ts, the log flood in host/sandbox/limiter.ts.

import type { LogLevel } from '../abi.ts';
import { type Fault, LoadError, RequestError } from '../faults.ts';
import type { Limits } from '../grant.ts';
import type { RingsState } from '../sandbox/ring-hook.ts';
import { type DriverShared, STAT } from '../sandbox/shared.ts';
import type { RequestQueue } from './queue.ts';
import type { Reloads } from './reload.ts';
import type { DriverWorker, RegisterWrite, StartOptions } from './thread.ts';

export type DriverState = 'starting' | 'running' | 'faulted' | 'restarting' | 'failed' | 'stopped';

/**
 * The supervisor's restart policy: after a fault the driver restarts (device reset, then probe) after
 * `backoffMs` doubling per restart up to `maxBackoffMs`, at most `budget` times in `windowMs`; then it
 * is marked failed and stays down.
 */
export interface RestartPolicy {
  budget: number;
  windowMs: number;
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_RESTART: RestartPolicy = { budget: 5, windowMs: 60_000, backoffMs: 50, maxBackoffMs: 5_000 };

/** The Driver as its supervisor sees it: the public fields a fault changes, and `start`. */
export interface Supervised {
  readonly name: string;
  readonly limits: Limits;
  readonly shared: DriverShared;
  readonly options: { recoverDevice?: () => string; resetSequence?: RegisterWrite[] };
  state: DriverState;
  lastFault?: Fault;
  faults: number;
  restarts: number;
  bytes: Uint8Array;
  emit(event: string, ...args: unknown[]): boolean;
  start(extra?: StartOptions): Promise<void>;
}

/** The Driver's private parts the supervisor works through. */
export interface DriverParts {
  readonly requests: RequestQueue;
  readonly reloads: Reloads;
  /** The worker serving now, if any. */
  worker(): DriverWorker | undefined;
  /** The worker that serves from now on; undefined when the supervisor parks or kills it. */
  setWorker(w: DriverWorker | undefined): void;
  /** A start still waiting for probe fails with `err`. */
  failStart(err: Error): void;
}

export class Supervisor {
  readonly policy: RestartPolicy | false;
  private restartTimes: number[] = [];
  private restartTimer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  /** The worker of a driver that faulted in Wasm: sound, parked, reusable for the restart. */
  private parked?: DriverWorker;
  /** Resolves once the faulted worker no longer touches the device: a restart waits for it. */
  private oldGone: Promise<void> = Promise.resolve();

  constructor(
    private readonly d: Supervised,
    private readonly the: DriverParts,
    restart: Partial<RestartPolicy> | false | undefined,
  ) {
    this.policy = restart === false ? false : { ...DEFAULT_RESTART, ...restart };
  }

  /** A fault ends this worker. */
  onFault(fault: Fault, released = false, rings?: RingsState): void {
    const d = this.d;
    if (d.state === 'stopped' || d.state === 'failed') return;
    const w = this.the.worker();
    // Answers the worker posted before it faulted count: take them before deciding who lost what.
    w?.drain();
    if (this.the.worker() !== w) return; // draining handled a fault already
    d.faults++;
    d.lastFault = fault;
    // Only a worker that reported its own fault knows where its rings were; else a rollback starts them afresh.
    this.the.reloads.faultRings = rings;
    this.stopWatchdog();
    this.the.setWorker(undefined);
    // A worker that reported its own fault has released the device; one stopped from here (deadline,
    // a thread that died) may still touch it until it is gone: the restart waits for that.
    this.dropParked();
    if (released && w && this.policy) {
      this.parked = w;
      this.oldGone = Promise.resolve();
    } else {
      this.oldGone = w ? w.kill() : Promise.resolve();
    }
    d.emit('fault', fault);
    this.the.failStart(
      Object.assign(new Error(`${d.name}: ${fault.kind} during ${fault.phase}: ${fault.message}`), { fault }),
    );
    this.handleFault(fault);
  }

  /**
   * The decision. The worker has masked the line and is gone. Requests that were in the driver get
   * 'driver-restarted' (or 'driver-failed'); requests arriving while it restarts wait in the queue and
   * are served by the restarted driver, or get 'driver-failed' if it stays down.
   */
  private handleFault(fault: Fault): void {
    const d = this.d;
    this.the.reloads.abandon(fault.kind);
    const prev = this.the.reloads.takeRollback();
    if (prev) {
      // The new module faulted within its grace period: back to the old module and the state it had.
      d.bytes = prev.bytes;
      this.dropParked();
      this.the.requests.takeBackInflight(d.shared.stats[STAT.serving], 'driver restarted (reload rolled back)');
      d.state = 'restarting';
      d.restarts++;
      this.oldGone
        .then(() =>
          d.state === 'restarting'
            ? d.start(
                prev.state
                  ? { restoreState: prev.state, restoreRings: this.the.reloads.faultRings }
                  : { resetFirst: true },
              )
            : undefined,
        )
        .then(
          () => d.emit('rolled-back', fault),
          () => {
            /* reported through the fault path */
          },
        );
      return;
    }
    if (!this.policy) {
      this.dropParked();
      d.state = 'faulted';
      this.the.requests.failAll(new RequestError(`${d.name}: driver faulted`, 'driver-faulted'));
      return;
    }
    this.the.requests.takeBackInflight(d.shared.stats[STAT.serving], 'driver restarted');
    d.state = 'restarting';
    this.scheduleRestart();
  }

  /** The probe of a start failed (`message` says how): its worker ends; a restart tries again within budget. */
  probeFailed(message: string): void {
    this.the.failStart(new LoadError(message));
    void this.the.worker()?.kill();
    this.the.setWorker(undefined);
    this.stopWatchdog();
    // A restarted driver whose probe fails has not brought the device back: try again within budget.
    if (this.d.state === 'restarting') this.scheduleRestart();
    else this.down('stopped', new RequestError(message, 'driver-failed'));
  }

  /** A start could not load the module (`message` says why): its worker ends. */
  loadFailed(message: string): void {
    this.the.failStart(new LoadError(message));
    void this.the.worker()?.kill();
    this.the.setWorker(undefined);
    this.stopWatchdog();
    // A restart that cannot even load will not load next time either.
    const restarting = this.d.state === 'restarting';
    this.down(restarting ? 'failed' : 'stopped', new RequestError(`${this.d.name}: ${message}`, 'driver-failed'));
    if (restarting) this.d.emit('failed', this.d.lastFault);
  }

  /** Down for good (stopped after a failed load, or failed): every pending request gets `err`. */
  private down(state: 'stopped' | 'failed', err: RequestError): void {
    this.d.state = state;
    this.dropParked();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.the.requests.failAll(err);
  }

  private scheduleRestart(): void {
    const d = this.d;
    const policy = this.policy;
    if (!policy) return;
    const now = Date.now();
    this.restartTimes = this.restartTimes.filter((t) => now - t < policy.windowMs);
    if (this.restartTimes.length >= policy.budget) {
      this.down(
        'failed',
        new RequestError(
          `${d.name}: driver failed (${policy.budget} restarts in ${policy.windowMs} ms)`,
          'driver-failed',
        ),
      );
      d.emit('failed', d.lastFault);
      return;
    }
    const delay = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** this.restartTimes.length);
    this.restartTimes.push(now);
    const restart = () => {
      this.restartTimer = undefined;
      if (d.state !== 'restarting') return;
      if (d.options.recoverDevice) {
        try {
          d.emit('log', {
            driver: d.name,
            level: 'info' as LogLevel,
            message: `device recovery: ${d.options.recoverDevice()}`,
          });
        } catch (err) {
          d.state = 'failed';
          this.the.requests.failAll(
            new RequestError(
              `${d.name}: driver failed (device recovery failed: ${(err as Error).message})`,
              'driver-failed',
            ),
          );
          d.emit('failed', d.lastFault);
          return;
        }
      }
      d.restarts++;
      d.start({ resetFirst: true, resetSequence: d.options.resetSequence }).then(
        () => d.emit('restarted', { restarts: d.restarts }),
        () => {
          /* a fault or a failed probe during the restart was handled where it was reported */
        },
      );
    };
    // No backoff: restart as soon as the old worker no longer touches the device.
    if (delay <= 0) {
      void this.oldGone.then(restart);
      return;
    }
    this.restartTimer = setTimeout(() => void this.oldGone.then(restart), delay);
    this.restartTimer.unref();
  }

  /** A pending restart does not happen (the driver is being stopped). */
  cancelRestart(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
  }

  /**
   * Restart in place: a fresh instance and device session in the thread that reported the trap (it
   * keeps its setup, the rewritten module with the register gate included). False when no sound
   * thread is parked for `bytes`; one that cannot serve is ended, and the start takes a new thread.
   */
  restartInPlace(bytes: Uint8Array, extra: StartOptions): boolean {
    const parked = this.parked;
    this.parked = undefined;
    if (parked && !parked.gone && parked.bytes === bytes) {
      this.the.setWorker(parked);
      parked.send({
        t: 'restart',
        resetFirst: extra.resetFirst ?? false,
        restoreState: extra.restoreState,
        restoreRings: extra.restoreRings,
        resetSequence: extra.resetSequence,
      });
      this.startWatchdog();
      return true;
    }
    void parked?.kill();
    return false;
  }

  dropParked(): void {
    const p = this.parked;
    this.parked = undefined;
    void p?.kill();
  }

  /** A worker's thread ended. */
  workerExited(w: DriverWorker): void {
    const d = this.d;
    if (w === this.parked) this.parked = undefined;
    if (w !== this.the.worker()) return;
    if (d.state === 'running' || d.state === 'starting' || d.state === 'restarting') {
      // The thread ended without saying why: the host's side broke, not the driver.
      this.onFault({
        driver: d.name,
        kind: 'host-error',
        message: 'driver worker exited unexpectedly',
        phase: d.shared.phase,
        stack: [],
        recorder: [],
        time: Date.now(),
      });
    }
  }

  // --- deadlines ---------------------------------------------------------------------------------------

  startWatchdog(): void {
    const d = this.d;
    this.stopWatchdog();
    const tick = Math.max(5, Math.min(50, d.limits.deadlineMs / 4));
    this.watchdog = setInterval(() => {
      const phase = d.shared.phase;
      if (phase === 'idle' || !this.the.worker()) return;
      const since = Date.now() - d.shared.stats[STAT.phaseStartMs];
      if (since > d.limits.deadlineMs) {
        this.onFault({
          driver: d.name,
          kind: 'deadline',
          phase,
          stack: [],
          time: Date.now(),
          message: `${d.name}: ${phase} ran ${since} ms, past its ${d.limits.deadlineMs} ms deadline`,
          recorder: d.shared.entries().slice(-32),
        });
      }
    }, tick);
    this.watchdog.unref();
  }

  stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }
}
