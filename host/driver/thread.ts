// The main thread's side of a driver's worker threads: what it takes to have one instance of a
// driver running in its own thread. Owns the warm spare thread (booted ahead, handed its driver by an
// `init` message), the per-process cache of compiled modules (a driver compiles once however often it
// loads, restarts or reloads), the shared memory area every worker of a driver maps, and
// `DriverWorker`: one thread, its doorbell and cancel eventfds and its message port, and how to stop it. It knows nothing of requests, restarts or reloads (host/driver.ts
// and host/driver/supervisor.ts decide those); the thread's own side is host/sandbox/worker.ts.

import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { DeviceSpec } from '../device-spec.ts';
import { loadNative, packageRoot } from '../native.ts';
import type { Grant, Limits } from '../grant.ts';
import type { FromWorker, IrqWaitKind, ToWorker, WorkerBoot, WorkerInit } from '../sandbox/protocol.ts';
import { CTRL_STOP, DriverShared } from '../sandbox/shared.ts';
import type { GateMode } from '../sandbox/gate.ts';
import type { InlineGateBytes } from '../sandbox/inline-gate.ts';
import type { RingsState } from '../sandbox/ring-hook.ts';
import { checkedGrow } from '../sandbox/memory-grow.ts';
import { withWorkerExecArgv } from './exec-argv.ts';

/** One register write of a user-given reset sequence, applied by the host before a restarted driver's probe. */
export interface RegisterWrite {
  region: number;
  offset: number;
  width: 1 | 2 | 4 | 8;
  value: number | bigint;
}

/** How a start brings the driver up: after a fault, reset first; after a rollback, restore a saved state. */
export interface StartOptions {
  resetFirst?: boolean;
  restoreState?: Uint8Array;
  restoreRings?: RingsState;
  resetSequence?: RegisterWrite[];
}

/**
 * Threads that have booted (the worker bundle, the addon) and wait for a driver: one kept warm per
 * process, so that a restart or a load skips the thread's start. It is unref'd: a spare never keeps
 * a process alive.
 */
class Spare {
  constructor(
    readonly worker: Worker,
    readonly port: MessagePort,
  ) {}
  static spawn(): Spare {
    const { port1, port2 } = new MessageChannel();
    const boot: WorkerBoot = { port: port2 as MessagePort };
    // The parent's flags, less its entry flags (-e CODE, --input-type) and those a worker refuses: exec-argv.ts.
    const worker = withWorkerExecArgv(
      (execArgv) =>
        new Worker(join(packageRoot(), 'dist', 'worker.js'), {
          workerData: boot,
          transferList: [port2],
          stdout: false,
          stderr: false,
          execArgv,
        }),
    );
    worker.unref();
    // Until a driver takes it, an error of the spare's own start is nobody's fault; its exit drops it.
    worker.on('error', () => {});
    return new Spare(worker, port1 as MessagePort);
  }
}

let spare: Spare | undefined;
let spareWanted = true;

/** Take the warm spare (or start a thread now when there is none). */
function takeSpare(): Spare {
  const s = spare ?? Spare.spawn();
  spare = undefined;
  s.worker.ref();
  return s;
}

/** Boot the next spare once the caller's own worker is serving (it would compete for the CPU before). */
export function refillSpare(): void {
  if (spare || !spareWanted) return;
  spare = Spare.spawn();
  // A spare that dies (it should not) is simply replaced next time.
  const s = spare;
  s.worker.once('exit', () => {
    if (spare === s) spare = undefined;
  });
}

/** Stop keeping a warm worker (and end the one there is): for processes that load once and exit. */
export function disableStandby(): void {
  spareWanted = false;
  const s = spare;
  spare = undefined;
  void s?.worker.terminate();
}

const sharedAreas = new FinalizationRegistry<number>((fd) => {
  try {
    loadNative().close(fd);
  } catch {
    /* already closed */
  }
});

/**
 * The memory a driver shares with every worker it has (stats, phase, flight recorder): a memfd, so that
 * the register gate in the worker can map it into its own memory. It stays open for restarts and
 * reloads; it is closed when `owner` (the Driver) is garbage.
 */
export function sharedArea(owner: object, name: string, recorderSize: number): DriverShared {
  const area = DriverShared.createMapped(recorderSize, `wasmdrv-shared:${name}`);
  const shared = new DriverShared(area);
  sharedAreas.register(owner, area.fd);
  return shared;
}

/** Compiled modules by content: a driver compiles once per process, however often it loads or restarts. */
const compiled = new Map<string, WebAssembly.Module>();
const COMPILE_CACHE = 64;

