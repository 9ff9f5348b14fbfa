// A loaded driver as applications see it: send requests, read status, listen for logs and faults.
//
// A Driver outlives its workers. Each worker is one "store" (STYLE.md): a fresh Wasm instance over
// the device; a restart or reload makes a new one. The Driver owns the request queue so that no
// request is ever dropped: every request is answered with a response, a driver error, or a distinct
// RequestError when the driver faulted, restarted, failed or stopped.

import { EventEmitter } from 'node:events';
import type { LogLevel } from './abi.ts';
import type { DeviceSpec } from './device-spec.ts';
import { type Fault, type RecorderEntry, LoadError, RequestError } from './faults.ts';
import { loadNative } from './native.ts';
import { DEFAULT_LIMITS, type Grant, type Limits } from './grant.ts';
import type { FromWorker } from './sandbox/protocol.ts';
import { DriverShared, STAT } from './sandbox/shared.ts';
import type { GateMode } from './sandbox/gate.ts';
import type { RingsState } from './sandbox/ring-hook.ts';
import { prepareInlineGate } from './sandbox/inline-rewrite.ts';
import { DriverWorker, type RegisterWrite, compileDriver, refillSpare } from './driver/thread.ts';
import { RequestQueue } from './driver/queue.ts';
import { type ReloadOptions, type ReloadResult, Reloads } from './driver/reload.ts';

export type DriverState = 'starting' | 'running' | 'faulted' | 'restarting' | 'failed' | 'stopped';

export type { ReloadOptions, ReloadResult } from './driver/reload.ts';

export interface DriverStats {
  regReads: number;
  regWrites: number;
  portIns: number;
  portOuts: number;
  interrupts: number;
  coalesced: number;
  requests: number;
  logs: number;
  faults: number;
  restarts: number;
}

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

/**
 * How long stop() lets a running driver's `remove` export finish before it ends the worker (cancel
 * fd, then terminate), whatever the driver's deadline: a driver that spins, or whose manifest asked
 * for a long deadline, is gone within about this plus the ~5-15 ms terminate takes.
 */
export const STOP_GRACE_MS = 250;

export const DEFAULT_RESTART: RestartPolicy = { budget: 5, windowMs: 60_000, backoffMs: 50, maxBackoffMs: 5_000 };

export interface DriverOptions {
  name: string;
  limits?: Partial<Limits>;
  grant?: Grant;
  /** Flight recorder entries kept (a power of two). Default 256. */
  recorderSize?: number;
  /**
   * How memory-backed registers are served: 'record-all' (default), 'record-writes' (reads served by
   * the Wasm gate are not counted or recorded: cheaper, for RAM-backed register files), 'off'.
   */
  registerGate?: GateMode;
  /** Restart policy, or false to leave a faulted driver down. Default DEFAULT_RESTART. */
  restart?: Partial<RestartPolicy> | false;
  /**
   * Register writes that put the device in its power-on state, applied before a restarted driver's
   * probe instead of the driver's own `reset` export.
   */
  resetSequence?: RegisterWrite[];
  /**
   * Under a trust policy: checks a module before a hot reload may use it (throws LoadError). Set by
   * package/load.ts, so that a reload passes the same policy as the load.
   */
  admitReload?: (bytes: Uint8Array) => void;
  /**
   * The device backend's recovery, run after a fault and before the restart (VFIO: quiesce, reset,
   * unmap and remap the DMA windows; host/devices/vfio.ts). Returns a line for the log.
   */
  recoverDevice?: () => string;
}

const sharedAreas = new FinalizationRegistry<number>((fd) => {
  try {
    loadNative().close(fd);
  } catch {
    /* already closed */
  }
});

