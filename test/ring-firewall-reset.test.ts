// The descriptor firewall across a device reset (issue 20): the e1000's CTRL.RST returns the ring
// registers to their reset values (base 0) on the hardware and on the simulated e1000, so the host
// must program its real rings again (the manifest's `resetBy`, host/sandbox/ring-reset.ts). First the
// firewall on its own over a register file that models the reset, then the hostile e1000 driver on
// the simulated device, whose DMA record is the oracle: 0 accesses outside the windows.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, needsSlowWrite, type DeviceHandle, type Driver } from '../host/index.ts';
import { grantFor, parseManifest } from '../host/package/manifest.ts';
import { ringLayouts } from '../host/package/rings.ts';
import { RingFirewall, carveRealRings, ringReserveBytes } from '../host/sandbox/ring-firewall.ts';
import { E1000Client } from '../host/net/e1000.ts';
import { e1000Capture, e1000Dma } from '../host/sim/e1000.ts';
import { driverPath, fault, root } from './helpers.ts';
import { attack } from './hostile/harness.ts';

const manifestPath = join(root, 'guest-drivers', 'e1000', 'manifest.json');
const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath);
const rings = ringLayouts(manifest, manifestPath);
const WIN = 0x1000_0000n;
const WIN_SIZE = 0x3e000;
const CTRL = 0x0000;
const RST = 1 << 26;
const RCTL = 0x0100;
const TCTL = 0x0400;
const RDBAL = 0x2800;
const RDLEN = 0x2808;
const TDBAL = 0x3800;
const TDBAH = 0x3804;
const TDLEN = 0x3808;
const TDH = 0x3810;
const TDT = 0x3818;
const TCTL_ON = (1 << 1) | (1 << 3) | (0x10 << 4) | (0x40 << 12);

/** The firewall over a register file in which CTRL.RST resets every register (after `busy` reads, RST reads set). */
function setup(busy = 0) {
  const regs = new Map<number, number>();
  let pending = 0;
  const device = {
    read32: (o: number) => {
      if (o !== CTRL || pending <= 0) return regs.get(o) ?? 0;
      pending--;
      return RST;
    },
    write32: (o: number, v: number) => {
      if (o === CTRL && v & RST) {
        regs.clear();
        pending = busy;
      } else regs.set(o, v >>> 0);
    },
  };
  const win = new Uint8Array(WIN_SIZE);
  const real = carveRealRings(rings, WIN + BigInt(WIN_SIZE), new Uint8Array(ringReserveBytes(rings)));
  const fw = new RingFirewall('t', rings, real, [{ bus: WIN, size: WIN_SIZE, bytes: () => win }], device);
  fw.start();
  const view = new DataView(win.buffer);
  const txd = (i: number, addr: bigint, len: number) => {
    view.setBigUint64(0x400 + i * 16, addr, true);
    view.setUint16(0x400 + i * 16 + 8, len, true);
    win[0x400 + i * 16 + 11] = 0x0b;
  };
  const configure = () => {
    fw.write(TDBAL, Number(WIN + 0x400n));
    fw.write(TDBAH, 0);
    fw.write(TDLEN, 64 * 16);
  };
  return { regs, fw, txd, configure, real };
}