/** Compile (or find) `bytes`; undefined if it does not compile (the worker then reports why, as it always has). */
export async function compileDriver(bytes: Uint8Array): Promise<WebAssembly.Module | undefined> {
  const key = createHash('sha256').update(bytes).digest('hex');
  const known = compiled.get(key);
  if (known) {
    compiled.delete(key);
    compiled.set(key, known);
    return known;
  }
  let m: WebAssembly.Module;
  try {
    m = await WebAssembly.compile(checkedGrow(bytes, 'driver')); // memory.grow checked (memory-grow.ts)
  } catch {
    return undefined;
  }
  compiled.set(key, m);
  if (compiled.size > COMPILE_CACHE) compiled.delete(compiled.keys().next().value!);
  return m;
}

/** One worker: one instance of the driver over the device. */
export class DriverWorker {
  readonly worker: Worker;
  readonly shared: DriverShared;
  private readonly doorbellFd: number;
  private readonly cancelFd: number;
  private readonly port: MessagePort;
  private exited = false;
  readonly exitedPromise: Promise<void>;
  private readonly onMessage: (m: FromWorker) => void;
  get gone(): boolean {
    return this.exited;
  }

  constructor(
    label: string,
    spec: DeviceSpec,
    readonly bytes: Uint8Array,
    module: WebAssembly.Module | undefined,
    shared: DriverShared,
    limits: Limits,
    grant: Grant,
    gate: GateMode,
    extra: StartOptions & { inlineGate?: InlineGateBytes; irqWait?: IrqWaitKind },
    onMessage: (m: FromWorker, w: DriverWorker) => void,
    onExit: (w: DriverWorker) => void,
  ) {
    const native = loadNative();
    this.shared = shared;
    Atomics.store(this.shared.control, CTRL_STOP, 0);
    this.doorbellFd = native.eventfdCreate(0);
    this.cancelFd = native.eventfdCreate(0);
    const { worker, port } = takeSpare();
    this.worker = worker;
    this.port = port;
    this.onMessage = (m) => onMessage(m, this);
    const init: WorkerInit = {
      label,
      spec,
      shared: shared.area,
      gate,
      // Read here, not in the worker: a warm spare thread keeps the environment of its own start.
      nativeWait: extra.irqWait !== 'js' && process.env.WASMDRV_NATIVE_WAIT !== '0',
      doorbellFd: this.doorbellFd,
      cancelFd: this.cancelFd,
      bytes,
      module,
      inlineGate: extra.inlineGate,
      limits,
      grant,
      resetFirst: extra.resetFirst ?? false,
      restoreState: extra.restoreState,
      restoreRings: extra.restoreRings,
      resetSequence: extra.resetSequence,
    };
    port.on('message', this.onMessage);
    port.postMessage(init);
    this.exitedPromise = new Promise((resolve) => {
      const exited = () => {
        if (this.exited) return;
        this.exited = true;
        // The 'exit' event can overtake messages still queued on our port (a fault report, say):
        // take them first, so that a worker that reported and ended is never mistaken for one that died.
        this.drain();
        port.close();
        this.closeFds();
        onExit(this);
        resolve();
      };
      worker.on('exit', exited);
    });
    worker.on('error', (err) =>
      this.onMessage({
        t: 'fault',
        fault: {
          driver: label,
          kind: 'host-error',
          message: `worker error: ${err.message}`,
          phase: this.shared.phase,
          stack: [],
          time: Date.now(),
        },
      }),
    );
  }

  /** Handle, now, every message the worker has posted so far. */
  drain(): void {
    if (this.fdsClosed) return; // the port is closed too
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port))
      this.onMessage(m.message as FromWorker);
  }

  send(m: ToWorker): void {
    if (this.exited) return;
    this.port.postMessage(m);
    loadNative().eventfdWrite(this.doorbellFd, 1);
  }

  /**
   * Stop now: mark stop (waits return "cancelled"), wake any poll through the cancel eventfd, then
   * terminate (which also stops a driver spinning in Wasm). Resolves when the thread is gone.
   */
  async kill(): Promise<void> {
    if (this.exited) return;
    Atomics.store(this.shared.control, CTRL_STOP, 1);
    loadNative().eventfdWrite(this.cancelFd, 1);
    await this.worker.terminate();
    await this.exitedPromise;
  }

  private fdsClosed = false;
  private closeFds(): void {
    if (this.fdsClosed) return;
    this.fdsClosed = true;
    const native = loadNative();
    native.close(this.doorbellFd);
    native.close(this.cancelFd);
  }
}
