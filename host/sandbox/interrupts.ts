// WIT interface `irq`: irq_wait, irq_count, irq_enable, irq_disable — and the interrupt-storm limit.
//
// The instance's interrupt state (the count the driver has seen, whether it wants interrupts) lives
// here; the worker's host loop feeds counts it observes through `noteCount` and charges them to the
// StormGuard, which masks the line and faults `irq-storm` above Limits.irqPerSec.

import { WAIT_CANCELLED, WAIT_INTERRUPT, WAIT_TIMEOUT, type HostImports, hostImports } from '../abi.ts';
import { FaultError } from '../faults.ts';
import type { HostContext } from './host-context.ts';
import { sleepUs } from './services.ts';
import type { DeviceSession } from './session.ts';
import type { IrqWaitKind } from './protocol.ts';
import { OP, STAT } from './shared.ts';

type Irq = NonNullable<DeviceSession['irq']>;

export class Interrupts {
  /**
   * [0] the interrupt count the driver has seen, [1] 1 while it wants interrupts, [2] 1 once the
   * descriptor firewall needs its write-backs synced after each new count: over a SharedArrayBuffer,
   * because the native wait (native.irqWaiter) reads and keeps them too.
   */
  private readonly state = new Float64Array(new SharedArrayBuffer(24));
  /** irq_wait's poll set, allocated once (no garbage on the interrupt path). */
  private waitFds?: Int32Array;
  /**
   * pollRead's out: [0] the value read, [1] CLOCK_MONOTONIC in ns as poll() returned. The wait keeps its
   * clock here, read by native code into the array: a clock that returns its value (process.hrtime.bigint,
   * performance.now, a native return) allocates a BigInt or a heap number on every read, and those were
   * the driver worker's garbage while it served interrupts (docs/benchmarks.md, issue 18).
   */
  private readonly readOut = new Float64Array(2);

  /**
   * A reloaded instance inherits the count its predecessor saw and leaves the fd's readiness alone,
   * so interrupts that arrived during the swap are delivered to it; a new driver starts from now.
   */
  constructor(
    private readonly ctx: HostContext,
    inheritCount?: number,
    private readonly nativeAllowed = true,
  ) {
    this.state[1] = 1;
    if (inheritCount !== undefined) this.lastCount = inheritCount;
    else this.lastCount = ctx.session.irq ? ctx.session.irq.consume() : 0;
  }

  /** The interrupt count the driver has seen. */
  get lastCount(): number {
    return this.state[0];
  }
  set lastCount(n: number) {
    this.state[0] = n >>> 0;
  }
  get enabled(): boolean {
    return this.state[1] !== 0;
  }
  set enabled(on: boolean) {
    this.state[1] = on ? 1 : 0;
  }

  /** The descriptor firewall's guard is in place: sync its write-backs after each new count. */
  ringsGuarded(): void {
    this.state[2] = 1;
  }

  /** Whether imports() gave the native wait. */
  waitKind: IrqWaitKind = 'js';

  imports(): HostImports<'irq'> {
    const wait = (timeoutUs: number) => this.wait(timeoutUs >>> 0);
    const fast = this.nativeWait(wait);
    this.waitKind = fast ? 'native' : 'js';
    return hostImports('irq', {
      irq_wait: fast ?? wait,
      irq_count: () => this.lastCount | 0,
      irq_enable: () => {
        this.enabled = true;
      },
      irq_disable: () => {
        this.enabled = false;
      },
    });
  }

  /**
   * irq_wait as a native function (native.irqWaiter), when the session allows it: a real interrupt fd
   * read with the count in one call, no simulated device to tick while waiting (none, or a passive one:
   * the bench device), no kick fd and the monotonic clock. Then an interrupt's way back into the driver
   * crosses no JavaScript (docs/design.md, "Interrupt, inside `irq_wait`"). Not when the driver was
   * loaded with irqWait 'js' or the host has WASMDRV_NATIVE_WAIT=0 (nativeAllowed false).
   */
  private nativeWait(slow: (timeoutUs: number) => number): ((timeoutUs: number) => number) | undefined {
    const { ctx } = this;
    const s = ctx.session;
    const irq = s.irq;
    if (!this.nativeAllowed) return undefined;
    if (
      !irq?.countCell ||
      !irq.readWidth ||
      s.virtual ||
      (s.model && !s.model.passive) ||
      s.kickFd >= 0 ||
      !s.monotonic
    )
      return undefined;
    const fn = ctx.native.irqWaiter({
      fds: new Int32Array([irq.fd, ctx.cancelFd]),
      width: irq.readWidth,
      source: irq.countCell,
      state: this.state,
      area: ctx.shared.control,
      layout: ctx.shared.irqLayout(OP.irq),
      slow,
      ...(irq.needsRearm ? { rearm: () => irq.rearm() } : {}),
      // The guard is installed after instantiation (instance.ts): state[2] says when to call this.
      after: () => ctx.rings.guard?.sync(),
    });
    // A native function's length is 0; the ABI's check (hostImports) counts the parameters.
    return Object.defineProperty(fn, 'length', { value: 1 });
  }

