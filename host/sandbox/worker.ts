// A driver's worker thread: opens the device for itself, instantiates the driver, probes it, then
// serves requests and interrupts one at a time until it is told to stop or the driver faults.
//
//   poll(doorbell, cancel, irq) ─┬─ doorbell → drain the port: requests (serialised), save-state, stop
//                                ├─ cancel   → leave at once (the host is stopping us)
//                                └─ irq      → count advanced → driver.interrupt(count)
//
// Every call into the driver runs under a phase (shared memory) that the main thread's watchdog
// checks against the deadline; a driver stuck in Wasm is stopped by worker.terminate().

import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { LoadError, classify, wasmStack } from '../faults.ts';
import { loadNative } from '../native.ts';
import { DriverInstance } from './instance.ts';
import { StormGuard } from './interrupts.ts';
import { prepare, shapeOf, type PreparedDriver } from './linker.ts';
import { accessFits } from './registers.ts';
import { EventLimiter } from './limiter.ts';
import { DeviceSession } from './session.ts';
import { DriverShared, OP, STAT, type Phase } from './shared.ts';
import type { FromWorker, ToWorker, WorkerBoot, WorkerInit } from './protocol.ts';

// A worker boots (this bundle, the addon) before it has a driver: a warm standby waits here for its
// init message, so a restart or a load does not pay for the thread's start.
const port: MessagePort = (workerData as WorkerBoot).port;
const native = loadNative();
const post = (m: FromWorker) => port.postMessage(m);
let init: WorkerInit;
let shared: DriverShared;

/** The one limiter for this driver's logs and its device's guest errors (limiter.ts), made at init. */
let limiter: EventLimiter;
let session: DeviceSession | undefined;
let instance: DriverInstance | undefined;
/** The driver checked and compiled once (linker.ts): every restart instantiates it again; a reload replaces it. */
let prepared: PreparedDriver | undefined;
let storm: StormGuard;

/**
 * Report a fault and stop serving. The thread itself is sound (a trap is caught here; Wasm cannot
 * touch JavaScript's state), so it parks: the host either restarts the driver in it, as a fresh
 * instance over a fresh session, or terminates it.
 */
function fault(err: unknown, phase: Phase): never {
  const { kind, message } = classify(err, instance?.memoryUse);
  shared.record(OP.fault, 0, 0, 0, 0, 0);
  const rings = instance?.ringState();
  try {
    session?.irq?.mask();
  } catch {
    /* best effort: the supervisor masks again */
  }
  // Release everything before reporting: the main thread terminates this worker as soon as it hears
  // of the fault, and native calls must not be in progress then.
  cleanup();
  post({
    t: 'fault',
    fault: { driver: init.label, kind, message, phase, stack: wasmStack(err), time: Date.now() },
    rings,
  });
  throw new Stop();
}

class Stop extends Error {}

function run<T>(phase: Phase, fn: () => T): T {
  shared.setPhase(phase);
  try {
    return fn();
  } catch (err) {
    if (err instanceof Stop) throw err;
    return fault(err, phase);
  } finally {
    shared.setPhase('idle');
  }
}

type StartOptions = Pick<WorkerInit, 'resetFirst' | 'restoreState' | 'restoreRings' | 'resetSequence'>;

function start(opts: StartOptions): boolean {
  storm = new StormGuard(init.label, init.limits.irqPerSec);
  limiter = new EventLimiter(init.label, init.limits.logPerSec, init.limits.logBurst);
  shared.setPhase('load');
  try {
    session = new DeviceSession(init.spec, {
      onGuestError: (message) => {
        limiter.charge('device guest error');
        post({ t: 'guest-error', message });
      },
    });
  } catch (err) {
    cleanup();
    post({ t: 'load-error', message: `${init.label}: cannot open device ${init.spec.id}: ${(err as Error).message}` });
    return false;
  }
  try {
    prepared ??= prepare(init.label, init.bytes, shapeOf(session), init.grant, init.limits, { module: init.module });
    instance = DriverInstance.instantiate(prepared, session, shared, {
      gate: init.gate,
      nativeWait: init.nativeWait,
      inlineGate: init.inlineGate,
      cancelFd: init.cancelFd,
      hooks: { log: (level, message) => post({ t: 'log', level, message }) },
      limiter,
      // Restoring a driver's state: its rings are running, so the firewall takes them over too.
      rings: opts.restoreState ? opts.restoreRings : undefined,
    });
  } catch (err) {
    if (err instanceof LoadError) {
      cleanup();
      post({ t: 'load-error', message: err.message });
      return false;
    }
    fault(err, 'load');
  } finally {
    shared.setPhase('idle');
  }
  const drv = instance!;
  if (opts.restoreState) {
    const r = run('restore', () => drv.restoreState(opts.restoreState!));
    if (r === undefined || r < 0) {
      cleanup();
      post({ t: 'probe-failed', status: r ?? -1 });
      return false;
    }
  } else {
    if (opts.resetSequence?.length)
      run('reset', () => {
        applyResetSequence(session!, opts.resetSequence!);
        drv.restartRings(); // the sequence bypasses the descriptor firewall: it may have reset the ring registers
      });
    else if (opts.resetFirst) run('reset', () => drv.reset());
    const status = run('probe', () => drv.probe());
    if (status !== 0) {
      cleanup();
      post({ t: 'probe-failed', status });
      return false;
    }
  }
  post({
    t: 'ready',
    seenCount: drv.seenCount,
    gateRegions: drv.gateRegions,
    gateKind: drv.gateKind,
    irqWait: drv.irqWaitKind,
    ioSize: drv.ioBufferSize,
  });
  return true;
}

