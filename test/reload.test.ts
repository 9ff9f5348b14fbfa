// Hot reload: swap a running driver's module without losing an interrupt or a request, with state
// transfer, refusal of broken or incompatible modules, and rollback.
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Host, type Driver } from '../host/index.ts';
import { SIM_IRQ_BYTES } from '../host/sim/irq.ts';
import { driverPath, u32, words } from './helpers.ts';

const OP_IDENTIFY = 1,
  OP_FACTORIAL = 2,
  OP_STATS = 6;
const edu = new Uint8Array(readFileSync(driverPath('edu')));
const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));

let host: Host;
afterEach(() => host?.close());

describe('hot reload', () => {
  it('1,000 reloads under a steady interrupt storm and request load: 0 lost interrupts, 0 failed requests', async () => {
    host = new Host();
    const storm = 20_000;
    // edu raises an interrupt by itself every 100 us of device time (10,000/s), 20,000 in all
    const dev = host.openDevice('sim:edu:storm', { sim: { autoIrqNs: 100_000, autoIrqCount: storm } });
    const drv = await host.load(edu, dev, { name: 'edu' });
    let failed = 0;
    let served = 0;
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++) {
        const n = (i % 12) + 1;
        await drv.request(OP_FACTORIAL, u32(n)).then(
          (r) => (words(r)[0] === fact(n) ? served++ : failed++),
          () => failed++,
        );
      }
    })();
    const swaps: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = await drv.reload(edu);
      expect(r.ok, r.error).toBe(true);
      expect(r.restored).toBe(true);
      swaps.push(r.swapMs);
    }
    loading = false;
    await load;
    // Let the storm finish and the host catch up, then every event the device counted must have
    // reached the driver.
    const deviceCount = () => new Int32Array(dev.spec.sim!.state, 0, 4)[2];
    const observed = () => drv.stats().interrupts + drv.stats().coalesced;
    // (the device's count includes the factorials' interrupts: wait until it stops moving)
    for (let i = 0, last = -1; i < 3000; i++) {
      const now = deviceCount();
      if (now === last && observed() === now) break;
      last = now;
      await new Promise((r) => setTimeout(r, 50));
    }
    const [driverSaw] = words(await drv.request(OP_STATS));
    const st = drv.stats();
    expect(deviceCount()).toBeGreaterThanOrEqual(storm);
    expect(st.interrupts + st.coalesced).toBe(deviceCount()); // the host observed every event
    expect(driverSaw).toBe(st.interrupts); // and the driver's own count survived 1,000 state transfers
    expect(failed).toBe(0);
    expect(served).toBeGreaterThan(100);
    swaps.sort((a, b) => a - b);
    console.log(
      `reload swap: median ${swaps[500].toFixed(2)} ms, p99 ${swaps[990].toFixed(2)} ms; ${served} requests served; ${deviceCount()} interrupts, ${st.coalesced} coalesced`,
    );
    void SIM_IRQ_BYTES;
  });

  it('a module that does not link is refused and the old driver keeps serving', async () => {
    host = new Host();
    const drv = await host.load(edu, 'sim:edu:r2', { name: 'edu' });
    const r = await drv.reload(new Uint8Array(readFileSync(driverPath('test/foreign-import'))));
    expect(r.ok).toBe(false);
    expect(r.error).toContain('import env.system is not part of the wasmdrv ABI');
    expect(words(await drv.request(OP_IDENTIFY))[0]).toBe(0x010000ed);
    expect(drv.state).toBe('running');
  });

  it('an incompatible state version is refused (policy); { fresh: true } re-probes instead', async () => {
    host = new Host();
    const drv = await host.load(edu, 'sim:edu:r3', { name: 'edu' });
    await drv.request(OP_FACTORIAL, u32(5));
    const v2 = new Uint8Array(readFileSync(driverPath('test/edu-state-v2')));
    const refused = await drv.reload(v2);
    expect(refused.ok).toBe(false);
    expect(refused.error).toContain('refused the saved state');
    expect(words(await drv.request(OP_STATS))[1]).toBe(1); // still the old module, with its state
    const fresh = await drv.reload(v2, { fresh: true });
    expect(fresh).toMatchObject({ ok: true, restored: false, stateBytes: 0 });
    expect(words(await drv.request(OP_STATS))[1]).toBe(0); // the new module probed: its own counters
    expect(words(await drv.request(OP_FACTORIAL, u32(6)))[0]).toBe(720);
  });

  it('a new module that faults within its grace period is rolled back to the old module and its state', async () => {
    host = new Host();
    const drv: Driver = await host.load(edu, 'sim:edu:r4', { name: 'edu' });
    for (let n = 1; n <= 3; n++) await drv.request(OP_FACTORIAL, u32(n));
    const r = await drv.reload(new Uint8Array(readFileSync(driverPath('test/edu-faulty'))), { graceMs: 5000 });
    expect(r).toMatchObject({ ok: true, restored: true });
    const rolledBack = once(drv, 'rolled-back');
    const err = await drv.request(7).catch((e) => e);
    expect(err.code).toBe('driver-restarted');
    await rolledBack;
    expect(drv.state).toBe('running');
    expect(words(await drv.request(OP_STATS))[1]).toBe(3); // the old module, with the state saved at the swap
    expect(await drv.request(7).catch((e) => e.code)).toBe('driver-error'); // old edu: unknown op, not a trap
  });
});

describe('wasmdrv run --watch', () => {
  it('reloads the driver when its .wasm changes, carrying its state over', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdtempSync, copyFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'wasmdrv-watch-'));
    const wasm = join(dir, 'edu.wasm');
    copyFileSync(driverPath('edu'), wasm);
    const child = spawn(
      process.execPath,
      [join(__dirname, '..', 'bin', 'wasmdrv.js'), 'run', wasm, '--device', 'sim:edu', '--watch', '--request', '2 5'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    const saw = (text: string) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no "${text}" in:\n${err}`)), 20_000);
        const check = () => {
          if (err.includes(text)) {
            clearTimeout(t);
            resolve();
          }
        };
        child.stderr.on('data', (d) => {
          err += d;
          check();
        });
        check();
      });
    try {
      await saw('[watch] watching');
      copyFileSync(driverPath('edu'), wasm);
      await saw('[watch] reloaded');
      expect(err).toMatch(/reloaded .*edu\.wasm in [\d.]+ ms \(20 bytes of state carried over\)/);
      child.kill('SIGINT');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
