// WIT interface `services`: log (charged to the driver's log limiter), clock_ns, sleep_us, panic.

import { hostImports, LOG_LEVELS, WAIT_CANCELLED, type LogLevel } from '../abi.ts';
import { FaultError } from '../faults.ts';
import type { HostContext } from './host-context.ts';
import type { EventLimiter } from './limiter.ts';
import { STAT } from './shared.ts';

const MAX_LOG_BYTES = 4096;

/** Read a driver string out of its memory (abi-violation when it lies outside). */
export function guestString(ctx: HostContext, ptr: number, len: number): string {
  if (ptr + len > ctx.memory.buffer.byteLength) {
    throw new FaultError('abi-violation', `${ctx.label}: string at ${ptr}+${len} lies outside its memory`);
  }
  return new TextDecoder().decode(new Uint8Array(ctx.memory.buffer, ptr, len));
}

/** sleep_us, also irq_wait's wait when the line is absent or disabled: 0, or WAIT_CANCELLED on stop. */
export function sleepUs(ctx: HostContext, us: number): number {
  const { session, shared } = ctx;
  if (shared.stopRequested) return WAIT_CANCELLED;
  if (session.virtual) {
    session.advance(session.now() + us * 1000);
    return 0;
  }
  const fds = new Int32Array([ctx.cancelFd]);
  const deadline = session.now() + us * 1000;
  for (;;) {
    session.tick();
    const left = deadline - session.now();
    if (left <= 0) return 0;
    const bits = ctx.native.poll(fds, left >= 1e6 ? Math.floor(left / 1e6) : 0);
    if (bits || shared.stopRequested) return WAIT_CANCELLED;
  }
}

export function serviceImports(
  ctx: HostContext,
  limiter: EventLimiter,
  log: (level: LogLevel, message: string) => void,
) {
  const s = ctx.session;
  return hostImports('services', {
    log: (level: number, ptr: number, len: number) => {
      limiter.charge('log message');
      ctx.shared.stats[STAT.logs]++;
      const msg = guestString(ctx, ptr >>> 0, Math.min(len >>> 0, MAX_LOG_BYTES));
      log(LOG_LEVELS[Math.max(0, Math.min(3, level))], msg);
    },
    // In virtual time each clock read costs 1 us of device time, so polling loops make progress.
    clock_ns: s.virtual
      ? () => {
          s.advance(s.now() + s.clockStepNs);
          return BigInt(Math.floor(s.now()));
        }
      : s.monotonic
        ? () => process.hrtime.bigint() // the same clock as monotonicNs(), without a round trip through Number
        : () => BigInt(Math.floor(s.now())),
    sleep_us: (us: number) => sleepUs(ctx, us >>> 0),
    panic: (ptr: number, len: number) => {
      throw new FaultError(
        'panic',
        `${ctx.label}: panic: ${guestString(ctx, ptr >>> 0, Math.min(len >>> 0, MAX_LOG_BYTES))}`,
      );
    },
  });
}
