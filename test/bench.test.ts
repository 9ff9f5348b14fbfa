// npm run bench in its quick mode produces every named figure (the values are for the report, never
// asserted: timings belong in benchmarks, not in pass/fail tests).
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBench } from '../host/bench/bench.ts';

describe('bench --quick', () => {
  it('measures the sandbox and the C baselines side by side and reports every named figure', async () => {
    const out = mkdtempSync(join(tmpdir(), 'wasmdrv-bench-'));
    const r = await runBench({ quick: true, json: false, plot: true, out });
    // Results and the plot go where the user said, nowhere in the project.
    expect(JSON.parse(readFileSync(join(out, 'quick.json'), 'utf8')).regReadNs).toBe(r.regReadNs);
    expect(readFileSync(join(out, 'irq-cdf.svg'), 'utf8')).toContain('<svg');
    expect(existsSync(join(out, 'results.json'))).toBe(false);
    for (const k of [
      'regReadNs',
      'regReadNsC',
      'regWriteNs',
      'regWriteNsC',
      'regReadRecordedNsC',
      'regWriteRecordedNsC',
      'dmaWindowRatio',
      'irqMedianRatio',
      'irqP99Ratio',
      'regReadNsRecordWrites',
      'regReadNsJsImports',
      'regWriteNsJsImports',
      'irqMedianRatioProcess',
      'irqP99RatioProcess',
      'irqMedianUsPollReturn',
      'irqMedianUsJsWaiter',
      'irqRound5MedianRatio',
      'irqRoundJsWaitMedianRatio',
      'ringRatioBatch1',
      'ringRatioBatch8',
      'ringRatioBatch32',
      'ringRatioBatch64',
      'e1000FramesVerifiedFirewall',
      'e1000FramesVerifiedNoFirewall',
      'e1000FramesVerifiedC',
      'e1000FirewallCpuNsPerFrameBatch32',
      'e1000RequestRoundTripUsFirewall',
      'loadToProbedMs',
      'reloadSwapMedianMs',
      'crashToServingMs',
      'loadWarmToProbedMs',
      'rssPerDriverMiB1',
      'rssPerDriverMiB5',
      'fuzzExecsPerSec',
    ]) {
      expect(typeof r[k], k).toBe('number');
      expect(Number.isFinite(r[k] as number) && (r[k] as number) > 0, `${k} = ${r[k]}`).toBe(true);
    }
    // The e1000 rates: measured for every batch and driver; on a loaded machine a 150 ms window may see
    // none forwarded (the section itself fails on any frame lost, reordered or outside DMA memory).
    for (const b of [1, 8, 32, 64])
      for (const k of [`e1000MppsFirewallBatch${b}`, `e1000MppsNoFirewallBatch${b}`, `e1000MppsBatch${b}C`])
        expect((r[k] as number) >= 0, `${k} = ${r[k]}`).toBe(true);
    // The interleaved rounds at batch 32 (each driver on a device of its own, the others paused): every
    // round ran all three (the section fails on any frame lost or outside DMA memory, as above).
    expect(r.e1000InterleavedRounds).toBe(10);
    expect(String(r.e1000InterleavedRoundsMpps).split(' ')).toHaveLength(10);
    expect(r.e1000InterleavedFramesVerified as number).toBeGreaterThan(0);
    for (const k of [
      'e1000InterleavedMppsFirewallBatch32',
      'e1000InterleavedMppsNoFirewallBatch32',
      'e1000InterleavedMppsBatch32C',
    ])
      expect((r[k] as number) >= 0, `${k} = ${r[k]}`).toBe(true);
  }, 120_000);

  it('--only runs the named sections and nothing else; an unknown section is refused by name', async () => {
    const r = await runBench({
      quick: true,
      json: false,
      plot: false,
      only: ['dma'],
      out: mkdtempSync(join(tmpdir(), 'wasmdrv-bench-')),
    });
    expect(typeof r.dmaWindowRatio).toBe('number');
    expect(r.regReadNs).toBeUndefined();
    expect(r.irqMedianRatio).toBeUndefined();
    const { spawnSync } = await import('node:child_process');
    const { packageRoot } = await import('../host/native.ts');
    const cli = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'wasmdrv.js'), 'bench', '--only', 'dma,irqs'], {
      encoding: 'utf8',
    });
    expect(cli.status).toBe(2);
    expect(cli.stderr).toContain('unknown section "irqs"');
  }, 60_000);
});
