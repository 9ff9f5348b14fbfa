// A loaded driver as applications see it, the public handle: start and stop it, send requests,
// reload it, read its state and status, listen for logs and faults.
//
// A Driver outlives its workers. Each worker is one "store" (STYLE.md): a fresh Wasm instance over
// the device; a restart or reload makes a new one. The Driver owns one of each part in host/driver/
// and routes each message of its worker to the part it concerns: the worker threads (thread.ts), the
// request queue (queue.ts: no request is ever dropped, every one is answered with a response, a driver
// error, or a distinct RequestError when the driver faulted, restarted, failed or stopped), hot
// reload's bookkeeping (reload.ts) and its supervisor (supervisor.ts: restart policy, backoff,
// watchdog, the decision after a fault).

import { EventEmitter } from 'node:events';
import type { LogLevel } from './abi.ts';
import type { DeviceSpec } from './device-spec.ts';
import { type Fault, type RecorderEntry, LoadError, RequestError } from './faults.ts';
import { DEFAULT_LIMITS, type Grant, type Limits } from './grant.ts';
import type { FromWorker, IrqWaitKind } from './sandbox/protocol.ts';
import { type DriverShared, STAT } from './sandbox/shared.ts';
import type { GateMode } from './sandbox/gate.ts';
import { checkedGrow } from './sandbox/memory-grow.ts';
import {
  DriverWorker,
  type RegisterWrite,
  type StartOptions,
  compileDriver,
  refillSpare,
  sharedArea,
} from './driver/thread.ts';
import { type DriverState, type RestartPolicy, Supervisor } from './driver/supervisor.ts';
import { RequestQueue } from './driver/queue.ts';
import { type ReloadOptions, type ReloadResult, Reloads } from './driver/reload.ts';
import { type DriverStats, sharedStats } from './driver/stats.ts';
import { type GateLog, prepareGate, startGateCompiler } from './driver/gate-compiler.ts';

export type { DriverState } from './driver/supervisor.ts';
export type { ReloadOptions, ReloadResult } from './driver/reload.ts';
export type { DriverStats } from './driver/stats.ts';

/**
 * How long stop() lets a running driver's `remove` export finish before it ends the worker (cancel
 * fd, then terminate), whatever the driver's deadline: a driver that spins, or whose manifest asked
 * for a long deadline, is gone within about this plus the ~5-15 ms terminate takes.
 */
export const STOP_GRACE_MS = 250;

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
  /**
   * How irq_wait is served: 'native' (default where the device allows it: a real interrupt fd, no
   * simulated device to run while waiting; interrupts.ts) or 'js', the JavaScript wait.
   * WASMDRV_NATIVE_WAIT=0 in the environment makes it 'js' for every driver.
   */
  irqWait?: IrqWaitKind;
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