describe('descriptor firewall: a reset of the device ring registers', () => {
  it('the e1000 manifest names CTRL.RST as the reset of both rings; its writes take the checked path', () => {
    expect(rings.map((r) => r.resetBy)).toEqual([[{ offset: CTRL, bit: 26 }], [{ offset: CTRL, bit: 26 }]]);
    const policy = { read: true, write: true, rings };
    expect(needsSlowWrite(policy, CTRL, 4)).toBe(true);
    expect(needsSlowWrite(policy, CTRL + 2, 1)).toBe(true);
    expect(needsSlowWrite(policy, 0x0008, 4)).toBe(false);
  });

  it('refuses a resetBy register outside the region or on one of the ring registers, naming it', () => {
    const bad = structuredClone(manifest);
    bad.rings![0].resetBy = [{ register: '0x20000', bit: 26 }];
    expect(() => ringLayouts(bad, 'm.json')).toThrow(/ring "rx": resetBy register 0x20000 is not a 4-byte register/);
    bad.rings![0].resetBy = [{ register: '0x2818', bit: 0 }];
    expect(() => ringLayouts(bad, 'm.json')).toThrow(/resetBy register 0x2818 is one of the ring's own registers/);
  });

  it('after CTRL.RST the host programs its real rings again; the driver sees base 0, head = tail = 0', () => {
    const { regs, fw, txd, configure, real } = setup(3);
    configure();
    txd(0, WIN + 0x30000n, 100);
    fw.write(TDT, 1);
    expect(regs.get(TDT)).toBe(1);
    fw.write(CTRL, RST | (1 << 6));
    for (const [i, base] of [
      [0, RDBAL],
      [1, TDBAL],
    ] as const) {
      expect(regs.get(base)).toBe(Number(real[i].bus)); // not the reset value 0
      expect(regs.get(base + 8)).toBe(8 * 16); // the smallest legal length
      expect([regs.get(base + 0x10), regs.get(base + 0x18)]).toEqual([0, 0]);
    }
    expect([fw.read(TDBAL), fw.read(TDT), fw.read(TDH)]).toEqual([0, 0, 0]);
    expect(fw.state()[1]).toMatchObject({ shadowLow: 0, shadowHigh: 0, count: 8, tail: 0, synced: 0 });
  });

  it('a doorbell after the reset without a new base: the shadow at 0 is outside the grant, the tail stays', () => {
    const { regs, fw, txd, configure } = setup();
    configure();
    txd(0, WIN + 0x30000n, 100);
    fw.write(TDT, 1);
    fw.write(CTRL, RST);
    const f = fault(() => fw.write(TDT, 1));
    expect(f.kind).toBe('dma-descriptor-outside-grant');
    expect(f.message).toMatch(/ring "tx": the shadow ring at 0x0\+128 \(field base\) lies outside/);
    expect(regs.get(TDT)).toBe(0);
  });

  it('set up again after the reset, the ring works: the doorbell copies into the real ring', () => {
    const { regs, fw, txd, configure, real } = setup();
    configure();
    fw.write(CTRL, RST);
    configure();
    txd(0, WIN + 0x30800n, 60);
    fw.write(TDT, 1);
    expect(regs.get(TDT)).toBe(1);
    expect(regs.get(TDBAL)).toBe(Number(real[1].bus));
    expect(new DataView(real[1].bytes.buffer, real[1].bytes.byteOffset).getBigUint64(0, true)).toBe(WIN + 0x30800n);
  });

  it('a write of CTRL without RST passes through and resets nothing', () => {
    const { regs, fw, configure, real } = setup();
    configure();
    fw.write(CTRL, 1 << 6);
    expect(regs.get(CTRL)).toBe(1 << 6);
    expect(fw.read(TDBAL)).toBe(Number(WIN + 0x400n));
    expect(regs.get(TDBAL)).toBe(Number(real[1].bus));
    expect(regs.get(TDLEN)).toBe(64 * 16);
  });

  it('a reset that never finishes (RST stays set): device-bad-reset, naming the register', () => {
    const { fw } = setup(Number.POSITIVE_INFINITY);
    const f = fault(() => fw.write(CTRL, RST));
    expect(f.kind).toBe('device-bad-reset');
    expect(f.message).toMatch(/register 0x0 bits 0x4000000\) did not finish within 150 ms/);
  });
});

// The hostile e1000 driver (test/fixtures/drivers/hostile-e1000.ts) on the simulated e1000, whose
// CTRL.RST resets its registers as the hardware does. OP_REG is a raw register write; OP_SEND one frame.
const OP = { send: 1, reg: 5 } as const;
process.env.WASMDRV_RING_FAST = '1'; // the Wasm doorbell must agree with the state after the reset too
const words = (...v: number[]) => {
  const b = new Uint8Array(v.length * 4);
  for (const [i, x] of v.entries()) new DataView(b.buffer).setUint32(i * 4, x >>> 0, true);
  return b;
};

let host: Host;
let devices = 0;
beforeAll(() => {
  host = new Host();
});
afterAll(async () => {
  await host.close();
});

async function hostile(softReset: 'hardware' | 'qemu' = 'hardware'): Promise<{ drv: Driver; dev: DeviceHandle }> {
  const dev = host.openDevice(`sim:e1000:reset${devices++}`, { sim: { rctlHoldNs: 0, softReset } });
  const { grant, limits } = grantFor(manifest, dev.spec, manifestPath);
  const drv = await host.load(driverPath('test/hostile-e1000'), dev, {
    grant,
    limits,
    name: 'hostile-e1000',
    restart: false,
  });
  expect(drv.state).toBe('running');
  return { drv, dev };
}

