// The one limiter for everything a driver can make the host say: its own log calls and the guest
// errors a device model reports for its accesses, from a request, an interrupt handler or the
// device's deferred work alike. A token bucket (logPerSec average, logBurst above it), charged to
// the driver that caused the event; past it the driver ends with the fault `log-flood`, so the main
// thread (and a CLI printing every message) never receives an unbounded stream.
//
// One per driver worker: it outlives a hot reload (a new module does not get a fresh burst).

import { FaultError } from '../faults.ts';

export class EventLimiter {
  private tokens: number;
  private stamp = Date.now();
  /** Events let through and events refused (a refusal ends the driver, so at most a few). */
  passed = 0;

  constructor(
    private readonly label: string,
    private readonly perSec: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** A full bucket again (the fuzzer's snapshot restore: every execution starts alike). */
  refill(): void {
    this.tokens = this.burst;
    this.stamp = Date.now();
  }

  /** Account for one event of `what`; throws FaultError('log-flood') past the limit. */
  charge(what: 'log message' | 'device guest error'): void {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.stamp) * this.perSec) / 1000);
    this.stamp = now;
    if (this.tokens < 1) {
      throw new FaultError(
        'log-flood',
        `${this.label}: more than ${this.burst} messages in a burst (limit ${this.perSec}/s, logs and device guest errors together; this one a ${what})`,
      );
    }
    this.tokens--;
    this.passed++;
  }
}
