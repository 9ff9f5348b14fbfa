// npm run bench in its quick mode produces every named figure (the values are for the report, never
// asserted: timings belong in benchmarks, not in pass/fail tests).
import { describe, expect, it } from 'vitest';
import { runBench } from '../host/bench/bench.ts';

describe('bench --quick', () => {
  it('measures the sandbox and the C baselines side by side and reports every named figure', async () => {
    const r = await runBench({ quick: true, json: false, plot: false });
    for (const k of ['regReadNs', 'regReadNsC', 'regWriteNs', 'regWriteNsC', 'dmaWindowRatio', 'irqMedianRatio', 'irqP99Ratio',
      'ringRatioBatch1', 'ringRatioBatch8', 'ringRatioBatch32', 'ringRatioBatch64', 'loadToProbedMs', 'reloadSwapMedianMs', 'crashToServingMs', 'fuzzExecsPerSec']) {
      expect(typeof r[k], k).toBe('number');
      expect(Number.isFinite(r[k] as number) && (r[k] as number) > 0, `${k} = ${r[k]}`).toBe(true);
    }
  }, 120_000);
});
