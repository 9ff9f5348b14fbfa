// Broken drivers end with their typed fault (or a load error naming the import) while a second,
// healthy driver in the same host keeps serving.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, LoadError, type Driver, type Fault } from '../host/index.ts';
import { driverPath, u32, words } from './helpers.ts';

describe('containment', () => {
  const host = new Host();
  let healthy: Driver;
  let n = 0;

  beforeAll(async () => {
    healthy = await host.load(driverPath('edu'), 'sim:edu:healthy', { name: 'healthy' });
  });
  afterAll(() => host.close());

  // restart: false — these tests look at containment alone; test/supervisor.test.ts covers restarts.
  async function faultOf(
    op: number,
    arg = 0,
    limits = {},
    device?: string,
    sim?: Record<string, unknown>,
  ): Promise<Fault> {
    const dev = host.openDevice(device ?? `sim:edu:broken${n++}`, { sim });
    const drv = await host.load(driverPath('test/broken'), dev, { name: `broken${n++}`, limits, restart: false });
    const faulted = new Promise<Fault>((resolve) => drv.once('fault', resolve));
    const answer = await drv.request(op, u32(arg)).then(
      () => 'answered',
      (e) => e,
    );
    const fault = await faulted;
    expect(answer.code).toBe('driver-faulted');
    expect(drv.state).toBe('faulted');
    // the other driver still serves
    expect(words(await healthy.request(2, u32(10)))).toEqual([3628800]);
    return fault;
  }

  it('a healthy op on the broken driver works', async () => {
    const drv = await host.load(driverPath('test/broken'), 'sim:edu:echo', { name: 'echo' });
    expect([...(await drv.request(0, Uint8Array.of(1, 2, 3)))]).toEqual([1, 2, 3]);
  });

  it('read past the end of a region: register-out-of-bounds naming region, offset and width', async () => {
    const f = await faultOf(1);
    expect(f.kind).toBe('register-out-of-bounds');
    expect(f.message).toContain('region 0 offset 0x100000 width 4');
    expect(f.recorder.length).toBeGreaterThan(0);
  });

  it('a write straddling the end: register-out-of-bounds', async () => {
    const f = await faultOf(2);
    expect(f.kind).toBe('register-out-of-bounds');
    expect(f.message).toContain('offset 0xffffe width 4');
  });

  it('offset 0xFFFFFFFC with width 8 does not wrap around: register-out-of-bounds', async () => {
    const f = await faultOf(3);
    expect(f.kind).toBe('register-out-of-bounds');
    expect(f.message).toContain('offset 0xfffffffc width 8');
  });

  it('a misaligned access: register-misaligned', async () => {
    const f = await faultOf(4);
    expect(f.kind).toBe('register-misaligned');
    expect(f.message).toContain('offset 0x2 width 4');
  });

  it('a region index that does not exist: bad-region', async () => {
    const f = await faultOf(5);
    expect(f.kind).toBe('bad-region');
    expect(f.message).toContain('region 7');
  });

  it('unreachable: its own kind, with the Wasm stack naming the function', async () => {
    const f = await faultOf(6);
    expect(f.kind).toBe('unreachable');
    expect(f.stack.join('\n')).toContain('request');
  });

  it('integer divide by zero', async () => {
    expect((await faultOf(7, 0)).kind).toBe('divide-by-zero');
  });

  it('stack overflow', async () => {
    expect((await faultOf(8)).kind).toBe('stack-overflow');
  });

  it('linear memory out of bounds', async () => {
    expect((await faultOf(9)).kind).toBe('memory-out-of-bounds');
  });

  it('a hang past the deadline is stopped', async () => {
    const f = await faultOf(10, 0, { deadlineMs: 200 });
    expect(f.kind).toBe('deadline');
    expect(f.phase).toBe('request');
  });

  it('a hang inside a host wait is cancelled and stopped too', async () => {
    expect((await faultOf(14, 0, { deadlineMs: 200 })).kind).toBe('deadline');
  });

  it('growth past the memory limit', async () => {
    expect((await faultOf(11, 0, { memoryPages: 32 })).kind).toBe('memory-limit');
  });

  it('a log flood', async () => {
    expect((await faultOf(12, 0, { logBurst: 50, logPerSec: 10 })).kind).toBe('log-flood');
  });

  it('a driver that gives up: panic with its message', async () => {
    const f = await faultOf(13);
    expect(f.kind).toBe('panic');
    expect(f.message).toContain('the driver gave up');
  });

  it('an interrupt storm (a driver that never acknowledges a level interrupt): the line is masked', async () => {
    const dev = host.openDevice('sim:edu:storm', { sim: { irqMode: 'mask' } });
    const drv = await host.load(driverPath('test/broken'), dev, {
      name: 'storm',
      limits: { irqPerSec: 2000 },
      restart: false,
    });
    const faulted = new Promise<Fault>((resolve) => drv.once('fault', resolve));
    await drv.request(17); // raise and return: the driver's interrupt handler never acknowledges
    const f = await faulted;
    expect(f.kind).toBe('irq-storm');
    expect(f.message).toContain('line masked');
    expect(drv.state).toBe('faulted');
    expect(words(await healthy.request(2, u32(10)))).toEqual([3628800]);
  });

  it("an exception in host code on the driver's behalf is a host-error, not blamed on the driver", async () => {
    const f = await faultOf(16, 0, {}, 'sim:faulty:hostbug', { inner: 'edu', hostBugOnRead: 0x24 });
    expect(f.kind).toBe('host-error');
    expect(f.message).toContain('simulated host bug');
  });

  it('an import outside the ABI is refused at load, by name, and nothing stays loaded', async () => {
    const before = host.drivers.length;
    const err = await host.load(driverPath('test/foreign-import'), 'sim:edu:foreign').catch((e) => e);
    expect(err).toBeInstanceOf(LoadError);
    expect(err.message).toContain('import env.system is not part of the wasmdrv ABI');
    expect(host.drivers.length).toBe(before);
    // the device is free again
    const drv = await host.load(driverPath('edu'), 'sim:edu:foreign', { name: 'edu-after-refusal' });
    expect(drv.state).toBe('running');
  });

  it('a file that is not Wasm is refused with the file named', async () => {
    const err = await host
      .load(new Uint8Array(readFileSync(new URL(import.meta.url))), 'sim:edu:garbage', { name: 'garbage.wasm' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(LoadError);
    expect(err.message).toMatch(/^garbage\.wasm: not a valid Wasm module: .*bad magic/);
  });
});
