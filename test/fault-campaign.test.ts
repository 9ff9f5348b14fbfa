// A small fault-injection campaign: mutated edu binaries and misbehaving devices. The host must not
// crash, nothing may be written outside granted memory, and the sandbox must detect several kinds.
import { describe, expect, it } from 'vitest';
import { runCampaign } from '../host/campaign/campaign.ts';

describe('fault-injection campaign', () => {
  it('1,000 faults: no host crash, no write or DMA outside a grant, many fault kinds detected, every fault recovered', async () => {
    const r = await runCampaign({ faults: 1000, seed: 42, jobs: 2, trialDeadlineMs: 250 });
    expect(r.faults + r.notInjected).toBe(1000);
    expect(r.faults).toBeGreaterThan(950);
    expect(r.hostCrashes).toBe(0);
    expect(r.outsideGrantWrites).toBe(0);
    // The device's own record of every DMA it performed: none reached outside the window, and it saw plenty.
    expect(r.outsideDmaBytes).toBe(0);
    expect(r.dmaTransfers).toBeGreaterThan(500);
    expect(r.mutants).toBeGreaterThan(300);
    expect(r.devices).toBeGreaterThan(300);
    expect(Object.keys(r.driverFaults).length).toBeGreaterThanOrEqual(5);
    expect(r.faulted).toBeGreaterThan(100);
    expect(r.recovered).toBeGreaterThanOrEqual(r.faulted - (r.driverFaults.deadline ?? 0));
  });

  it('is reproducible from its seed', async () => {
    const a = await runCampaign({ faults: 200, seed: 9, jobs: 1, trialDeadlineMs: 1000 });
    const b = await runCampaign({ faults: 200, seed: 9, jobs: 1, trialDeadlineMs: 1000 });
    expect(b.driverFaults).toEqual(a.driverFaults);
    expect(b.benign).toBe(a.benign);
  });
});
