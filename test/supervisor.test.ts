// The supervisor: a fault masks the line, resets the device, and restarts the driver with backoff
// inside a budget; requests never hang; status tells state, restarts and the last fault.
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Host, RequestError, type Driver } from '../host/index.ts';
import { DeviceSession } from '../host/sandbox/session.ts';
import { driverPath, words } from './helpers.ts';

const OP_ECHO = 0,
  OP_TRAP = 6,
  OP_RAISE_AND_TRAP = 15,
  OP_STATUS = 16,
  OP_LIVENESS = 18;
const fast = { backoffMs: 5, maxBackoffMs: 40 };

let host: Host;
afterEach(() => host?.close());

/** Wait for the next successful restart; a driver that ends up failed instead fails the test at once. */
async function restarted(drv: Driver): Promise<void> {
  const outcome = await Promise.race([
    once(drv, 'restarted').then(() => 'restarted'),
    once(drv, 'failed').then(() => 'failed'),
  ]);
  expect(outcome, `last fault: ${drv.lastFault?.kind} ${drv.lastFault?.message}`).toBe('restarted');
  expect(drv.state).toBe('running');
}

describe('supervisor', () => {
  it("restarts a faulted driver after resetting the device with the driver's reset export", async () => {
    host = new Host();
    // 'mask' mode: like uio_pci_generic, interrupt status stays set until someone acknowledges it
    const dev = host.openDevice('sim:edu:s1', { sim: { irqMode: 'mask' } });
    const drv = await host.load(driverPath('test/broken'), dev, { name: 's1', restart: fast });
    const err = await drv.request(OP_RAISE_AND_TRAP).catch((e) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect(err.code).toBe('driver-restarted');
    expect(drv.lastFault?.kind).toBe('unreachable');
    await restarted(drv);
    // the device the new instance probed is clean: the dead driver's pending interrupt was acknowledged
    expect(words(await drv.request(OP_STATUS))).toEqual([0]);
    expect(drv.status()).toMatchObject({
      state: 'running',
      restarts: 1,
      lastFault: { kind: 'unreachable', phase: 'request' },
    });
  });

  it("applies a user-given reset sequence instead of the driver's reset", async () => {
    host = new Host();
    const dev = host.openDevice('sim:edu:s2', { sim: { irqMode: 'mask' } });
    const drv = await host.load(driverPath('test/broken'), dev, {
      name: 's2',
      restart: fast,
      resetSequence: [
        { region: 0, offset: 0x64, width: 4, value: 0xffffffff }, // acknowledge everything
        { region: 0, offset: 0x04, width: 4, value: 0x0000ffff }, // liveness reads back inverted: a mark we can see
      ],
    });
    await drv.request(OP_RAISE_AND_TRAP).catch(() => {});
    await restarted(drv);
    expect(words(await drv.request(OP_STATUS))).toEqual([0]);
    expect(words(await drv.request(OP_LIVENESS))).toEqual([0xffff0000]);
  });

  it('requests sent while the driver restarts wait and are served by the restarted driver', async () => {
    host = new Host();
    const drv = await host.load(driverPath('test/broken'), 'sim:edu:s3', {
      name: 's3',
      restart: { backoffMs: 100, maxBackoffMs: 100 },
    });
    const first = drv.request(OP_TRAP).catch((e) => e.code);
    await once(drv, 'fault');
    expect(drv.state).toBe('restarting');
    const queued = drv.request(OP_ECHO, Uint8Array.of(9, 8, 7));
    expect(await first).toBe('driver-restarted');
    expect([...(await queued)]).toEqual([9, 8, 7]);
  });

  it('marks the driver failed when the restart budget is spent, and answers every request with driver-failed', async () => {
    host = new Host();
    const drv = await host.load(driverPath('test/broken'), 'sim:edu:s4', {
      name: 's4',
      restart: { budget: 3, windowMs: 60_000, ...fast },
    });
    const failed = once(drv, 'failed');
    for (let i = 0; i < 4; i++) {
      const code = await drv.request(OP_TRAP).then(
        () => 'answered',
        (e) => e.code,
      );
      expect(['driver-restarted', 'driver-failed']).toContain(code);
      if (drv.state === 'restarting') await Promise.race([once(drv, 'restarted'), failed]);
    }
    await failed;
    expect(drv.state).toBe('failed');
    expect(drv.restarts).toBe(3);
    const err = await drv.request(OP_ECHO).catch((e) => e);
    expect(err.code).toBe('driver-failed');
    expect(host.status().drivers.find((d) => d.name === 's4')).toMatchObject({
      state: 'failed',
      restarts: 3,
      lastFault: { kind: 'unreachable' },
    });
  });

  it('brings the device back to a clean state after a deadline kill in the middle of a computation', async () => {
    host = new Host();
    // The driver starts a 600 ms factorial with its interrupt armed, then spins forever: killed at the
    // 400 ms deadline with the device still computing. The restarted instance's reset waits out the
    // rest and acknowledges the interrupt.
    const dev = host.openDevice('sim:edu:s5', { sim: { factorialDelayNs: 600_000_000, irqMode: 'mask' } });
    const drv = await host.load(driverPath('test/broken'), dev, {
      name: 's5',
      limits: { deadlineMs: 400 },
      restart: fast,
    });
    const err = await drv.request(21).catch((e) => e);
    expect(err.code).toBe('driver-restarted');
    expect(drv.lastFault?.kind).toBe('deadline');
    expect(drv.lastFault?.recorder.some((e) => e.op === 'write' && e.offset === 0x08 && e.value === 10n)).toBe(true);
    await restarted(drv);
    // The restarted instance's reset waited for the computation and acknowledged it: look at the
    // device's registers from the host side.
    const view = new DeviceSession(dev.spec);
    try {
      expect(Number(view.readSim(0, 0x20, 4)) & 0x01).toBe(0); // not computing
      expect(view.readSim(0, 0x24, 4)).toBe(0); // nothing pending
      expect(view.readSim(0, 0x08, 4)).toBe(3628800); // the dead driver's factorial did finish
    } finally {
      view.close();
    }
    expect(words(await drv.request(16))).toEqual([0]); // the driver sees no pending interrupt either
  });
});
