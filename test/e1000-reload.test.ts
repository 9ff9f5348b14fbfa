// Hot reload of the e1000 driver while frames flow both ways on the simulated 82540EM: the new instance
// takes the live rings over through state_save/state_restore (no reset, no ring rewrite), so no frame is
// lost, duplicated or reordered in either direction, and the statistics carry over.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, type DeviceHandle, type Driver } from '../host/index.ts';
import { e1000Capture, e1000Inject } from '../host/sim/e1000.ts';
import { E1000Client } from '../host/net/e1000.ts';
import { grantFor } from '../host/package/manifest.ts';
import { driverPath } from './helpers.ts';
import { e1000Manifest, e1000ManifestPath, frame, macBytes, PEER, seqOf } from './e1000-frames.ts';

const MAC = '02:00:00:aa:bb:02';
const macOf = macBytes(MAC);

describe('e1000 hot reload with live rings', () => {
  const host = new Host();
  const logs: string[] = [];
  let dev: DeviceHandle;
  let drv: Driver;
  let nic: E1000Client;
  const bytes = () => new Uint8Array(readFileSync(driverPath('e1000')));

  beforeAll(async () => {
    host.on('log', (e) => logs.push(e.message));
    dev = host.openDevice('sim:e1000', { sim: { mac: MAC, rctlHoldNs: 5_000_000 } });
    const { grant, limits } = grantFor(e1000Manifest, dev.spec, e1000ManifestPath);
    drv = await host.load(driverPath('e1000'), dev, { grant, limits });
    nic = new E1000Client(drv);
  });
  afterAll(() => host.close());

  it('20 reloads amid traffic both ways: every frame once, in order; no reset; stats carried over', async () => {
    const ROUNDS = 20;
    const PER = 30; // under the 63 RX buffers, so nothing is held on the wire for want of buffers
    const received: number[] = [];
    const wire: number[] = [];
    const sentSeqs: number[] = [];
    let restored = 0;
    for (let r = 0; r < ROUNDS; r++) {
      // Frames land in the RX ring (the sim's DMA runs on its own) while the reload is queued.
      expect(
        e1000Inject(
          dev.spec,
          Array.from({ length: PER }, (_, k) => frame(macOf, 1000 + r * PER + k)),
        ),
      ).toBe(PER);
      const out = Array.from({ length: PER }, (_, k) => frame(PEER, 5000 + r * PER + k, 60 + k * 10));
      // The send is queued before the reload, the receive after it: the swap happens between them.
      const sending = nic.send(out);
      const reloading = drv.reload(bytes());
      const recv1 = nic.recv(64, 0);
      const [n, res, got] = await Promise.all([sending, reloading, recv1]);
      expect(res.ok, res.error).toBe(true);
      if (res.restored) restored++;
      expect(n).toBe(PER);
      sentSeqs.push(...out.map(seqOf));
      for (const f of got) received.push(seqOf(f));
      for (const f of e1000Capture(dev.spec)) wire.push(seqOf(f));
      // Drain what the reload's interval left in the ring.
      for (let t = 0; t < 200 && received.length < (r + 1) * PER; t++)
        for (const f of await nic.recv(64, 20_000)) received.push(seqOf(f));
    }
    expect(restored).toBe(ROUNDS);
    expect(received).toEqual(Array.from({ length: ROUNDS * PER }, (_, i) => 1000 + i));
    expect(wire).toEqual(sentSeqs);
    const st = await nic.stats();
    expect(Number(st.rxFrames)).toBe(ROUNDS * PER);
    expect(Number(st.txFrames)).toBe(ROUNDS * PER);
    expect(Number(st.gprc)).toBe(ROUNDS * PER);
    expect(Number(st.gptc)).toBe(ROUNDS * PER);
    // The NIC was never reset: probe's log line appears once, the take-over line once per reload.
    expect(logs.filter((l) => l.includes('e1000: MAC ')).length).toBe(1);
    expect(logs.filter((l) => l.includes('took over the running rings')).length).toBe(ROUNDS);
    expect(drv.state).toBe('running');
  });

  it('a fresh reload re-probes the NIC (rings rewritten) and traffic flows on', async () => {
    const fresh = await drv.reload(bytes(), { fresh: true });
    expect(fresh.ok, fresh.error).toBe(true);
    expect(fresh.restored).toBe(false);
    expect(e1000Inject(dev.spec, [frame(macOf, 77)])).toBe(1);
    let got: Uint8Array[] = [];
    for (let t = 0; t < 100 && got.length === 0; t++) got = await nic.recv(8, 20_000);
    expect(got.map(seqOf)).toEqual([77]);
  });

  it('a new module that faults within its grace period rolls back to the old one on the same live rings', async () => {
    const faulty = new Uint8Array(readFileSync(driverPath('test/e1000-faulty')));
    const probes = () => logs.filter((l) => l.includes('e1000: MAC ')).length;
    const probed = probes();
    const r = await drv.reload(faulty, { graceMs: 10_000 });
    expect(r).toMatchObject({ ok: true, restored: true });
    // Frames arrive while the faulty module runs; it never reads them.
    expect(e1000Inject(dev.spec, [frame(macOf, 501), frame(macOf, 502)])).toBe(2);
    const rolledBack = new Promise((resolve) => drv.once('rolled-back', resolve));
    expect(await drv.request(99).catch((e) => e.code)).toBe('driver-restarted');
    await rolledBack;
    expect(drv.state).toBe('running');
    // The old module took the rings over again (the firewall adopted them): no probe, the frames are there.
    expect(probes()).toBe(probed);
    const got: Uint8Array[] = [];
    for (let t = 0; t < 100 && got.length < 2; t++) got.push(...(await nic.recv(8, 20_000)));
    expect(got.map(seqOf)).toEqual([501, 502]);
    expect(await nic.send([frame(PEER, 503)])).toBe(1);
    expect(e1000Capture(dev.spec).map(seqOf)).toEqual([503]);
  });

  it('a rollback whose saved state went stale (the new module sent frames) probes afresh instead', async () => {
    const faulty = new Uint8Array(readFileSync(driverPath('test/e1000-faulty')));
    const probes = () => logs.filter((l) => l.includes('e1000: MAC ')).length;
    const probed = probes();
    const r = await drv.reload(faulty, { graceMs: 10_000 });
    expect(r).toMatchObject({ ok: true, restored: true });
    expect(await nic.send([frame(PEER, 601)])).toBe(1); // the TX tail moves past the state saved at the swap
    const restarted = new Promise((resolve) => drv.once('restarted', resolve));
    expect(await drv.request(99).catch((e) => e.code)).toBe('driver-restarted');
    await restarted;
    expect(drv.state).toBe('running');
    expect(probes()).toBe(probed + 1); // the old module refused the stale state; the restart reset and probed
    expect(e1000Capture(dev.spec).map(seqOf)).toEqual([601]);
    expect(e1000Inject(dev.spec, [frame(macOf, 602)])).toBe(1);
    let got: Uint8Array[] = [];
    for (let t = 0; t < 100 && got.length === 0; t++) got = await nic.recv(8, 20_000);
    expect(got.map(seqOf)).toEqual([602]);
  });

  it('kill: a request in flight is answered driver-restarted, the NIC is reset and probed, traffic flows', async () => {
    const probes = () => logs.filter((l) => l.includes('e1000: MAC ')).length;
    const probed = probes();
    const faults: string[] = [];
    drv.on('fault', (f) => faults.push(f.kind));
    const waiting = nic.recv(8, 2_000_000); // blocks in the driver until a frame or 2 s
    await new Promise((r) => setTimeout(r, 50));
    const restarted = new Promise((resolve) => drv.once('restarted', resolve));
    drv.kill('test');
    expect(await waiting.catch((e) => e.code)).toBe('driver-restarted');
    await restarted;
    expect(faults).toEqual(['killed']);
    expect(drv.state).toBe('running');
    expect(probes()).toBe(probed + 1);
    expect(await nic.send([frame(PEER, 701)])).toBe(1);
    expect(e1000Capture(dev.spec).map(seqOf)).toEqual([701]);
    expect(e1000Inject(dev.spec, [frame(macOf, 702)])).toBe(1);
    let got: Uint8Array[] = [];
    for (let t = 0; t < 100 && got.length === 0; t++) got = await nic.recv(8, 20_000);
    expect(got.map(seqOf)).toEqual([702]);
  });
});