/** The user's reset sequence: plain register writes by the host, checked like the driver's. */
function applyResetSequence(s: DeviceSession, seq: NonNullable<WorkerInit['resetSequence']>): void {
  for (const w of seq) {
    const r = s.regions[w.region];
    // The same bounds/alignment rule as the driver's own accesses (registers.ts), over the whole region.
    if (!r || w.offset !== w.offset >>> 0 || !accessFits(w.offset, w.width, r.size)) {
      throw new Error(
        `reset sequence: region ${w.region} offset 0x${w.offset.toString(16)} width ${w.width} is outside the device`,
      );
    }
    if (r.sim >= 0) s.writeSim(r.sim, w.offset, w.width as 1 | 2 | 4 | 8, w.value);
    else if (w.width === 8) r.u64![w.offset >>> 3] = BigInt(w.value);
    else if (w.width === 4) r.u32![w.offset >>> 2] = Number(w.value);
    else if (w.width === 2) r.u16![w.offset >>> 1] = Number(w.value);
    else r.u8![w.offset] = Number(w.value);
  }
}

/** Interrupt-storm guard (interrupts.ts): above the limit the line is masked and the driver faulted. */
function stormCheck(events: number): void {
  try {
    storm.charge(events, session!.irq!);
  } catch (err) {
    fault(err, 'interrupt');
  }
}

function handle(msg: ToWorker): boolean {
  const drv = instance!;
  switch (msg.t) {
    case 'request': {
      // The main thread refuses these already; a payload that still does not fit never reaches the driver.
      if (msg.data.length > drv.ioBufferSize) {
        post({ t: 'response', id: msg.id, error: 'payload-too-large' });
        return true;
      }
      // Which request the driver holds: after a fault the host answers this one 'driver-restarted'
      // and hands the ones behind it, which the driver never saw, to the next instance.
      shared.stats[STAT.serving] = msg.id;
      const r = run('request', () => drv.request(msg.op, msg.data));
      if (typeof r === 'number') post({ t: 'response', id: msg.id, status: r });
      else post({ t: 'response', id: msg.id, data: r });
      return true;
    }
    case 'save-state': {
      const data = run('save', () => drv.saveState());
      post({ t: 'state', id: msg.id, data });
      return true;
    }
    case 'reload':
      post(reload(msg));
      return true;
    case 'stop':
      run('remove', () => drv.remove());
      return false;
    case 'restart':
      return true; // only meaningful to a parked worker
  }
}

/**
 * After a fault: wait for the host's word. Requests that were queued behind the fault are the
 * host's again (it resends them with new ids), so they are dropped here. Returns how to start
 * again, or undefined to end.
 */
function park(): StartOptions | undefined {
  const fds = new Int32Array([init.doorbellFd, init.cancelFd]);
  for (;;) {
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      const msg = m.message as ToWorker;
      if (msg.t === 'restart') return msg;
      if (msg.t === 'stop') return undefined;
    }
    if (shared.stopRequested) return undefined;
    const bits = native.poll(fds, -1);
    if (bits & 1) native.eventfdRead(init.doorbellFd);
    if (bits & 2) return undefined;
  }
}

/**
 * Swap modules at a quiet point (no handler is running: we are between two messages). The old
 * instance keeps running untouched unless the new one compiles, links under the same grant, and
 * restores (or probes) cleanly; the new one inherits the interrupt count, so an interrupt that
 * arrived during the swap is delivered to it by the next poll.
 */
