// The e1000 driver end to end on the simulated 82540EM: rings, batches, interrupts, link, statistics,
// under the manifest's grant, with the model as the DMA oracle (every access it made was inside the window).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, type DeviceHandle, type Driver } from '../host/index.ts';
import { e1000Capture, e1000Dma, e1000Inject, e1000SetLink } from '../host/sim/e1000.ts';
import { E1000Client } from '../host/net/e1000.ts';
import { grantFor, parseManifest } from '../host/package/manifest.ts';
import { ringLayouts } from '../host/package/rings.ts';
import { driverPath } from './helpers.ts';
import { e1000Manifest, e1000ManifestPath, frame, macBytes, PEER, seqOf } from './e1000-frames.ts';

const MAC = '02:00:00:aa:bb:01';

const macOf = macBytes(MAC);

async function until<T>(what: string, fn: () => Promise<T | undefined>, tries = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('e1000 driver on the simulated 82540EM', () => {
  const host = new Host();
  const logs: string[] = [];
  const guestErrors: string[] = [];
  let dev: DeviceHandle;
  let drv: Driver;
  let nic: E1000Client;

  beforeAll(async () => {
    host.on('log', (e) => {
      logs.push(e.message);
      if (e.message.startsWith('device: ')) guestErrors.push(e.message);
    });
    // A 5 ms RCTL hold instead of QEMU's 1 s keeps the test short; the behaviour is the same.
    dev = host.openDevice('sim:e1000', { sim: { mac: MAC, rctlHoldNs: 5_000_000 } });
    const { grant, limits } = grantFor(e1000Manifest, dev.spec, e1000ManifestPath);
    drv = await host.load(driverPath('e1000'), dev, { grant, limits });
    nic = new E1000Client(drv);
  });
  afterAll(() => host.close());

  it('probes under the manifest grant: MAC from RAL0, link up', async () => {
    expect(drv.state).toBe('running');
    expect(logs.some((l) => l.includes(`MAC ${MAC} (RAL0)`) && l.includes('link up'))).toBe(true);
    expect(await nic.mac()).toEqual({ mac: MAC, source: 'ral' });
    expect(await nic.link()).toEqual({ up: true, speedMbps: 1000, changes: 0 });
  });

  it('sends a batch: frames leave intact and in order, one TDT write for the batch', async () => {
    const frames = Array.from({ length: 20 }, (_, i) => frame(PEER, i, 60 + i * 50));
    const writesBefore = drv.stats().regWrites;
    expect(await nic.send(frames)).toBe(20);
    const wire = e1000Capture(dev.spec);
    expect(wire.map((f) => Buffer.from(f).toString('hex'))).toEqual(frames.map((f) => Buffer.from(f).toString('hex')));
    // 20 frames in several requests (the io buffer holds ~8 KiB of records): a tail write per request.
    // Per descriptor nothing but memory; per request one TDT write.
    expect(drv.stats().regWrites - writesBefore).toBeLessThanOrEqual(4);
  });

  it('receives injected frames intact, broadcast too; frames for another MAC are filtered', async () => {
    const mine = Array.from({ length: 10 }, (_, i) => frame(macOf, 1000 + i, 64 + i * 100));
    const bcast = frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 2000);
    const other = frame([0x02, 0, 0, 0, 0, 0x42], 3000);
    expect(e1000Inject(dev.spec, [...mine.slice(0, 5), other, bcast, ...mine.slice(5)])).toBe(12);
    const got: Uint8Array[] = [];
    await until('11 frames', async () => {
      got.push(...(await nic.recv(64, 20_000)));
      return got.length >= 11 ? true : undefined;
    });
    expect(got.map(seqOf)).toEqual([1000, 1001, 1002, 1003, 1004, 2000, 1005, 1006, 1007, 1008, 1009]);
    const want = [...mine.slice(0, 5), bcast, ...mine.slice(5)];
    got.forEach((f, i) => expect(Buffer.from(f).equals(Buffer.from(want[i]))).toBe(true));
  });

  it('pads a short received frame to 60 bytes, as the device does', async () => {
    const short = frame(macOf, 4000, 42);
    e1000Inject(dev.spec, [short]);
    const [f] = await until('the short frame', async () => {
      const r = await nic.recv(1, 20_000);
      return r.length ? r : undefined;
    });
    expect(f.length).toBe(60);
    expect(Buffer.from(f.subarray(0, 42)).equals(Buffer.from(short))).toBe(true);
    expect(f.subarray(42).every((b) => b === 0)).toBe(true);
  });

  it('wraps both rings many times over: 2000 frames each way, none lost, none reordered', async () => {
    const N = 2000;
    let sent = 0;
    for (let i = 0; i < N; i += 25) {
      const batch = Array.from({ length: 25 }, (_, k) => frame(PEER, 10_000 + i + k, 60 + ((i + k) % 40) * 30));
      sent += await nic.send(batch);
      const out = e1000Capture(dev.spec);
      expect(out.map(seqOf)).toEqual(batch.map(seqOf));
    }
    expect(sent).toBe(N);
    const seen: number[] = [];
    for (let i = 0; i < N; i += 40) {
      // 40 at a time: fewer than the 63 buffers the RX ring holds, so nothing waits on the wire for long.
      const batch = Array.from({ length: 40 }, (_, k) => frame(macOf, 50_000 + i + k, 60 + ((i + k) % 30) * 40));
      expect(e1000Inject(dev.spec, batch)).toBe(40);
      await until(`frames up to ${i + 40}`, async () => {
        for (const f of await nic.recv(64, 20_000)) {
          expect(f.length).toBe(60 + ((seqOf(f) - 50_000) % 30) * 40);
          seen.push(seqOf(f));
        }
        return seen.length >= i + 40 ? true : undefined;
      });
    }
    expect(seen).toEqual(Array.from({ length: N }, (_, i) => 50_000 + i));
  });

  it('holds frames on the wire while the RX ring has no free buffers (RDH == RDT), then delivers them', async () => {
    // 100 frames exceed the 63 usable buffers: the rest wait until the driver gives buffers back.
    const batch = Array.from({ length: 100 }, (_, k) => frame(macOf, 90_000 + k, 200));
    expect(e1000Inject(dev.spec, batch)).toBe(100);
    const seen: number[] = [];
    await until('100 frames', async () => {
      for (const f of await nic.recv(64, 20_000)) seen.push(seqOf(f));
      return seen.length >= 100 ? true : undefined;
    });
    expect(seen).toEqual(batch.map(seqOf));
    expect(e1000Dma(dev.spec).waiting).toBe(0);
  });

  it('counts in the device statistics what crossed the wire', async () => {
    const s = await nic.stats();
    expect(s.gptc).toBe(20n + 2000n);
    expect(s.tpt).toBe(s.gptc);
    expect(s.gprc).toBe(11n + 1n + 2000n + 100n);
    expect(s.tpr).toBe(s.gprc);
    expect(s.rxFrames).toBe(s.gprc);
    expect(s.txFrames).toBe(s.gptc);
    // Octets include the 4-byte FCS; the transmitted sizes are known exactly.
    const txSizes = Array.from({ length: 20 }, (_, i) => 60 + i * 50).concat(
      Array.from({ length: 2000 }, (_, i) => 60 + (i % 40) * 30),
    );
    expect(s.gotc).toBe(BigInt(txSizes.reduce((a, b) => a + b + 4, 0)));
    expect(s.interrupts).toBeGreaterThan(0n);
  });

  it('sees the cable pulled and plugged back (LSC), and hears nothing while the link is down', async () => {
    e1000SetLink(dev.spec, false);
    const down = await until('link down', async () => {
      const l = await nic.link();
      return l.up ? undefined : l;
    });
    expect(down).toEqual({ up: false, speedMbps: 0, changes: 1 });
    e1000Inject(dev.spec, [frame(macOf, 7777)]);
    expect(await nic.recv(8, 20_000)).toEqual([]);
    e1000SetLink(dev.spec, true);
    const up = await until('link up', async () => {
      const l = await nic.link();
      return l.up ? l : undefined;
    });
    expect(up).toEqual({ up: true, speedMbps: 1000, changes: 2 });
    expect(e1000Dma(dev.spec).linkDrops).toBe(1);
    e1000Inject(dev.spec, [frame(macOf, 7778)]);
    const [f] = await until('a frame after link up', async () => {
      const r = await nic.recv(8, 20_000);
      return r.length ? r : undefined;
    });
    expect(seqOf(f)).toBe(7778);
    expect(logs.filter((l) => /e1000: link (down|up)/.test(l))).toEqual(['e1000: link down', 'e1000: link up']);
  });

  it('the descriptor firewall is on: the device works from the host rings, beyond the window the driver sees', async () => {
    const { DeviceSession } = await import('../host/sandbox/session.ts');
    const s = new DeviceSession(dev.spec, {});
    try {
      const win = dev.spec.dma[0];
      const driverEnd = win.bus + BigInt(win.size - 0x2000); // the e1000's two rings of 256 descriptors: 8 KiB
      for (const base of [0x2800, 0x3800]) {
        const bus = BigInt(Number(s.readSim(0, base, 4)) >>> 0);
        expect(bus >= driverEnd && bus < win.bus + BigInt(win.size)).toBe(true);
      }
    } finally {
      s.close();
    }
  });

  it('the DMA oracle: thousands of device accesses, none outside the window', () => {
    const dma = e1000Dma(dev.spec);
    expect(dma.accesses).toBeGreaterThan(8000);
    expect(dma.outside).toBe(0);
    expect(dma.lastOutside).toBeNull();
    expect(guestErrors).toEqual([]);
    expect(drv.state).toBe('running');
  });
});

