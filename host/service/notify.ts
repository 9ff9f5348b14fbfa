// sd_notify(3) for the daemon under a Type=notify unit: READY=1, STATUS=..., RELOADING=1, STOPPING=1
// as one datagram each to the AF_UNIX socket systemd names in $NOTIFY_SOCKET ("@..." is abstract).
// Node has no UNIX datagram sockets; the npm wrappers (sd-notify, sd-daemon) link libsystemd and
// need a compiler, so the one sendto lives in our own addon (native/src/addon.cc unixDgramSend).
import { loadNative } from '../native.ts';

export type Notify = (fields: Record<string, string | number>) => void;

/**
 * A notifier for `socket` (default $NOTIFY_SOCKET). Without a socket it does nothing (not under
 * systemd, or Type=simple). A failed send is reported once through `warn` and never fails the daemon:
 * systemd then times the start out by itself, which is the right outcome.
 */
export function systemdNotifier(socket = process.env.NOTIFY_SOCKET, warn: (s: string) => void = () => {}): Notify {
  if (!socket) return () => {};
  let warned = false;
  return (fields) => {
    // One field per line; a value never carries a newline (it would start a bogus field).
    const msg = Object.entries(fields)
      .map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`)
      .join('\n');
    try {
      loadNative().unixDgramSend(socket, msg);
    } catch (err) {
      if (!warned) warn(`sd_notify to ${socket}: ${(err as Error).message}`);
      warned = true;
    }
  };
}

/** CLOCK_MONOTONIC in microseconds, as RELOADING=1 carries it (MONOTONIC_USEC; systemd ≥ 253 checks it). */
export const monotonicUsec = (): string => (process.hrtime.bigint() / 1000n).toString();