function reload(msg: Extract<ToWorker, { t: 'reload' }>): FromWorker {
  const { id, bytes, fresh } = msg;
  const t0 = performance.now();
  const old = instance!;
  const fail = (stage: string, err: unknown): FromWorker => {
    const reason = err instanceof LoadError ? err.message : `${classify(err).kind}: ${(err as Error)?.message ?? err}`;
    return { t: 'reloaded', id, ok: false, stage, error: reason, swapMs: performance.now() - t0, restored: false };
  };
  let state: Uint8Array | undefined;
  if (!fresh) {
    try {
      shared.setPhase('save');
      state = old.saveState();
    } catch (err) {
      // The running driver cannot save: it is broken; report it as its fault.
      return fault(err, 'save');
    } finally {
      shared.setPhase('idle');
    }
  }
  let next: DriverInstance | undefined;
  let restored = false;
  shared.setPhase('restore');
  try {
    const nextPrepared = prepare(init.label, bytes, shapeOf(session!), init.grant, init.limits, { module: msg.module });
    next = DriverInstance.instantiate(nextPrepared, session!, shared, {
      gate: init.gate,
      nativeWait: init.nativeWait,
      inlineGate: msg.inlineGate,
      cancelFd: init.cancelFd,
      hooks: { log: (level, message) => post({ t: 'log', level, message }) },
      inheritCount: old.seenCount,
      limiter,
      // The device keeps running through the swap: the new instance's firewall takes the rings over.
      rings: old.ringState(),
    });
    if (state && next.has('state_restore')) {
      const r = next.restoreState(state);
      if (r === undefined || r < 0)
        throw new LoadError(
          `${init.label}: the new module refused the saved state (state_restore returned ${r}): kept the running driver`,
        );
      restored = true;
    } else {
      const status = next.probe();
      if (status !== 0)
        throw new LoadError(
          `${init.label}: the new module's probe failed with status ${status}: kept the running driver`,
        );
    }
  } catch (err) {
    next?.close();
    return fail('restore', err);
  } finally {
    shared.setPhase('idle');
  }
  old.close();
  instance = next;
  return {
    t: 'reloaded',
    id,
    ok: true,
    swapMs: performance.now() - t0,
    state,
    restored,
    ioSize: next.ioBufferSize,
    gate: { kind: next.gateKind, regions: next.gateRegions, irqWait: next.irqWaitKind },
  };
}

function serve(): void {
  const s = session!;
  const irq = s.irq;
  // bit 0 doorbell, bit 1 cancel, bit 2 interrupt, bit 3 kick (a simulated device fed from outside)
  const fds = new Int32Array([init.doorbellFd, init.cancelFd, irq ? irq.fd : -1, s.kickFd]);
  for (;;) {
    // Requests first: each is served to completion before the next message is read.
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      if (!handle(m.message as ToWorker)) return;
    }
    if (shared.stopRequested) return;
    const drv = instance!;
    if (irq && drv.wantsInterrupts && irq.needsRearm) irq.rearm();
    const untilEvent = s.untilNextEvent();
    const timeout = untilEvent === Infinity ? -1 : Math.ceil(untilEvent / 1e6);
    const bits = native.poll(fds, timeout);
    if (bits & 1) native.eventfdRead(init.doorbellFd);
    if (bits & 2 || shared.stopRequested) return;
    if (bits & 8) s.kicked();
    try {
      s.tick(); // the device's deferred work: its guest errors are charged to this driver too
    } catch (err) {
      fault(err, 'idle');
    }
    if ((bits & 4 || bits & 8) && irq) {
      const count = irq.consume();
      if (count !== drv.seenCount && drv.wantsInterrupts) {
        const before = drv.seenCount;
        drv.noteCount(count);
        stormCheck((count - before) >>> 0);
        run('interrupt', () => drv.interrupt(count));
      }
    }
  }
}

function main(): void {
  let opts: StartOptions | undefined = init;
  try {
    while (opts) {
      try {
        if (start(opts)) serve();
        cleanup();
        post({ t: 'stopped' });
        return;
      } catch (err) {
        if (!(err instanceof Stop)) throw err;
        opts = park();
      }
    }
  } catch (err) {
    cleanup();
    post({
      t: 'fault',
      fault: {
        driver: init.label,
        kind: 'host-error',
        message: `worker: ${(err as Error).stack ?? err}`,
        phase: shared.phase,
        stack: [],
        time: Date.now(),
      },
    });
  } finally {
    cleanup();
    port.close();
  }
}

port.once('message', (m: WorkerInit) => {
  init = m;
  shared = new DriverShared(init.shared);
  main();
});

function cleanup(): void {
  try {
    instance?.close();
    session?.close();
  } catch {
    /* the thread ends, or the host replaces it */
  }
  instance = undefined;
  session = undefined;
}