export class Driver extends EventEmitter {
  state: DriverState = 'starting';
  lastFault?: Fault;
  readonly limits: Limits;
  readonly shared: DriverShared;
  private worker?: DriverWorker;
  /** Every request from the caller's promise to its answer (host/driver/queue.ts). */
  private readonly requests: RequestQueue;
  private watchdog?: NodeJS.Timeout;
  /** The compiled module for `bytes`, shared with every worker of this driver. */
  private module?: { bytes: Uint8Array; module?: WebAssembly.Module };
  /** The worker of a driver that faulted in Wasm: sound, parked, reusable for the restart. */
  private parked?: DriverWorker;
  faults = 0;
  restarts = 0;
  /** The driver's io buffer in bytes (reported at probe and reload); larger payloads are refused here. */
  ioSize?: number;
  /** Regions the running instance's Wasm register gate serves (reported by the worker at probe). */
  gateRegions: number[] = [];
  /** How the gate is linked: 'inline' (compiled into the driver), 'instance' (a second Wasm instance), 'off'. */
  gateKind: 'inline' | 'instance' | 'off' = 'off';
  readonly restartPolicy: RestartPolicy | false;
  private restartTimes: number[] = [];
  private restartTimer?: NodeJS.Timeout;
  private ready?: { resolve: () => void; reject: (e: Error) => void };
  /** Reloads waiting for their answer, and what a young one would roll back to (host/driver/reload.ts). */
  private readonly reloads = new Reloads();

  constructor(
    readonly name: string,
    readonly device: DeviceSpec,
    public bytes: Uint8Array,
    readonly options: DriverOptions,
  ) {
    super();
    this.requests = new RequestQueue(name, () => this.ioSize);
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.restartPolicy = options.restart === false ? false : { ...DEFAULT_RESTART, ...options.restart };
    // A memfd, so that the register gate in the worker can map it into its own memory. It stays open
    // for restarts and reloads; it is closed when this handle is garbage.
    const area = DriverShared.createMapped(options.recorderSize ?? 256, `wasmdrv-shared:${name}`);
    this.shared = new DriverShared(area);
    sharedAreas.register(this, area.fd);
  }

  /** Start a worker and wait for probe. Rejects with LoadError or an Error naming the probe status. */
  async start(
    extra: {
      resetFirst?: boolean;
      restoreState?: Uint8Array;
      restoreRings?: RingsState;
      resetSequence?: RegisterWrite[];
    } = {},
  ): Promise<void> {
    if (this.module?.bytes !== this.bytes) this.module = { bytes: this.bytes, module: await compileDriver(this.bytes) };
    if (this.state === 'stopped' || this.state === 'failed') throw new LoadError(`${this.name}: stopped while loading`);
    return new Promise((resolve, reject) => {
      this.ready = { resolve, reject };
      // A worker killed in a handler leaves its phase and start time behind in shared memory; the
      // watchdog must not hold them against the new worker before it has set its own.
      this.shared.setPhase('idle');
      this.shared.stats[STAT.serving] = 0;
      const parked = this.parked;
      this.parked = undefined;
      if (parked && !parked.gone && parked.bytes === this.bytes) {
        // Restart in place: a fresh instance and device session in the thread that reported the trap
        // (it keeps its setup, the rewritten module with the register gate included).
        this.worker = parked;
        parked.send({
          t: 'restart',
          resetFirst: extra.resetFirst ?? false,
          restoreState: extra.restoreState,
          restoreRings: extra.restoreRings,
          resetSequence: extra.resetSequence,
        });
        this.startWatchdog();
        return;
      }
      void parked?.kill();
      // The register gate is compiled into the module here, in the main thread (inline-rewrite.ts).
      const mode = this.options.registerGate ?? 'record-all';
      const bytes = this.bytes;
      const module = this.module!.module;
      prepareInlineGate(this.name, this.device, bytes, this.options.grant ?? {}, mode, this.shared.entryCount).then(
        (inlineGate) => {
          // Stopped while the module was being rewritten: start nothing.
          if (this.state === 'stopped') return reject(new LoadError(`${this.name}: stopped before it started`));
          this.worker = new DriverWorker(
            this.name,
            this.device,
            bytes,
            module,
            this.shared,
            this.limits,
            this.options.grant ?? {},
            mode,
            { ...extra, inlineGate },
            (m, w) => this.onMessage(m, w),
            (w) => this.onExit(w),
          );
          this.startWatchdog();
        },
        reject,
      );
    });
  }

