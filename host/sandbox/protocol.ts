// Messages between a driver's Driver handle (main thread) and its worker. Requests travel on a
// MessagePort the worker reads synchronously (receiveMessageOnPort) after the doorbell eventfd wakes
// its poll(): a worker that blocks in poll() never returns to its event loop while serving.
//
// Per message: who sends it → who handles it. "Driver" is host/driver.ts (main thread), "worker"
// is host/sandbox/worker.ts (handle() for ToWorker, start() for WorkerInit).

import type { MessagePort } from 'node:worker_threads';
import type { DeviceSpec } from '../device-spec.ts';
import type { Fault } from '../faults.ts';
import type { LogLevel } from '../abi.ts';
import type { Grant, Limits } from '../grant.ts';
import type { SharedArea } from './shared.ts';
import type { GateMode } from './gate.ts';
import type { InlineGateBytes } from './inline-gate.ts';
import type { RingsState } from './ring-hook.ts';

/** workerData of a driver's worker: only its port. It boots, then waits there for its WorkerInit. */
export interface WorkerBoot {
  port: MessagePort;
}

/** Driver (start of a worker) → worker (start()). The first message on the port: which driver to run, over which device. */
export interface WorkerInit {
  label: string;
  spec: DeviceSpec;
  /** The driver's shared area: the worker maps the memfd itself. */
  shared: SharedArea;
  /** eventfd: the host wants the worker's attention (a message is waiting on the port). */
  doorbellFd: number;
  /** eventfd: stop now; every wait returns "cancelled" (left readable once written). */
  cancelFd: number;
  bytes: Uint8Array;
  /** `bytes` with the register gate compiled in, made by the main thread (inline-rewrite.ts). */
  inlineGate?: InlineGateBytes;
  /** The driver compiled once by the host (shared with every worker; V8 does not compile it again). */
  module?: WebAssembly.Module;
  limits: Limits;
  grant: Grant;
  gate: GateMode;
  /** irq_wait may be the native wait where the session allows it (false: WASMDRV_NATIVE_WAIT=0 in the host). */
  nativeWait: boolean;
  /** Call the driver's reset export before probe (a restart after a fault). */
  resetFirst: boolean;
  /** Restore this state instead of probing (hot reload / restart with state). */
  restoreState?: Uint8Array;
  /** With restoreState: the descriptor firewall's rings as the previous instance left them (ring-hook.ts). */
  restoreRings?: RingsState;
  /** Register writes that reset the device, applied before probe instead of the driver's reset. */
  resetSequence?: { region: number; offset: number; width: 1 | 2 | 4 | 8; value: number | bigint }[];
}

export type ToWorker =
  /** Driver.request → worker handle(): one request to the driver; answered by 'response'. */
  | { t: 'request'; id: number; op: number; data: Uint8Array }
  /** Driver.saveState → worker handle(): answered by 'state'. */
  | { t: 'save-state'; id: number }
  /** Driver.reload → worker reload(): swap the driver's module at this quiet point (see host/reload.ts); answered by 'reloaded'. */
  /** module and inlineGate: compiled by the Driver beforehand, so the swap itself only instantiates. */
  | {
      t: 'reload';
      id: number;
      bytes: Uint8Array;
      module?: WebAssembly.Module;
      inlineGate?: InlineGateBytes;
      fresh: boolean;
    }
  /** Driver.stop → worker handle(): answered by 'stopped'. */
  | { t: 'stop' }
  /** Driver restart → a worker parked after its driver's fault: start the PreparedDriver again as a fresh instance. */
  | {
      t: 'restart';
      resetFirst: boolean;
      restoreState?: Uint8Array;
      restoreRings?: RingsState;
      resetSequence?: WorkerInit['resetSequence'];
    };

/** How irq_wait is served: 'native' (addon.cc IrqWaiter, no JavaScript on the way back) or 'js'. */
export type IrqWaitKind = 'native' | 'js';

export type FromWorker =
  // Every FromWorker message: sent by the worker (post()), handled by the Driver's port listener.
  /** gateRegions: the regions the Wasm register gate serves (the rest go through JavaScript). */
  /** ioSize: the driver's io buffer; a request payload larger than it is refused before it is sent. */
  /** irqWait: whether irq_wait is the native wait (native.irqWaiter) or the JavaScript one. */
  | {
      t: 'ready';
      seenCount: number;
      gateRegions: number[];
      gateKind: 'inline' | 'instance' | 'off';
      irqWait: IrqWaitKind;
      ioSize: number;
    }
  | { t: 'probe-failed'; status: number }
  | { t: 'load-error'; message: string }
  | { t: 'response'; id: number; data?: Uint8Array; status?: number; error?: string }
  | { t: 'state'; id: number; data?: Uint8Array }
  | {
      t: 'reloaded';
      id: number;
      ok: boolean;
      error?: string;
      stage?: string;
      swapMs: number;
      state?: Uint8Array;
      restored: boolean;
      ioSize?: number;
      /** How the new module's register gate is linked (as in 'ready'). */
      gate?: { kind: 'inline' | 'instance' | 'off'; regions: number[]; irqWait: IrqWaitKind };
    }
  | { t: 'log'; level: LogLevel; message: string }
  | { t: 'guest-error'; message: string }
  /** rings: the descriptor firewall's rings when the driver faulted, for a rollback that restores state. */
  | { t: 'fault'; fault: Omit<Fault, 'recorder'>; rings?: RingsState }
  | { t: 'stopped' };
