// The native interrupt wait (native.irqWaiter, addon.cc IrqWaiter): irq_wait as a native function the
// driver's Wasm imports directly. It must keep the books exactly as the JavaScript wait does
// (interrupts.ts noteCount: interrupts, coalesced events, the count seen, the recorder's irq entry),
// return what the JavaScript wait returns (1 interrupt, 0 timeout, -1 cancelled), and hand what it
// does not serve to the JavaScript wait. Then a driver on a real eventfd, waited for both ways (irqWait 'js', or WASMDRV_NATIVE_WAIT=0).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Host } from '../host/index.ts';
import { type IrqWaiterConfig, loadNative, nativeBinaryPath, packageRoot } from '../host/native.ts';
import { CTRL_STOP, DriverShared, OP } from '../host/sandbox/shared.ts';
import { driverPath } from './helpers.ts';

const native = loadNative();
const cell = (n: number) => new Float64Array(new SharedArrayBuffer(8 * n));

function setup(width: 4 | 8 = 8) {
  const irq = native.eventfdCreate(0);
  const cancel = native.eventfdCreate(0);
  const shared = new DriverShared(DriverShared.create(16));
  const source = cell(1);
  const state = cell(3);
  state[1] = 1;
  const calls: string[] = [];
  const cfg: IrqWaiterConfig = {
    fds: new Int32Array([irq, cancel]),
    width,
    source,
    state,
    area: shared.control,
    layout: shared.irqLayout(OP.irq),
    slow: (t) => {
      calls.push(`slow ${t}`);
      return 7;
    },
    rearm: () => void calls.push('rearm'),
    after: () => void calls.push('after'),
  };
  const close = () => {
    native.close(irq);
    native.close(cancel);
  };
  return { irq, cancel, shared, source, state, calls, cfg, close };
}