  /** Send request `op` with `data`; resolves with the driver's response bytes. */
  request(op: number, data: Uint8Array = new Uint8Array()): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      if (this.state === 'failed') return reject(new RequestError(`${this.name}: driver failed`, 'driver-failed'));
      if (data.length > 1 << 20)
        return reject(new RequestError(`${this.name}: request of ${data.length} bytes is too large`, 'too-large'));
      if (this.state === 'stopped') return reject(new RequestError(`${this.name}: driver stopped`, 'driver-stopped'));
      if (this.state === 'faulted') return reject(new RequestError(`${this.name}: driver faulted`, 'driver-faulted'));
      if (this.ioSize !== undefined && data.length > this.ioSize) return reject(this.requests.tooLarge(data.length));
      this.requests.add(op, data, resolve, reject);
      this.pump();
    });
  }

  /** Forward queued requests to a running worker (the worker serialises them). */
  private pump(): void {
    this.requests.pump(this.state === 'running' ? this.worker : undefined);
  }

  /**
   * Hot reload: swap this driver's module without losing an interrupt or a request (host/reload.ts
   * explains the procedure). Resolves with the outcome; a refused swap leaves the old module running.
   */
  reload(module: Uint8Array, opts: ReloadOptions = {}): Promise<ReloadResult> {
    return new Promise((resolve, reject) => {
      if (this.state !== 'running' || !this.worker) {
        return reject(new Error(`${this.name}: cannot reload a driver that is ${this.state}`));
      }
      try {
        this.options.admitReload?.(module);
      } catch (err) {
        return reject(err);
      }
      const id = this.requests.newId();
      this.reloads.expect(id, (r) => {
        if (r.ok) {
          this.reloads.keep(this.bytes, r.state, opts.graceMs ?? 1000);
          this.bytes = module;
          if (r.ioSize !== undefined) this.ioSize = r.ioSize;
          this.emit('reloaded', r);
        }
        resolve({ ok: r.ok, error: r.error, swapMs: r.swapMs, stateBytes: r.state?.length ?? 0, restored: r.restored });
      });
      // Requests sent after this message queue behind it in the worker and are served by the new module.
      this.worker.send({ t: 'reload', id, bytes: module, fresh: opts.fresh ?? false });
    });
  }

  stats(): DriverStats {
    const s = this.shared.stats;
    return {
      regReads: s[STAT.regReads],
      regWrites: s[STAT.regWrites],
      portIns: s[STAT.portIns],
      portOuts: s[STAT.portOuts],
      interrupts: s[STAT.interrupts],
      coalesced: s[STAT.coalesced],
      requests: s[STAT.requests],
      logs: s[STAT.logs],
      faults: this.faults,
      restarts: this.restarts,
    };
  }

  recorder(): RecorderEntry[] {
    return this.shared.entries();
  }

  status() {
    const registerGate = {
      mode: this.options.registerGate ?? 'record-all',
      regions: this.gateRegions,
      kind: this.gateKind,
    };
    return {
      name: this.name,
      device: this.device.id,
      state: this.state,
      restarts: this.restarts,
      lastFault: this.lastFault,
      registerGate,
      stats: this.stats(),
    };
  }

  /** Call the driver's remove export, then end its worker. Queued requests get 'driver-stopped'. */
  async stop(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.state === 'stopped') return;
    this.dropParked();
    const w = this.worker;
    const wasRunning = this.state === 'running';
    this.state = 'stopped';
    this.stopWatchdog();
    this.requests.failAll(new RequestError(`${this.name}: driver stopped`, 'driver-stopped'));
    // Stopped while loading (a probe that spins under a long deadline, say): the load fails now.
    this.ready?.reject(new LoadError(`${this.name}: stopped while loading`));
    this.ready = undefined;
    if (!w) return;
    if (wasRunning) {
      w.send({ t: 'stop' });
      const done = await Promise.race([
        w.exitedPromise.then(() => true),
        delay(Math.min(this.limits.deadlineMs, STOP_GRACE_MS)).then(() => false),
      ]);
      if (done) return;
    }
    await w.kill();
  }

  // --- worker events -------------------------------------------------------------------------------

  private onMessage(m: FromWorker, from: DriverWorker): void {
    // A worker that was replaced (killed after a fault) has nothing more to say about this driver.
    if (from !== this.worker && m.t !== 'log' && m.t !== 'guest-error') return;
    switch (m.t) {
      case 'ready':
        this.gateRegions = m.gateRegions;
        this.gateKind = m.gateKind;
        this.ioSize = m.ioSize;
        this.state = 'running';
        this.ready?.resolve();
        this.ready = undefined;
        this.pump();
        refillSpare();
        break;
      case 'probe-failed':
        this.ready?.reject(new LoadError(`${this.name}: probe of ${this.device.id} failed with status ${m.status}`));
        this.ready = undefined;
        void this.worker?.kill();
        this.worker = undefined;
        this.stopWatchdog();
        // A restarted driver whose probe fails has not brought the device back: try again within budget.
        if (this.state === 'restarting') this.scheduleRestart();
        else
          this.down(
            'stopped',
            new RequestError(
              `${this.name}: probe of ${this.device.id} failed with status ${m.status}`,
              'driver-failed',
            ),
          );
        break;
      case 'load-error': {
        this.ready?.reject(new LoadError(m.message));
        this.ready = undefined;
        void this.worker?.kill();
        this.worker = undefined;
        this.stopWatchdog();
        // A restart that cannot even load will not load next time either.
        const restarting = this.state === 'restarting';
        this.down(restarting ? 'failed' : 'stopped', new RequestError(`${this.name}: ${m.message}`, 'driver-failed'));
        if (restarting) this.emit('failed', this.lastFault);
        break;
      }
      case 'response':
        this.requests.respond(m);
        break;
      case 'log':
        this.emit('log', { driver: this.name, level: m.level as LogLevel, message: m.message });
        break;
      case 'reloaded':
        this.reloads.answer(m);
        break;
      case 'guest-error':
        this.emit('log', { driver: this.name, level: 'warn' as LogLevel, message: `device: ${m.message}` });
        break;
      case 'fault':
        this.reloads.faultRings = m.rings;
        // A driver's own fault is reported after its worker released the device; a host error may not be.
        this.onFault({ ...m.fault, recorder: this.shared.entries().slice(-32) }, m.fault.kind !== 'host-error');
        break;
      case 'stopped':
        break;
    }
  }

  /** A fault ends this worker. The base policy: faulted and down; the supervisor overrides handleFault. */
  private onFault(fault: Fault, released = false): void {
    if (this.state === 'stopped' || this.state === 'failed') return;
    const w = this.worker;
    // Answers the worker posted before it faulted count: take them before deciding who lost what.
    w?.drain();
    if (this.worker !== w) return; // draining handled a fault already
    this.faults++;
    this.lastFault = fault;
    this.stopWatchdog();
    this.worker = undefined;
    // A worker that reported its own fault has released the device; one stopped from here (deadline,
    // a thread that died) may still touch it until it is gone: the restart waits for that.
    this.dropParked();
    if (released && w && this.restartPolicy) {
      this.parked = w;
      this.oldGone = Promise.resolve();
    } else {
      this.oldGone = w ? w.kill() : Promise.resolve();
    }
    this.emit('fault', fault);
    if (this.ready) {
      this.ready.reject(
        Object.assign(new Error(`${this.name}: ${fault.kind} during ${fault.phase}: ${fault.message}`), { fault }),
      );
      this.ready = undefined;
    }
    this.handleFault(fault);
  }

  /**
   * The supervisor. The worker has masked the line and is gone. Requests that were in the driver get
   * 'driver-restarted' (or 'driver-failed'); requests arriving while it restarts wait in the queue and
   * are served by the restarted driver, or get 'driver-failed' if it stays down.
   */
  protected handleFault(fault: Fault): void {
    this.reloads.abandon(fault.kind);
    const prev = this.reloads.takeRollback();
    if (prev) {
      // The new module faulted within its grace period: back to the old module and the state it had.
      this.bytes = prev.bytes;
      this.dropParked();
      this.requests.takeBackInflight(this.shared.stats[STAT.serving], 'driver restarted (reload rolled back)');
      this.state = 'restarting';
      this.restarts++;
      this.oldGone
        .then(() =>
          this.state === 'restarting'
            ? this.start(
                prev.state ? { restoreState: prev.state, restoreRings: this.reloads.faultRings } : { resetFirst: true },
              )
            : undefined,
        )
        .then(
          () => this.emit('rolled-back', fault),
          () => {
            /* reported through the fault path */
          },
        );
      return;
    }
    if (!this.restartPolicy) {
      this.dropParked();
      this.state = 'faulted';
      this.requests.failAll(new RequestError(`${this.name}: driver faulted`, 'driver-faulted'));
      return;
    }
    this.requests.takeBackInflight(this.shared.stats[STAT.serving], 'driver restarted');
    this.state = 'restarting';
    this.scheduleRestart();
  }

  /** Down for good (stopped after a failed load, or failed): every pending request gets `err`. */
  private down(state: 'stopped' | 'failed', err: RequestError): void {
    this.state = state;
    this.dropParked();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.requests.failAll(err);
  }

  private scheduleRestart(): void {
    const policy = this.restartPolicy;
    if (!policy) return;
    const now = Date.now();
    this.restartTimes = this.restartTimes.filter((t) => now - t < policy.windowMs);
    if (this.restartTimes.length >= policy.budget) {
      this.down(
        'failed',
        new RequestError(
          `${this.name}: driver failed (${policy.budget} restarts in ${policy.windowMs} ms)`,
          'driver-failed',
        ),
      );
      this.emit('failed', this.lastFault);
      return;
    }
    const delay = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** this.restartTimes.length);
    this.restartTimes.push(now);
    const restart = () => {
      this.restartTimer = undefined;
      if (this.state !== 'restarting') return;
      if (this.options.recoverDevice) {
        try {
          this.emit('log', {
            driver: this.name,
            level: 'info' as LogLevel,
            message: `device recovery: ${this.options.recoverDevice()}`,
          });
        } catch (err) {
          this.state = 'failed';
          this.requests.failAll(
            new RequestError(
              `${this.name}: driver failed (device recovery failed: ${(err as Error).message})`,
              'driver-failed',
            ),
          );
          this.emit('failed', this.lastFault);
          return;
        }
      }
      this.restarts++;
      this.start({ resetFirst: true, resetSequence: this.options.resetSequence }).then(
        () => this.emit('restarted', { restarts: this.restarts }),
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

  /** A fault the host saw on the device itself (an IOMMU fault in the kernel log): handled like the driver's own. */
  deviceFault(kind: 'iommu-fault', message: string): void {
    if (this.state !== 'running') return;
    this.onFault({
      driver: this.name,
      kind,
      message,
      phase: this.shared.phase,
      stack: [],
      recorder: this.shared.entries().slice(-32),
      time: Date.now(),
    });
  }

  private oldGone: Promise<void> = Promise.resolve();

  private dropParked(): void {
    const p = this.parked;
    this.parked = undefined;
    void p?.kill();
  }

  private onExit(w: DriverWorker): void {
    if (w === this.parked) this.parked = undefined;
    if (w !== this.worker) return;
    if (this.state === 'running' || this.state === 'starting' || this.state === 'restarting') {
      // The thread ended without saying why: the host's side broke, not the driver.
      this.onFault({
        driver: this.name,
        kind: 'host-error',
        message: 'driver worker exited unexpectedly',
        phase: this.shared.phase,
        stack: [],
        recorder: [],
        time: Date.now(),
      });
    }
  }

  // --- deadlines ---------------------------------------------------------------------------------------

  private startWatchdog(): void {
    this.stopWatchdog();
    const tick = Math.max(5, Math.min(50, this.limits.deadlineMs / 4));
    this.watchdog = setInterval(() => {
      const phase = this.shared.phase;
      if (phase === 'idle' || !this.worker) return;
      const since = Date.now() - this.shared.stats[STAT.phaseStartMs];
      if (since > this.limits.deadlineMs) {
        this.onFault({
          driver: this.name,
          kind: 'deadline',
          phase,
          stack: [],
          time: Date.now(),
          message: `${this.name}: ${phase} ran ${since} ms, past its ${this.limits.deadlineMs} ms deadline`,
          recorder: this.shared.entries().slice(-32),
        });
      }
    }, tick);
    this.watchdog.unref();
  }

  private stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