describe('the simulated e1000 records DMA outside the windows', () => {
  it("the manifest pins the ring bases' high halves to zero and the RX buffer size", async () => {
    const host = new Host();
    try {
      const dev = host.openDevice('sim:e1000');
      const { grant } = grantFor(e1000Manifest, dev.spec, e1000ManifestPath);
      const p = grant.regions![0];
      expect(p.writable?.filter((w) => w.offset === 0x2804 || w.offset === 0x3804).map((w) => w.mask)).toEqual([
        0n,
        0n,
      ]);
      // RCTL may not change BSIZE/BSEX: the RX buffer size the rings declare (2048) holds.
      expect((p.writable?.find((w) => w.offset === 0x100)?.mask ?? -1n) & 0x02030000n).toBe(0n);
    } finally {
      await host.close();
    }
  });

  it('without a grant, a device pointed outside the window touches nothing and the access is recorded', async () => {
    const { openSimDevice } = await import('../host/devices/sim.ts');
    const { DeviceSession } = await import('../host/sandbox/session.ts');
    const dev = openSimDevice('e1000');
    const errors: string[] = [];
    const s = new DeviceSession(dev.spec, { onGuestError: (m) => errors.push(m) });
    try {
      s.writeSim(0, 0x3800, 4, 0x5000_0000); // TDBAL outside the window at 0x1000_0000
      s.writeSim(0, 0x3808, 4, 128);
      s.writeSim(0, 0x0400, 4, 2); // TCTL.EN
      s.writeSim(0, 0x3818, 4, 1); // TDT: the device fetches descriptor 0
      const dma = e1000Dma(dev.spec);
      expect(dma.outside).toBe(1);
      expect(dma.lastOutside).toBe(0x5000_0000n);
      expect(errors.some((e) => e.includes('TX descriptor 0') && e.includes('0x50000000'))).toBe(true);
      expect(e1000Capture(dev.spec)).toEqual([]);
    } finally {
      s.close();
      dev.close();
    }
  });
});

describe('the e1000 manifest describes its rings for the descriptor firewall', () => {
  it('parses into ring layouts naming the registers and fields', () => {
    const rings = ringLayouts(e1000Manifest, e1000ManifestPath);
    expect(rings.map((r) => [r.name, r.direction, r.registers])).toEqual([
      ['rx', 'device-writes', { baseLow: 0x2800, baseHigh: 0x2804, length: 0x2808, head: 0x2810, tail: 0x2818 }],
      ['tx', 'device-reads', { baseLow: 0x3800, baseHigh: 0x3804, length: 0x3808, head: 0x3810, tail: 0x3818 }],
    ]);
    expect(rings[1].fields.find((f) => f.meaning === 'buffer-address')).toMatchObject({
      offset: 0,
      width: 8,
      lengthField: 'length',
    });
  });

  it('refuses a field that runs past the descriptor, naming ring and field', () => {
    const bad = JSON.parse(JSON.stringify(e1000Manifest));
    bad.rings[0].fields[1].offset = 15;
    expect(() => parseManifest(JSON.stringify(bad), 'bad.json')).toThrow(
      /bad\.json: ring "rx": field "length" \(offset 15, width 2\) runs past the 16-byte descriptor/,
    );
  });
});