async function reg(drv: Driver, offset: number, value: number): Promise<void> {
  const r = await attack(drv, OP.reg, words(offset, value));
  expect(r.fault).toBeUndefined();
}

describe('hostile e1000 drivers that reset the chip mid-traffic', () => {
  it('reset, then RX and TX enabled again on the old state: the doorbell faults (shadow at 0), 0 DMA outside', async () => {
    const { drv, dev } = await hostile();
    expect((await attack(drv, OP.send, words(100, 0x11))).fault).toBeUndefined();
    await reg(drv, CTRL, RST);
    await reg(drv, RCTL, (1 << 1) | (1 << 15));
    await reg(drv, TCTL, TCTL_ON);
    const r = await attack(drv, OP.send, words(100, 0x22));
    expect(r.fault?.kind).toBe('dma-descriptor-outside-grant');
    expect(r.fault?.message).toMatch(/ring "tx": the shadow ring at 0x0\+128/);
    expect(e1000Dma(dev.spec)).toMatchObject({ outside: 0, lastOutside: null });
    expect(e1000Capture(dev.spec)).toHaveLength(1);
  });

  it("self-test: without resetBy in the manifest the unchanged driver's own probe reset sends the device outside (the oracle sees it)", async () => {
    const bare = { ...manifest, rings: manifest.rings?.map(({ resetBy: _r, ...ring }) => ring) } as typeof manifest;
    const dev = host.openDevice(`sim:e1000:reset${devices++}`, { sim: { rctlHoldNs: 0 } });
    const { grant, limits } = grantFor(bare, dev.spec, manifestPath);
    const drv = await host.load(driverPath('e1000'), dev, { grant, limits, name: 'e1000-bare', restart: false });
    await new E1000Client(drv).send([new Uint8Array(60)]).catch(() => 0);
    expect(e1000Dma(dev.spec).outside).toBeGreaterThan(0);
  });

  it.each(['hardware', 'qemu'] as const)(
    'reset (%s semantics), then the rings set up again: frames go out from the re-programmed rings, 0 DMA outside',
    async (softReset) => {
      const { drv, dev } = await hostile(softReset);
      expect((await attack(drv, OP.send, words(100, 0x11))).fault).toBeUndefined();
      await reg(drv, CTRL, RST | (1 << 6)); // SLU: QEMU's e1000 keeps what is written, the link stays up
      // The driver's own setup again: shadow bases and lengths, then RX and TX on.
      await reg(drv, RDBAL, Number(WIN));
      await reg(drv, RDLEN, 64 * 16);
      await reg(drv, TDBAL, Number(WIN + 0x400n));
      await reg(drv, TDLEN, 64 * 16);
      await reg(drv, RCTL, (1 << 1) | (1 << 15));
      await reg(drv, TCTL, TCTL_ON);
      // The driver's tail is 1, the ring's 0: this doorbell hands over descriptors 0 and 1 (both honest).
      const r = await attack(drv, OP.send, words(80, 0x33));
      expect(r.fault).toBeUndefined();
      expect(e1000Capture(dev.spec).map((f) => f.length)).toEqual([100, 100, 80]);
      const dma = e1000Dma(dev.spec);
      expect(dma).toMatchObject({ outside: 0, lastOutside: null });
      await drv.stop();
    },
  );
});

describe('the host reset sequence resets the chip behind the firewall', () => {
  it('a restart whose reset sequence writes CTRL.RST: the rings are programmed afresh before probe, 0 DMA outside', async () => {
    const dev = host.openDevice(`sim:e1000:reset${devices++}`, { sim: { rctlHoldNs: 0 } });
    const { grant, limits } = grantFor(manifest, dev.spec, manifestPath);
    const drv = await host.load(driverPath('test/hostile-e1000'), dev, {
      grant,
      limits,
      name: 'hostile-e1000-seq',
      restart: { backoffMs: 10, maxBackoffMs: 10 },
      resetSequence: [{ region: 0, offset: CTRL, width: 4, value: RST }],
    });
    const restarted = new Promise((resolve) => drv.once('restarted', resolve));
    drv.kill('test: restart through the reset sequence');
    await restarted;
    // The hostile driver's probe does not reset the chip itself: it programs its shadow rings and sends.
    const r = await attack(drv, OP.send, words(100, 0x44));
    expect(r.fault).toBeUndefined();
    expect(e1000Capture(dev.spec).map((f) => f.length)).toEqual([100]);
    expect(e1000Dma(dev.spec)).toMatchObject({ outside: 0, lastOutside: null });
    await drv.stop();
  });
});