describe('native.irqWaiter', () => {
  let done: (() => void) | undefined;
  afterEach(() => done?.());

  it('returns 1 on a new count and keeps the books as noteCount does', () => {
    const t = setup();
    done = t.close;
    const wait = native.irqWaiter(t.cfg);
    native.eventfdWrite(t.irq, 3); // three interrupts seen as one: two coalesced
    expect(wait(1_000_000)).toBe(1);
    expect(t.state[0]).toBe(3);
    expect(t.source[0]).toBe(3);
    expect(t.shared.stat('interrupts')).toBe(1);
    expect(t.shared.stat('coalesced')).toBe(2);
    native.eventfdWrite(t.irq, 1);
    expect(wait(1_000_000)).toBe(1);
    expect(t.state[0]).toBe(4);
    expect(t.shared.stat('interrupts')).toBe(2);
    expect(t.shared.stat('coalesced')).toBe(2);
    // the recorder's entries, in the format and slots DriverShared.record uses
    expect(t.shared.entries().map((e) => [e.op, e.value])).toEqual([
      ['irq', 3n],
      ['irq', 4n],
    ]);
    expect(t.shared.recorderTotal).toBe(2);
    // rearm before each wait; `after` only once state[2] asks for it
    expect(t.calls).toEqual(['rearm', 'rearm']);
    t.state[2] = 1;
    native.eventfdWrite(t.irq, 1);
    expect(wait(1_000_000)).toBe(1);
    expect(t.calls).toEqual(['rearm', 'rearm', 'rearm', 'after']);
  });

  it('shares the recorder with JavaScript entries and wraps with it', () => {
    const t = setup();
    done = t.close;
    const wait = native.irqWaiter(t.cfg);
    for (let i = 0; i < 20; i++) {
      t.shared.record(OP.request, 0, i, 0, 0, 0);
      native.eventfdWrite(t.irq, 1);
      expect(wait(1_000_000)).toBe(1);
    }
    const all = t.shared.entries(); // 16 entries kept of 40
    expect(t.shared.recorderTotal).toBe(40);
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 16 }, (_, i) => 24 + i));
    expect(all.filter((e) => e.op === 'irq').map((e) => e.value)).toEqual([13n, 14n, 15n, 16n, 17n, 18n, 19n, 20n]);
    expect(all.filter((e) => e.op === 'request').map((e) => e.offset)).toEqual([12, 13, 14, 15, 16, 17, 18, 19]);
  });

  it('takes a UIO count as the count (width 4) and returns 0 when the count has not moved', () => {
    const t = setup(4);
    // A file of two u32 counts stands in for /dev/uioN (always readable; each read() of 4 bytes gives
    // the next count, then end of file): 9, then 9 again, which is no new interrupt.
    const dir = mkdtempSync(join(tmpdir(), 'wasmdrv-irq-'));
    writeFileSync(join(dir, 'uio'), new Uint8Array(new Uint32Array([9, 9]).buffer));
    const fd = native.open(join(dir, 'uio'));
    done = () => {
      t.close();
      native.close(fd);
      rmSync(dir, { recursive: true, force: true });
    };
    const wait = native.irqWaiter({ ...t.cfg, fds: new Int32Array([fd, t.cancel]) });
    expect(wait(1_000_000)).toBe(1);
    expect(t.state[0]).toBe(9);
    const t0 = performance.now();
    expect(wait(20_000)).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(19);
    expect(t.shared.stat('interrupts')).toBe(1);
  });

  it('returns 0 at the timeout and -1 when cancelled or stopped', () => {
    const t = setup();
    done = t.close;
    const wait = native.irqWaiter(t.cfg);
    const t0 = performance.now();
    expect(wait(5_000)).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(4.5);
    expect(wait(0)).toBe(0);
    native.eventfdWrite(t.cancel, 1);
    native.eventfdWrite(t.irq, 1);
    expect(wait(1_000_000)).toBe(-1); // cancel wins over a pending interrupt, as in the JavaScript wait
    expect(t.shared.stat('interrupts')).toBe(0);
  });

  // A wait sleeps its whole milliseconds in poll() and the rest in ppoll() (addon.cc IrqWait): the
  // timeout must still be the one asked for, not cut at the last whole ms, and an interrupt that
  // comes while poll() sleeps must end the wait.
  it('times out after the whole timeout asked for, past whole ms and below 1 ms', () => {
    const t = setup();
    done = t.close;
    const wait = native.irqWaiter(t.cfg);
    for (const us of [1_700, 2_000, 300, 3_950]) {
      const t0 = performance.now();
      expect(wait(us)).toBe(0);
      expect(performance.now() - t0, `irq_wait(${us})`).toBeGreaterThanOrEqual(us / 1000 - 0.01);
    }
    expect(t.shared.stat('interrupts')).toBe(0);
  });

  it('wakes on an interrupt that comes while it sleeps', async () => {
    const t = setup();
    done = t.close;
    const wait = native.irqWaiter(t.cfg);
    const flag = new Int32Array(new SharedArrayBuffer(8));
    const w = new Worker(join(packageRoot(), 'test', 'fixtures', 'native-worker.mjs'), {
      workerData: { addon: nativeBinaryPath(), task: 'ping-later', flag: flag.buffer, delayMs: 50, irqFd: t.irq },
    });
    const pinged = new Promise((resolve, reject) => {
      w.on('message', resolve);
      w.on('error', reject);
    });
    try {
      await new Promise((r) => w.once('online', r));
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      const t0 = performance.now();
      expect(wait(10_000_000)).toBe(1); // a 10 s timeout: poll() asked to sleep 10,000 ms
      const took = performance.now() - t0;
      expect(took).toBeGreaterThanOrEqual(45);
      expect(took).toBeLessThan(5_000);
      expect(t.shared.stat('interrupts')).toBe(1);
      expect(await pinged).toEqual({ pinged: true });
    } finally {
      await w.terminate();
    }
  });

  it('hands a stop already asked for, and interrupts turned off, to the JavaScript wait', () => {
    const t = setup();
    done = t.close;
    const wait = native.irqWaiter(t.cfg);
    t.state[1] = 0;
    expect(wait(1234)).toBe(7);
    t.state[1] = 1;
    Atomics.store(t.shared.control, CTRL_STOP, 1);
    expect(wait(99)).toBe(7);
    expect(t.calls).toEqual(['slow 1234', 'slow 99']);
  });

  it('lets what its JavaScript calls throw reach the caller', () => {
    const t = setup();
    done = t.close;
    const wait = native.irqWaiter({
      ...t.cfg,
      rearm: () => {
        throw new Error('rearm failed');
      },
    });
    expect(() => wait(1000)).toThrow('rearm failed');
  });

  it('refuses a configuration that would let it write outside the area', () => {
    const t = setup();
    done = t.close;
    expect(() => native.irqWaiter({ ...t.cfg, state: new Float64Array(3) })).toThrow(
      'irqWaiter: state must be over a SharedArrayBuffer',
    );
    expect(() => native.irqWaiter({ ...t.cfg, layout: { ...t.cfg.layout, ring: t.shared.byteLength } })).toThrow(
      /irqWaiter: (layout.ring is outside|the recorder runs past)/,
    );
    expect(() => native.irqWaiter({ ...t.cfg, layout: { ...t.cfg.layout, interrupts: 3 } })).toThrow(
      'irqWaiter: layout.interrupts is outside the area or misaligned',
    );
    expect(() => native.irqWaiter({ ...t.cfg, layout: { ...t.cfg.layout, entries: 12 } })).toThrow(
      'irqWaiter: layout.entries must be a power of two',
    );
    expect(() => native.irqWaiter({ ...t.cfg, width: 2 as 4 })).toThrow('irqWaiter: width must be 4 or 8');
  });
});

