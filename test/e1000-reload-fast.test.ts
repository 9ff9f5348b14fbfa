// Hot reload of the e1000 driver with the descriptor firewall's Wasm doorbell on (the default; set here whatever the caller's environment),
// while it forwards frames on a memory-backed device: bench/native.c's `e1000-device`, another process
// polling a BAR0 memfd and a DMA memfd, which numbers every frame it gives the driver and checks that each
// one it takes back is the next, intact, and inside its DMA memory. The simulated e1000 (e1000-reload.test.ts)
// has simulated registers, which the compiled-in gate never serves; here every doorbell can run in Wasm,
// and every reload hands a live state block and live rings to a new instance while the device runs on.
// (Issue 20: in the QEMU guest the process died at a reload with this path on, 3 times in 6 runs once;
// this is the same path on the host, where it has not.)
process.env.WASMDRV_RING_FAST = '1';

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileC, runC } from '../host/bench/c.ts';
import { E1000_DEVICE_BUS, E1000_DEVICE_QUIT as BENCH_QUIT, e1000DeviceSpec } from '../host/bench/e1000.ts';
import { E1000_BAR0_SIZE as BAR0, RDBAL, STATUS, TDH, TDT } from '../host/sim/e1000-defs.ts';
import { Host, type Driver, type Fault } from '../host/index.ts';
import { loadNative } from '../host/native.ts';
import { E1000_DMA_BYTES, E1000Client } from '../host/net/e1000.ts';
import { grantFor } from '../host/package/manifest.ts';
import { driverPath, root } from './helpers.ts';
import { e1000Manifest, e1000ManifestPath } from './e1000-frames.ts';

const BUS = E1000_DEVICE_BUS;

describe('e1000 hot reload with the Wasm doorbell on a polling memfd device', () => {
  const native = loadNative();
  const host = new Host();
  const faults: string[] = [];
  const fds: number[] = [];
  let reg: Uint32Array;
  let regs: { buffer(): ArrayBuffer; close(): void };
  let device: Promise<string>;
  let drv: Driver;

  beforeAll(async () => {
    const bin = compileC(root);
    const regsFd = native.memfdCreate('test-e1000-bar0', BAR0);
    const dmaFd = native.memfdCreate('test-e1000-dma', E1000_DMA_BYTES);
    const irqFd = native.eventfdCreate(0);
    fds.push(regsFd, dmaFd, irqFd);
    regs = native.mapFd(regsFd, BAR0, 0);
    reg = new Uint32Array(regs.buffer());
    device = runC(bin, ['e1000-device', '120000', `0x${BUS.toString(16)}`], [regsFd, dmaFd], false);
    for (const t0 = performance.now(); !(Atomics.load(reg, STATUS >> 2) & 2); ) {
      if (performance.now() - t0 > 10_000) throw new Error('the e1000-device process did not come up');
      await new Promise((r) => setTimeout(r, 1));
    }
    const spec = e1000DeviceSpec({ regs: regsFd, dma: dmaFd, irq: irqFd });
    host.on('fault', (f: Fault) => faults.push(`${f.kind} in ${f.phase}: ${f.message}`));
    const { grant, limits } = grantFor(e1000Manifest, spec, e1000ManifestPath);
    drv = await host.load(driverPath('e1000'), { spec, close: () => {} }, { name: 'e1000-fast', grant, limits });
  }, 60_000);

  afterAll(async () => {
    Atomics.store(reg, BENCH_QUIT >> 2, 1);
    await device.catch(() => '');
    host.close();
    regs?.close();
    for (const fd of fds) native.close(fd);
  });

  it('20 reloads amid forwarding: each takes the rings over, the Wasm path serves after each, the device sees every frame once, in order, inside its memory', async () => {
    // The firewall is on (the device runs the host's real ring, not the driver's) and its doorbell is in Wasm.
    expect(Atomics.load(reg, RDBAL >> 2)).not.toBe(BUS);
    expect(drv.gateKind).toBe('inline');
    const nic = new E1000Client(drv);
    const bytes = new Uint8Array(readFileSync(driverPath('e1000')));
    let forwarded = 0;
    let stop = false;
    const pump = (async () => {
      while (!stop) forwarded += await nic.forward(32, 5);
    })();
    const fastAfter: number[] = [];
    for (let i = 0; i < 20; i++) {
      const before = drv.stats().ringFastDoorbells;
      const r = await drv.reload(bytes);
      expect(r.ok, r.error).toBe(true);
      expect(r.restored).toBe(true);
      // the new instance's own doorbells: some forwarding must have run through it in Wasm
      const t0 = performance.now();
      while (drv.stats().ringFastDoorbells <= before && performance.now() - t0 < 5000)
        await new Promise((res) => setTimeout(res, 5));
      fastAfter.push(drv.stats().ringFastDoorbells - before);
    }
    stop = true;
    await pump;
    expect(faults).toEqual([]);
    expect(
      fastAfter.every((n) => n > 0),
      `Wasm doorbells after each reload: ${fastAfter.join(',')}`,
    ).toBe(true);
    // Let the device send what is still in the TX ring, then count.
    for (const t0 = performance.now(); performance.now() - t0 < 5000; ) {
      if (Atomics.load(reg, TDH >> 2) === Atomics.load(reg, TDT >> 2)) break;
      await new Promise((res) => setTimeout(res, 1));
    }
    Atomics.store(reg, BENCH_QUIT >> 2, 1);
    const dev = JSON.parse(await device) as {
      transmitted: number;
      errors: number;
      dmaErrors: number;
      firstError: string;
    };
    expect(dev.errors, dev.firstError).toBe(0);
    expect(dev.dmaErrors, dev.firstError).toBe(0);
    expect(forwarded).toBeGreaterThan(0);
    expect(dev.transmitted).toBe(forwarded);
  }, 120_000);
});