export class Driver extends EventEmitter {
  state: DriverState = 'starting';
  lastFault?: Fault;
  readonly limits: Limits;
  readonly shared: DriverShared;
  private worker?: DriverWorker;
  /** Every request from the caller's promise to its answer (host/driver/queue.ts). */
  private readonly requests: RequestQueue;
  /** The compiled module for `bytes`, shared with every worker of this driver. */
  private module?: { bytes: Uint8Array; module?: WebAssembly.Module };
  faults = 0;
  restarts = 0;
  /** The driver's io buffer in bytes (reported at probe and reload); larger payloads are refused here. */
  ioSize?: number;
  /** Regions the running instance's Wasm register gate serves (reported by the worker at probe). */
  gateRegions: number[] = [];
  /** How the gate is linked: 'inline' (compiled into the driver), 'instance' (a second Wasm instance), 'off'. */
  gateKind: 'inline' | 'instance' | 'off' = 'off';
  /** How irq_wait is served: 'native' (no JavaScript between the interrupt and the driver) or 'js'. */
  irqWait: IrqWaitKind = 'js';
  readonly restartPolicy: RestartPolicy | false;
  /** Restart policy, backoff, watchdog and the decision after a fault (host/driver/supervisor.ts). */
  private readonly supervisor: Supervisor;
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
    this.supervisor = new Supervisor(
      this,
      {
        requests: this.requests,
        reloads: this.reloads,
        worker: () => this.worker,
        setWorker: (w) => {
          this.worker = w;
        },
        failStart: (err) => {
          this.ready?.reject(err);
          this.ready = undefined;
        },
      },
      options.restart,
    );
    this.restartPolicy = this.supervisor.policy;
    this.shared = sharedArea(this, name, options.recorderSize ?? 256);
  }

  /** Start a worker and wait for probe. Rejects with LoadError or an Error naming the probe status. */
  async start(extra: StartOptions = {}): Promise<void> {
    // The compile process (driver/gate-compiler.ts) starts while the module compiles: under the QEMU
    // guest a Node process takes seconds to start, and only the first load pays it.
    if ((this.options.registerGate ?? 'record-all') !== 'off') startGateCompiler();
    if (this.module?.bytes !== this.bytes) this.module = { bytes: this.bytes, module: await compileDriver(this.bytes) };
    if (this.state === 'stopped' || this.state === 'failed') throw new LoadError(`${this.name}: stopped while loading`);
    return new Promise((resolve, reject) => {
      this.ready = { resolve, reject };
      // A worker killed in a handler leaves its phase and start time behind in shared memory; the
      // watchdog must not hold them against the new worker before it has set its own.
      this.shared.setPhase('idle');
      this.shared.stats[STAT.serving] = 0;
      if (this.supervisor.restartInPlace(this.bytes, extra)) return;
      // The register gate is compiled into the module first, in the compile process (driver/gate-compiler.ts).
      const mode = this.options.registerGate ?? 'record-all';
      const bytes = this.bytes;
      const module = this.module!.module;
      // With memory.grow made a checked call first (memory-grow.ts), as every compile of a driver has it.
      const loadable = checkedGrow(bytes, this.name);
      prepareGate(
        this.name,
        this.device,
        loadable,
        this.options.grant ?? {},
        mode,
        this.shared.entryCount,
        this.gateLog,
      ).then((inlineGate) => {
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
          { ...extra, inlineGate, irqWait: this.options.irqWait },
          (m, w) => this.onMessage(m, w),
          (w) => this.supervisor.workerExited(w),
        );
        this.supervisor.startWatchdog();
      }, reject);
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
          if (r.gate) {
            this.gateKind = r.gate.kind;
            this.gateRegions = r.gate.regions;
            this.irqWait = r.gate.irqWait;
          }
          this.emit('reloaded', r);
        }
        resolve({ ok: r.ok, error: r.error, swapMs: r.swapMs, stateBytes: r.state?.length ?? 0, restored: r.restored });
      });
      // Compile the new module and the register gate into it (in the compile process) while the old
      // module keeps serving: the worker's quiet point then only instantiates and transfers state.
      const mode = this.options.registerGate ?? 'record-all';
      this.reloads.prepare(
        this.name,
        id,
        Promise.all([
          compileDriver(module),
          // A module the checked grow refuses (memory-grow.ts) is a refused reload, like one that does not compile.
          Promise.resolve().then(() =>
            prepareGate(
              this.name,
              this.device,
              checkedGrow(module, 'the new module'),
              this.options.grant ?? {},
              mode,
              this.shared.entryCount,
              this.gateLog,
            ),
          ),
        ]),
        ([compiled, inlineGate]) => {
          if (this.state !== 'running' || !this.worker)
            return `${this.name}: the driver is ${this.state}: not reloaded`;
          this.worker.send({
            t: 'reload',
            id,
            bytes: module,
            module: compiled,
            inlineGate,
            fresh: opts.fresh ?? false,
          });
        },
      );
    });
  }

  /** What the compile process says about this driver's jobs (a retry after it died) goes to the driver's log. */
  private gateLog: GateLog = (level, message) => this.emit('log', { driver: this.name, level, message });

  stats(): DriverStats {
    return sharedStats(this.shared, this.faults, this.restarts);
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
      irqWait: this.irqWait,
      stats: this.stats(),
    };
  }

  /** Call the driver's remove export, then end its worker. Queued requests get 'driver-stopped'. */
  async stop(): Promise<void> {
    this.supervisor.cancelRestart();
    if (this.state === 'stopped') return;
    this.supervisor.dropParked();
    const w = this.worker;
    const wasRunning = this.state === 'running';
    this.state = 'stopped';
    this.supervisor.stopWatchdog();
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
        this.irqWait = m.irqWait;
        this.ioSize = m.ioSize;
        this.state = 'running';
        this.ready?.resolve();
        this.ready = undefined;
        this.pump();
        refillSpare();
        break;
      case 'probe-failed':
        this.supervisor.probeFailed(`${this.name}: probe of ${this.device.id} failed with status ${m.status}`);
        break;
      case 'load-error':
        this.supervisor.loadFailed(m.message);
        break;
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
        // A driver's own fault is reported after its worker released the device; a host error may not be.
        this.supervisor.onFault(
          { ...m.fault, recorder: this.shared.entries().slice(-32) },
          m.fault.kind !== 'host-error',
          m.rings,
        );
        break;
      case 'stopped':
        break;
    }
  }

  /**
   * Kill the running driver as its watchdog kills a hung one: the worker is terminated wherever it is
   * (a handler, a wait), its requests in flight are answered 'driver-restarted', and the supervisor
   * restarts it under the restart policy (device reset, probe). For operators and outage tests.
   */
  kill(reason = 'killed by the operator'): void {
    if (this.state !== 'running' || !this.worker)
      throw new Error(`${this.name}: cannot kill a driver that is ${this.state}`);
    this.supervisor.onFault({
      driver: this.name,
      kind: 'killed',
      phase: this.shared.phase,
      stack: [],
      time: Date.now(),
      message: `${this.name}: ${reason}`,
      recorder: this.shared.entries().slice(-32),
    });
  }

  /** A fault the host saw on the device itself (an IOMMU fault in the kernel log): handled like the driver's own. */
  deviceFault(kind: 'iommu-fault', message: string): void {
    if (this.state !== 'running') return;
    this.supervisor.onFault({
      driver: this.name,
      kind,
      message,
      phase: this.shared.phase,
      stack: [],
      recorder: this.shared.entries().slice(-32),
      time: Date.now(),
    });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
