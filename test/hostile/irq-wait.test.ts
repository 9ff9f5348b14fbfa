// A hostile driver against the native interrupt wait (native.irqWaiter: on a real interrupt fd the
// driver's irq_wait import is the addon's function itself). On the bench device's eventfd: a wait
// with the longest timeout, a wait called again after it said "cancelled", and a wait spun with a
// zero timeout while the line fires, and waits whose timeouts straddle whole milliseconds (the wait
// sleeps the whole ms in poll() and the rest in ppoll(): addon.cc IrqWait). Each time stop() or the
// deadline ends the driver in bounded time,
// every interrupt is counted once, and the bystander answers. Each test first checks that the driver
// got the native wait, so the path under test is the new one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, type Fault, type RequestError } from '../../host/index.ts';
import { loadNative } from '../../host/native.ts';
import { Bystander } from './bystander.ts';
import { driverWat } from './modules.ts';

const native = loadNative();
const WAIT = '(import "wasmdrv" "irq_wait" (func $wait (param i32) (result i32)))';
const host = new Host();
let bystander: Bystander;
const faults: Fault[] = [];
let n = 0;
beforeAll(async () => {
  host.on('fault', (f: Fault) => faults.push(f));
  bystander = await Bystander.start(host);
});
afterAll(() => host.close());

async function loadWaiter(request: string, deadlineMs = 60_000) {
  const dev = host.openDevice(`sim:bench:w${n++}`, { sim: { dmaBytes: 65536 } });
  const drv = await host.load(driverWat({ imports: WAIT, request }), dev, {
    name: `waiter-${n}`,
    limits: { deadlineMs },
    restart: false,
  });
  expect(drv.status().irqWait).toBe('native');
  return { drv, irqFd: (dev.spec.irq as { eventfd: number }).eventfd };
}

/** stop() of `drv` while `answer` is pending: bounded, and the caller gets driver-stopped. */
async function stopsInBoundedTime(drv: Awaited<ReturnType<typeof loadWaiter>>['drv'], answer: Promise<unknown>) {
  await new Promise((r) => setTimeout(r, 300));
  const t0 = performance.now();
  const stopped = await Promise.race([
    drv.stop().then(() => true),
    new Promise((r) => setTimeout(() => r(false), 20_000)),
  ]);
  expect(stopped, `stop() returned (waited ${(performance.now() - t0).toFixed(0)} ms)`).toBe(true);
  expect(((await answer) as RequestError).code).toBe('driver-stopped');
}

describe('a hostile driver and the native interrupt wait', () => {
  it.each([
    [
      'blocked in irq_wait with the longest timeout (-1: 2^32 - 1 us): stop() ends it',
      '(drop (call $wait (i32.const -1))) (i32.const 0)',
    ],
    [
      'waiting again after every "cancelled": stop() still ends it',
      '(loop $l (drop (call $wait (i32.const -1))) (br $l)) (i32.const 0)',
    ],
  ])('%s', async (_name, body) => {
    const { drv } = await loadWaiter(body);
    await bystander.during(() =>
      stopsInBoundedTime(
        drv,
        drv.request(1).catch((e) => e),
      ),
    );
  });

  // timeouts 999, 1333, 1667, 2001 us in turn: below, at and past whole milliseconds
  const straddling = (body: string) =>
    `(loop $again (if (i32.eqz (call $wait (i32.add (i32.const 999) (i32.mul (i32.and (local.get $i) (i32.const 3)) (i32.const 334))))) (then ${body})) (local.set $i (i32.add (local.get $i) (i32.const 1)))`;

  it('waits straddling whole milliseconds cannot be cut short into a spin: each lasts its whole timeout', async () => {
    // 200 waits, then the number that timed out: 50 x (999 + 1333 + 1667 + 2001) us = 300 ms at the least
    const counted = '(i32.store (i32.const 1024) (i32.add (i32.load (i32.const 1024)) (i32.const 1)))';
    const { drv } = await loadWaiter(
      `${straddling(counted)} (br_if $again (i32.lt_u (local.get $i) (i32.const 200)))) (i32.const 4)`,
    );
    const t0 = performance.now();
    const out = await drv.request(1);
    const took = performance.now() - t0;
    expect(new DataView(out.buffer, out.byteOffset).getUint32(0, true)).toBe(200);
    // the detector: with the rest of each timeout dropped (the wait ending when poll()'s whole ms are
    // up) the 200 waits took 280 ms here (250 ms of timeouts asked, and the kernel's slack)
    expect(took).toBeGreaterThanOrEqual(300);
    await drv.stop();
  });

  it('waits straddling whole milliseconds while the line fires: every interrupt counted once, stop() ends it', async () => {
    const { drv, irqFd } = await loadWaiter(`${straddling('')} (br $again)) (i32.const 0)`);
    const answer = drv.request(1).catch((e) => e);
    const seen = () => drv.stats().interrupts + drv.stats().coalesced;
    let fired = 0;
    for (let i = 0; i < 10; i++) {
      native.eventfdWrite(irqFd, 1 + (i % 2));
      fired += 1 + (i % 2);
      for (const t0 = Date.now(); seen() !== fired && Date.now() - t0 < 2000; )
        await new Promise((r) => setTimeout(r, 1));
      expect(seen()).toBe(fired);
    }
    await bystander.during(() => stopsInBoundedTime(drv, answer));
    expect(seen()).toBe(fired);
  });

  it('spinning on irq_wait(0) while the line fires: the deadline ends it, every interrupt counted once', async () => {
    const before = faults.length;
    const { drv, irqFd } = await loadWaiter('(loop $l (drop (call $wait (i32.const 0))) (br $l)) (i32.const 0)', 3000);
    const answer = drv.request(1).catch((e) => e);
    const seen = () => drv.stats().interrupts + drv.stats().coalesced;
    let fired = 0;
    for (let i = 0; i < 20; i++) {
      native.eventfdWrite(irqFd, 1 + (i % 3));
      fired += 1 + (i % 3);
      // each burst taken by the spinning wait before the next (the books are in shared memory)
      for (const t0 = Date.now(); seen() !== fired && Date.now() - t0 < 2000; )
        await new Promise((r) => setTimeout(r, 1));
      expect(seen()).toBe(fired);
    }
    expect(((await answer) as RequestError).code).toBe('driver-faulted');
    // the detector fired: the watchdog's deadline fault, not a crash or a hang
    expect(faults.slice(before).map((f) => f.kind)).toContain('deadline');
    expect(seen()).toBe(fired);
    expect(drv.stats().coalesced).toBeGreaterThan(0);
    await bystander.check();
    await drv.stop();
  });
});
