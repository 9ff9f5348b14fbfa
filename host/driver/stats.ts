// What Driver.stats() reports: the counters the worker and the register gate keep in the shared area
// (sandbox/shared.ts STAT and GSTAT), plus the supervisor's fault and restart counts.

import type { DriverShared } from '../sandbox/shared.ts';

export interface DriverStats {
  regReads: number;
  regWrites: number;
  portIns: number;
  portOuts: number;
  interrupts: number;
  coalesced: number;
  requests: number;
  logs: number;
  /** Ring doorbells and head reads the descriptor firewall's Wasm path served (with the gate compiled in). */
  ringFastDoorbells: number;
  ringFastHeads: number;
  faults: number;
  restarts: number;
}

export function sharedStats(s: DriverShared, faults: number, restarts: number): DriverStats {
  return {
    regReads: s.stat('regReads'),
    regWrites: s.stat('regWrites'),
    portIns: s.stat('portIns'),
    portOuts: s.stat('portOuts'),
    interrupts: s.stat('interrupts'),
    coalesced: s.stat('coalesced'),
    requests: s.stat('requests'),
    logs: s.stat('logs'),
    ringFastDoorbells: s.stat('ringFastDoorbells'),
    ringFastHeads: s.stat('ringFastHeads'),
    faults,
    restarts,
  };
}