  /** Account for a new count seen (by irq_wait or by the host loop): coalesced events are counted, never hidden. */
  noteCount(count: number): void {
    const shared = this.ctx.shared;
    const delta = (count - this.lastCount) >>> 0;
    if (delta > 1) shared.stats[STAT.coalesced] += delta - 1;
    this.lastCount = count;
    shared.record(OP.irq, 0, 0, 0, count, 0);
    shared.stats[STAT.interrupts]++;
  }

  /**
   * Wait for the interrupt count to advance (irq_wait). Re-arms the line first when the backend
   * masks on each event. Runs the simulated device's deferred work while waiting.
   */
  private wait(timeoutUs: number): number {
    const { ctx } = this;
    const session = ctx.session;
    if (ctx.shared.stopRequested) return WAIT_CANCELLED;
    const irq = session.irq;
    if (!irq || !this.enabled) return sleepUs(ctx, timeoutUs) === WAIT_CANCELLED ? WAIT_CANCELLED : WAIT_TIMEOUT;
    if (irq.needsRearm) irq.rearm();
    if (session.virtual) return this.waitVirtual(irq, timeoutUs);
    const fds = (this.waitFds ??= new Int32Array(
      session.kickFd >= 0 ? [irq.fd, ctx.cancelFd, session.kickFd] : [irq.fd, ctx.cancelFd],
    ));
    const model = session.model !== null;
    const out = this.readOut;
    const native = ctx.native;
    // The session's clock is CLOCK_MONOTONIC (read by native code into out[1]) unless a caller gave it another.
    const mono = session.monotonic;
    // (No closure or method for "now": a fresh function object, or a number returned, is garbage too.)
    let deadline = 0;
    let started = false;
    for (;;) {
      if (model) session.tick();
      if (mono) native.monotonicInto(out, 1);
      const t = mono ? out[1] : session.now();
      if (!started) {
        deadline = t + timeoutUs * 1000;
        started = true;
      }
      const waitNs = model ? Math.min(deadline - t, session.untilNextEvent()) : deadline - t;
      // poll() takes milliseconds: sub-millisecond waits for device work poll without blocking.
      const ms = waitNs >= 1e6 ? Math.floor(waitNs / 1e6) : 0;
      // The hot path: one native call polls and reads the count (pollRead); otherwise poll, then consume.
      const bits = irq.readWidth ? native.pollRead(fds, ms, irq.readWidth, out) : native.poll(fds, ms);
      if (bits & 2 || ctx.shared.stopRequested) return WAIT_CANCELLED;
      if (bits & 4) session.kicked();
      if (bits & 0x80000000 || ((bits & 1 || bits & 4) && !irq.readWidth)) {
        const count = bits & 0x80000000 ? irq.absorb(out[0]) : irq.consume();
        if (count !== this.lastCount) {
          this.noteCount(count);
          this.ctx.rings.guard?.sync(); // the descriptor firewall's write-backs, before the driver looks
          return WAIT_INTERRUPT;
        }
      }
      if (mono) native.monotonicInto(out, 1);
      if ((mono ? out[1] : session.now()) >= deadline) return WAIT_TIMEOUT;
    }
  }

  /** irq_wait in virtual time: check the line, else jump to the next device event or the timeout. */
  private waitVirtual(irq: Irq, timeoutUs: number): number {
    const s = this.ctx.session;
    const deadline = s.now() + timeoutUs * 1000;
    for (;;) {
      s.tick();
      if (this.ctx.shared.stopRequested) return WAIT_CANCELLED;
      // Virtual sessions run in the caller's thread: the count itself says whether the line fired.
      const count = irq.consume();
      if (count !== this.lastCount) {
        this.noteCount(count);
        this.ctx.rings.guard?.sync();
        return WAIT_INTERRUPT;
      }
      const next = s.now() + s.untilNextEvent();
      if (next > deadline) {
        s.advance(deadline);
        return WAIT_TIMEOUT;
      }
      s.advance(next);
    }
  }
}

/** The interrupt-storm limit: events per 100 ms window against Limits.irqPerSec / 10. */
export class StormGuard {
  private windowStart = Date.now();
  private events = 0;

  constructor(
    private readonly label: string,
    private readonly irqPerSec: number,
  ) {}

  /** Charge `events`; above the limit, mask the line and throw the `irq-storm` fault. */
  charge(events: number, irq: Irq): void {
    const now = Date.now();
    if (now - this.windowStart >= 100) {
      this.windowStart = now;
      this.events = 0;
    }
    this.events += events;
    if (this.events > this.irqPerSec / 10) {
      irq.mask();
      throw new FaultError(
        'irq-storm',
        `${this.label}: ${this.events} interrupts in under 100 ms (limit ${this.irqPerSec}/s): line masked`,
      );
    }
  }
}