describe('a driver waiting on a real eventfd', () => {
  // The bench driver's op 4: write i into the handshake page, irq_wait, i = 1..n. This thread answers
  // each i with an eventfd write of `burst[i]` (several interrupts seen as one count: coalesced).
  async function run(how: 'default' | 'option' | 'env') {
    const saved = process.env.WASMDRV_NATIVE_WAIT;
    if (how === 'env') process.env.WASMDRV_NATIVE_WAIT = '0';
    const host = new Host();
    try {
      const dev = host.openDevice('sim:bench');
      const drv = await host.load(driverPath('bench'), dev, {
        name: `irq-${how}`,
        ...(how === 'option' ? { irqWait: 'js' as const } : {}),
      });
      const dmaFd = (dev.spec.dma[0].source as { fd: number }).fd;
      const irqFd = (dev.spec.irq as { eventfd: number }).eventfd;
      const page = native.mapFd(dmaFd, 4096, 0);
      try {
        const words = new BigUint64Array(page.buffer());
        const n = 40;
        const burst = (i: number) => 1 + (i % 3);
        const answer = drv.request(4, new Uint8Array(new Uint32Array([n]).buffer));
        for (let i = 1; i <= n; i++) {
          for (const t0 = Date.now(); Atomics.load(words, 0) !== BigInt(i); ) {
            if (Date.now() - t0 > 10_000) throw new Error(`the driver never asked for interrupt ${i}`);
            await new Promise((r) => setImmediate(r));
          }
          native.eventfdWrite(irqFd, burst(i));
        }
        const r = await answer;
        expect(new DataView(r.buffer, r.byteOffset).getUint32(0, true)).toBe(n);
        let total = 0;
        for (let i = 1; i <= n; i++) total += burst(i);
        const st = drv.stats();
        const irqs = drv.recorder().filter((e) => e.op === 'irq');
        return {
          kind: drv.status().irqWait,
          interrupts: st.interrupts,
          coalesced: st.coalesced,
          total,
          last: irqs.at(-1)?.value,
        };
      } finally {
        page.close();
      }
    } finally {
      if (saved === undefined) delete process.env.WASMDRV_NATIVE_WAIT;
      else process.env.WASMDRV_NATIVE_WAIT = saved;
      await host.close();
    }
  }

  it('gets the same interrupts, counts and recorder either way', async () => {
    const fast = await run('default');
    const js = await run('option');
    const env = await run('env');
    expect(fast.kind).toBe('native');
    expect(js.kind).toBe('js');
    expect(env.kind).toBe('js');
    for (const r of [fast, js, env]) {
      expect(r.interrupts).toBe(40);
      expect(r.coalesced).toBe(r.total - 40);
      expect(r.last).toBe(BigInt(r.total));
    }
  }, 60_000);
});
