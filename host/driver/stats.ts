// What Driver.stats() reports: the counters the worker and the register gate keep in the shared area
// (sandbox/shared.ts STAT), plus the supervisor's fault and restart counts.

import { STAT } from '../sandbox/shared.ts';

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

export function sharedStats(s: Float64Array, faults: number, restarts: number): DriverStats {
  return {
    regReads: s[STAT.regReads],
    regWrites: s[STAT.regWrites],
    portIns: s[STAT.portIns],
    portOuts: s[STAT.portOuts],
    interrupts: s[STAT.interrupts],
    coalesced: s[STAT.coalesced],
    requests: s[STAT.requests],
    logs: s[STAT.logs],
    ringFastDoorbells: s[STAT.ringFastDoorbells],
    ringFastHeads: s[STAT.ringFastHeads],
    faults,
    restarts,
  };
}
