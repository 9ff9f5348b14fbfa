// The 16550 driver on the simulated UART: port I/O, transmit, and interrupt-driven receive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, type Driver, type DeviceHandle } from '../host/index.ts';
import { uartFeed, uartTake } from '../host/sim/uart16550.ts';
import { driverPath, u32, words } from './helpers.ts';

const OP_WRITE = 1,
  OP_READ = 2,
  OP_STATS = 3;

describe('uart16550 driver on the simulated 16550', () => {
  const host = new Host();
  let dev: DeviceHandle;
  let drv: Driver;

  beforeAll(async () => {
    dev = host.openDevice('sim:uart16550');
    drv = await host.load(driverPath('uart16550'), dev);
  });
  afterAll(() => host.close());

  it('transmits a message out of the line', async () => {
    const msg = new TextEncoder().encode('hello from a sandboxed driver\n');
    expect(words(await drv.request(OP_WRITE, msg))).toEqual([msg.length]);
    expect(new TextDecoder().decode(uartTake(dev.spec))).toBe('hello from a sandboxed driver\n');
  });

  it('receives bytes through interrupts, each burst its own interrupt', async () => {
    const before = drv.stats().interrupts;
    const bursts = ['the quick brown fox ', 'jumps over the lazy dog ', '0123456789'];
    let got = '';
    for (const burst of bursts) {
      expect(uartFeed(dev.spec, new TextEncoder().encode(burst))).toBe(burst.length);
      // The request waits for the receive interrupt when nothing has arrived yet.
      let part = '';
      for (let i = 0; i < 20 && part.length < burst.length; i++)
        part += new TextDecoder().decode(await drv.request(OP_READ, u32(0, 200)));
      got += part;
    }
    expect(got).toBe(bursts.join(''));
    expect(drv.stats().interrupts - before).toBeGreaterThanOrEqual(bursts.length);
    const [irqs, received, transmitted, overruns] = words(await drv.request(OP_STATS));
    expect(received).toBe(got.length);
    expect(transmitted).toBe(30);
    expect(overruns).toBe(0);
    expect(irqs).toBe(drv.stats().interrupts);
  });

  it('a read with nothing on the line times out empty', async () => {
    expect((await drv.request(OP_READ, u32(0, 20))).length).toBe(0);
  });
});
