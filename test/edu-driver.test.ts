// The edu driver end to end: a sandboxed Wasm driver in its worker, on the simulated edu device.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, type Driver } from '../host/index.ts';
import { RequestError } from '../host/faults.ts';
import { driverPath, u32, words } from './helpers.ts';

const OP_IDENTIFY = 1,
  OP_FACTORIAL = 2,
  OP_RAISE = 3,
  OP_DMA = 4,
  OP_LIVENESS = 5,
  OP_STATS = 6;

describe('edu driver on the simulated edu device', () => {
  const host = new Host();
  const logs: string[] = [];
  let drv: Driver;

  beforeAll(async () => {
    host.on('log', (e) => logs.push(e.message));
    drv = await host.load(driverPath('edu'), 'sim:edu');
  });
  afterAll(() => host.close());

  it('probes: id and liveness, logged by the driver', () => {
    expect(drv.state).toBe('running');
    expect(logs.some((l) => l.includes('found device id 0x10000ed') && l.includes('liveness ok'))).toBe(true);
  });

  it('identifies the device', async () => {
    expect(words(await drv.request(OP_IDENTIFY))).toEqual([0x010000ed, 1]);
  });

  it('computes 1! .. 12! through the interrupt path', async () => {
    const before = drv.stats().interrupts;
    const got: number[] = [];
    for (let n = 1; n <= 12; n++) got.push(words(await drv.request(OP_FACTORIAL, u32(n)))[0]);
    expect(got).toEqual([1, 2, 6, 24, 120, 720, 5040, 40320, 362880, 3628800, 39916800, 479001600]);
    expect(drv.stats().interrupts - before).toBe(12);
  });

  it('counts raised interrupts exactly', async () => {
    const before = drv.stats().interrupts;
    expect(words(await drv.request(OP_RAISE, u32(50, 0x1000)))).toEqual([50]);
    expect(drv.stats().interrupts - before).toBe(50);
  });

  it('round-trips data by DMA through the granted window', async () => {
    const data = Uint8Array.from({ length: 4096 }, (_, i) => (i * 13 + 1) & 0xff);
    const back = await drv.request(OP_DMA, data.subarray(0, 4096));
    expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
  });

  it('answers the liveness register and its own statistics', async () => {
    expect(words(await drv.request(OP_LIVENESS, u32(0x0f0f0f0f)))).toEqual([0xf0f0f0f0]);
    const [irqs, facts, dmas] = words(await drv.request(OP_STATS));
    expect(facts).toBe(12);
    expect(dmas).toBe(2);
    expect(irqs).toBe(drv.stats().interrupts);
  });

  it('returns a driver error code for an unknown op, and keeps serving', async () => {
    const err = await drv.request(99).catch((e) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect(err.code).toBe('driver-error');
    expect(err.status).toBe(-1);
    expect(words(await drv.request(OP_IDENTIFY))[0]).toBe(0x010000ed);
  });

  it('serialises concurrent requests and answers each one', async () => {
    const ns = Array.from({ length: 40 }, (_, i) => (i % 12) + 1);
    const answers = await Promise.all(ns.map((n) => drv.request(OP_FACTORIAL, u32(n)).then((r) => words(r)[0])));
    const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));
    expect(answers).toEqual(ns.map(fact));
  });

  it('refuses a second driver on the same device', async () => {
    await expect(host.load(driverPath('edu'), 'sim:edu')).rejects.toThrow('already driven by edu');
  });

  it('keeps statistics and a flight recorder of register traffic', () => {
    const st = drv.stats();
    expect(st.regReads).toBeGreaterThan(100);
    expect(st.regWrites).toBeGreaterThan(50);
    expect(st.faults).toBe(0);
    const rec = drv.recorder();
    expect(rec.length).toBe(256);
    expect(rec.some((e) => e.op === 'read' && e.offset === 0x08)).toBe(true);
  });
});

describe('edu driver under uio_pci_generic-style interrupts (the driver acknowledges)', () => {
  it('computes factorials and counts raises when the line masks until re-armed', async () => {
    const host = new Host();
    try {
      const dev = host.openDevice('sim:edu:mask', { sim: { irqMode: 'mask' } });
      const drv = await host.load(driverPath('edu'), dev);
      expect(words(await drv.request(OP_FACTORIAL, u32(10)))).toEqual([3628800]);
      expect(words(await drv.request(OP_RAISE, u32(20, 0x1000)))).toEqual([20]);
      expect(drv.state).toBe('running');
    } finally {
      await host.close();
    }
  });
});
