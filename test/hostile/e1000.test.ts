// Hostile e1000 drivers against the descriptor firewall (issue 20). Each attack is a request op of
// test/fixtures/drivers/hostile-e1000.ts, loaded like any driver through Host and the shipped e1000
// manifest's grant (grantFor: the register policy plus the declared rings, so the firewall is on) on
// a fresh simulated e1000 of its own. Each must end in the typed fault the firewall (or the register
// policy) raises, with a message naming ring, index or field and address; and the simulated device,
// which checks and records every DMA access it makes, is the oracle: 0 accesses outside the windows
// and nothing of the bad descriptor on the wire; for a refused buffer, the device forced from the
// host side to fetch the slot finds it empty (the check runs before the copy). After each attack a
// fresh load of the real e1000 driver on a new device sends and receives a frame. The self-tests run the same attacks with the
// firewall off (the manifest without its rings) and check that the oracle does see them escape.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, type DeviceHandle, type Driver, type FaultKind } from '../../host/index.ts';
import { E1000Client } from '../../host/net/e1000.ts';
import { grantFor, parseManifest } from '../../host/package/manifest.ts';
import { loadNative } from '../../host/native.ts';
import { DeviceSession } from '../../host/sandbox/session.ts';
import { e1000Capture, e1000Dma, e1000Inject } from '../../host/sim/e1000.ts';
import { driverPath, root } from '../helpers.ts';
import { attack, type AttackResult } from './harness.ts';

const manifestPath = join(root, 'guest-drivers', 'e1000', 'manifest.json');
const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath);
const { rings: _rings, ...withoutRings } = manifest;

const HOSTILE = 'test/hostile-e1000';
const OP = { send: 1, txAt: 2, rxAt: 3, rewrite: 4, reg: 5, wrap: 6, read: 7, batch: 8 } as const;
const TCTL = 0x0400;
const RDBAL = 0x2800;
const RDT = 0x2818;
const TDBAL = 0x3800;
const TDBAH = 0x3804;
const TDLEN = 0x3808;
const TDH = 0x3810;
const TDT = 0x3818;
const TCTL_ON = (1 << 1) | (1 << 3) | (0x10 << 4) | (0x40 << 12);
// The simulated e1000's DMA window (bus address, size) and the part of it the driver is granted:
// the host keeps the last two pages for the real rings.
const WIN = 0x1000_0000n;
const WIN_SIZE = 0x40000n;
const DRIVER_END = WIN + WIN_SIZE - 0x2000n;
const OUTSIDE = 0x5000_0000n;
const TX_BUF = (i: number) => WIN + 0x1000n + BigInt(i * 1536);
// These cases test the Wasm doorbell (on by default, inline-gate.ts ringFastPathOn): the process makes sure
// it is on, whatever the caller's environment, before any driver thread starts (threads copy the environment).
process.env.WASMDRV_RING_FAST = '1';
const MAC = [0x02, 0x00, 0x00, 0xaa, 0xbb, 0x01];
const PEER = [0x02, 0x00, 0x00, 0xaa, 0xbb, 0x99];

const hex = (v: bigint) => `0x${v.toString(16)}`;
const words = (...v: (number | bigint)[]) => {
  const b = new Uint8Array(v.length * 4);
  const dv = new DataView(b.buffer);
  for (const [i, x] of v.entries()) dv.setUint32(i * 4, Number(BigInt.asUintN(32, BigInt(x))), true);
  return b;
};
const addr = (a: bigint) => [a & 0xffffffffn, a >> 32n] as const;
const u32At = (b: Uint8Array | undefined, i = 0) => new DataView(b!.buffer, b!.byteOffset).getUint32(i * 4, true);
/** The bytes OP_SEND, OP_REWRITE and OP_WRAP put in an honest frame: seed, seed + 1, ... */
const pattern = (len: number, seed: number) => Uint8Array.from({ length: len }, (_, k) => (seed + k) & 0xff);
const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

function frame(dst: number[], seq: number, size = 128): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set(PEER, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  new DataView(f.buffer).setUint32(14, seq, true);
  for (let i = 18; i < size; i++) f[i] = (seq + i) & 0xff;
  return f;
}

let host: Host;
let devices = 0;

beforeAll(() => {
  host = new Host();
});
afterAll(async () => {
  await host.close();
});

/** A fresh simulated e1000 (no RCTL hold: a frame on the wire lands the moment a buffer is given). */
function device(prefix: string): DeviceHandle {
  return host.openDevice(`sim:e1000:${prefix}${devices++}`, { sim: { mac: '02:00:00:aa:bb:01', rctlHoldNs: 0 } });
}

/** The hostile driver on a device of its own, under the e1000 manifest's grant (firewall on unless `firewall` is false). */
async function hostile(firewall = true): Promise<{ drv: Driver; dev: DeviceHandle }> {
  const dev = device('hostile');
  const { grant, limits } = grantFor(firewall ? manifest : withoutRings, dev.spec, manifestPath);
  const drv = await host.load(driverPath(HOSTILE), dev, { grant, limits, name: 'hostile-e1000', restart: false });
  expect(drv.state).toBe('running');
  return { drv, dev };
}

/** A device register as the device holds it (not as the firewall shows it to the driver). */
function deviceReg(dev: DeviceHandle, offset: number): number {
  const s = new DeviceSession(dev.spec, {});
  try {
    return Number(s.readSim(0, offset, 4)) >>> 0;
  } finally {
    s.close();
  }
}

function deviceWrite(dev: DeviceHandle, offset: number, value: number): void {
  const s = new DeviceSession(dev.spec, {});
  try {
    s.writeSim(0, offset, 4, value);
  } finally {
    s.close();
  }
}

/** Expect `r` to be a fault of `kind` whose message matches every pattern; the driver is down. */
function contained(r: AttackResult, drv: Driver, kind: FaultKind, ...says: RegExp[]): void {
  expect(r.fault, `no fault (response ${r.response && hexOf(r.response)})`).toBeDefined();
  expect(r.fault!.kind).toBe(kind);
  for (const s of says) expect(r.fault!.message).toMatch(s);
  expect(r.error).toBeDefined();
  expect(drv.state).not.toBe('running');
}

/** The device's DMA oracle shows nothing outside the windows and the wire carries nothing. */
function untouched(dev: DeviceHandle): void {
  const dma = e1000Dma(dev.spec);
  expect(dma.outside).toBe(0);
  expect(dma.lastOutside).toBeNull();
  expect(e1000Capture(dev.spec)).toEqual([]);
}

/**
 * The device never saw the refused descriptor: forced from the host side to fetch slot 0 of its
 * (real) ring, it finds the empty slot the firewall left there, not the hostile buffer, and still
 * reaches nothing outside the windows. (TX: length 0, no frame; RX: a null buffer, skipped.)
 */
function neverSaw(dev: DeviceHandle, tail: number): void {
  deviceWrite(dev, tail, 1);
  untouched(dev);
  expect(e1000Dma(dev.spec).accesses).toBeGreaterThan(0);
}

/** The host is fine: the real e1000 driver on a new device sends and receives a frame. */
async function hostIsFine(): Promise<void> {
  const dev = device('healthy');
  const { grant, limits } = grantFor(manifest, dev.spec, manifestPath);
  const drv = await host.load(driverPath('e1000'), dev, { grant, limits, name: 'e1000' });
  try {
    const nic = new E1000Client(drv);
    const out = frame(PEER, 1, 100);
    expect(await nic.send([out])).toBe(1);
    expect(e1000Capture(dev.spec).map(hexOf)).toEqual([hexOf(out)]);
    const inbound = frame(MAC, 2, 200);
    expect(e1000Inject(dev.spec, [inbound])).toBe(1);
    let got: Uint8Array[] = [];
    for (let i = 0; i < 100 && got.length === 0; i++) got = await nic.recv(8, 20_000);
    expect(got.map(hexOf)).toEqual([hexOf(inbound)]);
    expect(e1000Dma(dev.spec).outside).toBe(0);
  } finally {
    await drv.stop();
  }
}

describe('hostile e1000 drivers under the descriptor firewall', () => {
  it('self-check: the hostile driver sends an honest frame, inside the window', async () => {
    const { drv, dev } = await hostile();
    const r = await attack(drv, OP.send, words(100, 0x11));
    expect(r.fault).toBeUndefined();
    expect(u32At(r.response)).toBe(1);
    expect(e1000Capture(dev.spec).map(hexOf)).toEqual([hexOf(pattern(100, 0x11))]);
    expect(e1000Dma(dev.spec)).toMatchObject({ outside: 0 });
    expect(e1000Dma(dev.spec).accesses).toBeGreaterThan(0);
    await drv.stop();
  });

  it('(1) a TX buffer address outside every window: dma-descriptor-outside-grant, nothing sent', async () => {
    const { drv, dev } = await hostile();
    const r = await attack(drv, OP.txAt, words(...addr(OUTSIDE), 64));
    contained(
      r,
      drv,
      'dma-descriptor-outside-grant',
      /ring "tx": descriptor 0 field "buffer": buffer 0x50000000\+64 lies outside every granted DMA window/,
    );
    untouched(dev);
    expect(deviceReg(dev, TDT)).toBe(0);
    neverSaw(dev, TDT);
    await hostIsFine();
  });

  it('(2) an RX buffer address outside every window: dma-descriptor-outside-grant, the frame waits on the wire', async () => {
    const { drv, dev } = await hostile();
    // A frame is already waiting: had the tail reached the device, it would have written it at once.
    expect(e1000Inject(dev.spec, [frame(MAC, 7)])).toBe(1);
    const r = await attack(drv, OP.rxAt, words(...addr(OUTSIDE)));
    contained(
      r,
      drv,
      'dma-descriptor-outside-grant',
      /ring "rx": descriptor 0 field "buffer": buffer 0x50000000\+2048 lies outside every granted DMA window/,
    );
    untouched(dev);
    expect(e1000Dma(dev.spec).waiting).toBe(1);
    expect(deviceReg(dev, RDT)).toBe(0);
    neverSaw(dev, RDT);
    await hostIsFine();
  });

  it('(3) a length that runs past the window end (TX: its length field; RX: the declared 2048-byte buffer)', async () => {
    const tx = await hostile();
    const at = DRIVER_END - 100n;
    contained(
      await attack(tx.drv, OP.txAt, words(...addr(at), 101)),
      tx.drv,
      'dma-descriptor-outside-grant',
      new RegExp(`ring "tx": descriptor 0 field "buffer": buffer ${hex(at)}\\+101 lies outside`),
    );
    untouched(tx.dev);
    neverSaw(tx.dev, TDT);
    const rx = await hostile();
    e1000Inject(rx.dev.spec, [frame(MAC, 8)]);
    const rxAt = DRIVER_END - 1024n;
    contained(
      await attack(rx.drv, OP.rxAt, words(...addr(rxAt))),
      rx.drv,
      'dma-descriptor-outside-grant',
      new RegExp(`ring "rx": descriptor 0 field "buffer": buffer ${hex(rxAt)}\\+2048 lies outside`),
    );
    untouched(rx.dev);
    expect(e1000Dma(rx.dev.spec).waiting).toBe(1);
    neverSaw(rx.dev, RDT);
    await hostIsFine();
  });

  it('(4) a 64-bit buffer address whose high half is set (the low half a good buffer): refused', async () => {
    const { drv, dev } = await hostile();
    const at = (1n << 32n) | TX_BUF(0);
    contained(
      await attack(drv, OP.txAt, words(...addr(at), 64)),
      drv,
      'dma-descriptor-outside-grant',
      new RegExp(`ring "tx": descriptor 0 field "buffer": buffer ${hex(at)}\\+64 \\(the high half is set\\)`),
    );
    untouched(dev);
    neverSaw(dev, TDT);
    await hostIsFine();
  });

  it('a TX command the manifest refuses (DEXT: a context/data descriptor): dma-descriptor-bad-command', async () => {
    const { drv, dev } = await hostile();
    contained(
      await attack(drv, OP.txAt, words(...addr(TX_BUF(0)), 64, 0x29)),
      drv,
      'dma-descriptor-bad-command',
      /ring "tx": descriptor 0 field "cmd": value 0x29 sets bits 0x20 the manifest refuses/,
    );
    untouched(dev);
    neverSaw(dev, TDT);
    await hostIsFine();
  });

  it('(5) descriptors rewritten after the doorbell: the device sends the checked copies, from the original buffers', async () => {
    const { drv, dev } = await hostile();
    const n = 90;
    const r = await attack(drv, OP.rewrite, words(n, ...addr(OUTSIDE)));
    // Not a fault: the driver only changed its own memory. What it changed never reached the device.
    expect(r.fault).toBeUndefined();
    expect(u32At(r.response)).toBe(2);
    const wire = e1000Capture(dev.spec);
    expect(wire.map(hexOf)).toEqual([hexOf(pattern(n, 0xa0)), hexOf(pattern(n, 0xb0))]);
    const dma = e1000Dma(dev.spec);
    expect(dma.outside).toBe(0);
    expect(dma.lastOutside).toBeNull();
    expect(drv.state).toBe('running');
    await drv.stop();
    await hostIsFine();
  });

  describe('(6) the ring base and length registers', () => {
    it('a base write is recorded as the shadow ring, never reaches the device; a doorbell with it outside the grant faults', async () => {
      const { drv, dev } = await hostile();
      const realTx = deviceReg(dev, TDBAL);
      expect(BigInt(realTx) >= DRIVER_END && BigInt(realTx) < WIN + WIN_SIZE).toBe(true);
      // The write itself is no fault; the driver reads back what it wrote; the device keeps the real ring.
      const w = await attack(drv, OP.reg, words(TDBAL, OUTSIDE));
      expect(w.fault).toBeUndefined();
      expect(u32At(w.response)).toBe(Number(OUTSIDE));
      expect(deviceReg(dev, TDBAL)).toBe(realTx);
      const r = await attack(drv, OP.send, words(60, 0x22));
      contained(
        r,
        drv,
        'dma-descriptor-outside-grant',
        /ring "tx": the shadow ring at 0x50000000\+1024 \(field base\) lies outside every granted DMA window/,
      );
      untouched(dev);
      expect(deviceReg(dev, TDBAL)).toBe(realTx);
      await hostIsFine();
    });

    it('a shadow ring aimed at the host-owned real ring is outside the grant too', async () => {
      const { drv, dev } = await hostile();
      const realRx = deviceReg(dev, RDBAL);
      expect((await attack(drv, OP.reg, words(TDBAL, realRx))).fault).toBeUndefined();
      contained(
        await attack(drv, OP.send, words(60, 0x33)),
        drv,
        'dma-descriptor-outside-grant',
        new RegExp(`ring "tx": the shadow ring at ${hex(BigInt(realRx))}\\+1024 \\(field base\\) lies outside`),
      );
      untouched(dev);
      await hostIsFine();
    });

    it("a base's high half: the register policy refuses it (access-denied, mask 0)", async () => {
      const { drv, dev } = await hostile();
      contained(
        await attack(drv, OP.reg, words(TDBAH, 1)),
        drv,
        'access-denied',
        /0x3804/,
        /value 0x1 sets bits outside mask 0x0/,
      );
      untouched(dev);
      expect(deviceReg(dev, TDBAH)).toBe(0);
      await hostIsFine();
    });

    it.each([
      ['more descriptors than the manifest allows', 512 * 16, /length 8192 \(bytes\) is not a count of descriptors/],
      ['zero descriptors', 0, /length 0 \(bytes\)/],
    ])('a length of %s: dma-descriptor-bad-ring, the device keeps its ring', async (_, len, says) => {
      const { drv, dev } = await hostile();
      contained(await attack(drv, OP.reg, words(TDLEN, len)), drv, 'dma-descriptor-bad-ring', /ring "tx"/, says);
      untouched(dev);
      expect(deviceReg(dev, TDLEN)).toBe(64 * 16);
      await hostIsFine();
    });

    it('a length outside the register mask: the register policy refuses it (access-denied)', async () => {
      const { drv, dev } = await hostile();
      contained(
        await attack(drv, OP.reg, words(TDLEN, 100)),
        drv,
        'access-denied',
        /0x3808/,
        /sets bits outside mask 0xfff80/,
      );
      untouched(dev);
      await hostIsFine();
    });

    it('a head write that moves the head: dma-descriptor-bad-index', async () => {
      const { drv, dev } = await hostile();
      contained(
        await attack(drv, OP.reg, words(TDH, 5)),
        drv,
        'dma-descriptor-bad-index',
        /ring "tx": head write 5: the host owns the head/,
      );
      untouched(dev);
      expect(deviceReg(dev, TDH)).toBe(0);
      await hostIsFine();
    });
  });

  describe('reads of the ring registers reach the firewall, or are refused', () => {
    it.each([
      ['2 bytes of TDBAL', TDBAL + 2, 2],
      ['1 byte of TDH', TDH, 1],
      ['8 bytes over TDBAL and TDBAH', TDBAL, 8],
    ])('%s: access-denied (it would read the real ring past the firewall)', async (_, offset, width) => {
      const { drv, dev } = await hostile();
      contained(
        await attack(drv, OP.read, words(offset, width)),
        drv,
        'access-denied',
        /ring registers take 4-byte reads/,
      );
      untouched(dev);
    });

    it('self-test: the same narrow and wide reads of other registers are served (the refusal is the ring registers only)', async () => {
      const { drv } = await hostile();
      const status = await attack(drv, OP.read, words(0x0008, 2)); // STATUS, low half
      expect(status.fault).toBeUndefined();
      expect(u32At(status.response) & 2).toBe(2); // LU: the link is up
      const wide = await attack(drv, OP.read, words(0x0000, 8)); // CTRL and the word after it
      expect(wide.fault).toBeUndefined();
      expect(drv.state).toBe('running');
    });
  });

  it('(7) a tail beyond the ring: dma-descriptor-bad-index', async () => {
    const { drv, dev } = await hostile();
    contained(
      await attack(drv, OP.reg, words(TDT, 64)),
      drv,
      'dma-descriptor-bad-index',
      /ring "tx": tail 64 lies beyond the ring of 64 descriptors \(field tail, register 0x3818\)/,
    );
    untouched(dev);
    expect(deviceReg(dev, TDT)).toBe(0);
    await hostIsFine();
  });

  it('(8) a tail that wraps onto descriptors the device owns: dma-descriptor-bad-index; the real ring holds only the checked 63', async () => {
    const { drv, dev } = await hostile();
    contained(
      await attack(drv, OP.wrap, words(...addr(OUTSIDE))),
      drv,
      'dma-descriptor-bad-index',
      /ring "tx": tail 1 hands over 2 descriptors but only 0 are free \(head 0, tail 63\): it would wrap onto descriptors the device owns/,
    );
    untouched(dev);
    expect(deviceReg(dev, TDT)).toBe(63);
    // What the device was given: turn its transmitter on and it sends the 63 honest frames, nothing else.
    deviceWrite(dev, TCTL, TCTL_ON);
    const wire = e1000Capture(dev.spec);
    expect(wire.map(hexOf)).toEqual(Array.from({ length: 63 }, (_, i) => hexOf(pattern(60, i))));
    expect(e1000Dma(dev.spec).outside).toBe(0);
    await hostIsFine();
  });
});

describe('a batch checked whole, and a device that lies about its head', () => {
  it.each([
    ['outside every window', OUTSIDE, 64, /buffer 0x50000000\+64 lies outside every granted DMA window/],
    [
      'running past the window end',
      DRIVER_END - 32n,
      64,
      new RegExp(`buffer ${hex(DRIVER_END - 32n)}\\+64 lies outside`),
    ],
  ])(
    '32 descriptors in one doorbell, only the LAST %s: refused whole, the device tail stays before all of them',
    async (_, at, len, says) => {
      const { drv, dev } = await hostile();
      contained(
        await attack(drv, OP.batch, words(32, ...addr(at), len)),
        drv,
        'dma-descriptor-outside-grant',
        /ring "tx": descriptor 31 field "buffer"/,
        says,
      );
      untouched(dev);
      expect(deviceReg(dev, TDT)).toBe(0);
      await hostIsFine();
    },
  );

  it('self-test: the same batch with an honest last descriptor is served (32 frames on the wire)', async () => {
    const { drv, dev } = await hostile();
    const r = await attack(drv, OP.batch, words(32, ...addr(TX_BUF(31)), 60));
    expect(r.fault).toBeUndefined();
    expect(u32At(r.response)).toBe(32);
    expect(deviceReg(dev, TDT)).toBe(32);
    expect(e1000Capture(dev.spec)).toHaveLength(32);
    await drv.stop();
  });

  it('a head register reading beyond the ring: device-bad-head, naming ring, register and value (not the driver)', async () => {
    const { drv, dev } = await hostile();
    expect((await attack(drv, OP.send, words(60, 1))).fault).toBeUndefined();
    deviceWrite(dev, TDH, 200); // the device lies
    contained(
      await attack(drv, OP.read, words(TDH, 4)),
      drv,
      'device-bad-head',
      /ring "tx": the device's head \(register 0x3810\) reads 0xc8: outside the ring of 64 descriptors/,
    );
    expect(e1000Dma(dev.spec).outside).toBe(0);
  });

  it('a head that moves backwards past the last one seen, at a doorbell: device-bad-head, the tail not written', async () => {
    const { drv, dev } = await hostile();
    for (let k = 0; k < 3; k++) expect((await attack(drv, OP.send, words(60, k))).fault).toBeUndefined();
    expect(deviceReg(dev, TDH)).toBe(3); // sent: the device caught up
    deviceWrite(dev, TDH, 1);
    contained(
      await attack(drv, OP.send, words(60, 9)),
      drv,
      'device-bad-head',
      /ring "tx": the device's head \(register 0x3810\) reads 0x1: not between the head last seen \(3\) and the tail given to it \(3\)/,
    );
    expect(deviceReg(dev, TDT)).toBe(3);
    expect(e1000Dma(dev.spec).outside).toBe(0);
  });
});

describe('self-test: with the firewall off the same attacks escape, and the oracle sees them', () => {
  it('a TX buffer outside every window: the device reads it', async () => {
    const { drv, dev } = await hostile(false);
    const r = await attack(drv, OP.txAt, words(...addr(OUTSIDE), 64));
    expect(r.fault).toBeUndefined();
    expect(e1000Dma(dev.spec)).toMatchObject({ outside: 1, lastOutside: OUTSIDE });
    await drv.stop();
  });

  it('an RX buffer outside every window: the device writes the waiting frame there', async () => {
    const { drv, dev } = await hostile(false);
    e1000Inject(dev.spec, [frame(MAC, 9)]);
    const r = await attack(drv, OP.rxAt, words(...addr(OUTSIDE)));
    expect(r.fault).toBeUndefined();
    expect(e1000Dma(dev.spec)).toMatchObject({ outside: 1, lastOutside: OUTSIDE, waiting: 0 });
    await drv.stop();
  });

  it('a descriptor rewritten after the doorbell: without the copy, the device sends the rewritten buffer', async () => {
    const { drv, dev } = await hostile(false);
    const r = await attack(drv, OP.rewrite, words(90, ...addr(OUTSIDE)));
    expect(r.fault).toBeUndefined();
    const wire = e1000Capture(dev.spec);
    expect(hexOf(wire[0])).toBe(hexOf(new Uint8Array(180).fill(0xee)));
    expect(e1000Dma(dev.spec)).toMatchObject({ outside: 1, lastOutside: OUTSIDE });
    await drv.stop();
  });
});

describe('on a memory-backed BAR (as under UIO), with the register gate compiled into the driver', () => {
  // The e1000's BAR0 and DMA memory as memfds, the way a UIO map is a mapping: no device model behind
  // them, so the test plays the device by reading and writing the same pages. Register reads the grant
  // allows are served inline here, which is why the ring registers' reads must leave that path.
  const native = loadNative();
  const BAR0 = 0x20000;
  /** `confinement: 'iommu'` turns the descriptor firewall off (as under VFIO): the self-test's control. */
  async function onMemfds(confinement?: 'iommu') {
    const barFd = native.memfdCreate('hostile-e1000-bar0', BAR0);
    const dmaFd = native.memfdCreate('hostile-e1000-dma', Number(WIN_SIZE));
    const irqFd = native.eventfdCreate(0);
    const bar = native.mapFd(barFd, BAR0, 0);
    const spec = {
      id: 'memfd:e1000',
      name: 'e1000 registers on a memfd',
      regions: [{ name: 'BAR0', size: BAR0, source: { kind: 'fd' as const, fd: barFd, offset: 0 } }],
      ports: [],
      dma: [{ name: 'dma', size: Number(WIN_SIZE), bus: WIN, source: { kind: 'fd' as const, fd: dmaFd, offset: 0 } }],
      irq: { kind: 'eventfd' as const, eventfd: irqFd },
      ...(confinement ? { dmaConfinement: confinement } : {}),
    };
    const { grant, limits } = grantFor(manifest, spec, manifestPath);
    const drv = await host.load(
      driverPath(HOSTILE),
      { spec, close: () => {} },
      { grant, limits, name: 'hostile-e1000-memfd', restart: false },
    );
    const close = async () => {
      await drv.stop();
      bar.close();
      for (const fd of [barFd, dmaFd, irqFd]) native.close(fd);
    };
    return { drv, regs: new Uint32Array(bar.buffer()), close };
  }

  it('a 4-byte read of a ring register gets what the firewall keeps, never the real ring the device holds', async () => {
    const { drv, regs, close } = await onMemfds();
    try {
      expect(drv.status().registerGate.kind).toBe('inline');
      // The detector's two sources differ: the device holds the host's real TX ring (the window's last
      // page), the driver wrote its shadow (window offset 0x400). A gate that served the read from the
      // device would return the first.
      expect(regs[TDBAL >> 2]).toBe(Number(WIN + WIN_SIZE - 0x1000n));
      const r = await attack(drv, OP.read, words(TDBAL, 4));
      expect(r.fault).toBeUndefined();
      expect(u32At(r.response)).toBe(Number(WIN + 0x400n));
      expect(u32At(r.response)).not.toBe(regs[TDBAL >> 2]);
      // A non-ring register beside them is served inline from the device as always.
      regs[0x0008 >> 2] = 0x80080783;
      expect(u32At((await attack(drv, OP.read, words(0x0008, 4))).response)).toBe(0x80080783);
    } finally {
      await close();
    }
  });

  it('an honest frame: the doorbell is served by the Wasm fast path (counted), the device gets the checked copy', async () => {
    const { drv, regs, close } = await onMemfds();
    try {
      const before = drv.stats().ringFastDoorbells;
      const r = await attack(drv, OP.send, words(64));
      expect(r.fault).toBeUndefined();
      expect(drv.stats().ringFastDoorbells).toBeGreaterThan(before);
      expect(regs[TDT >> 2]).toBe(1);
    } finally {
      await close();
    }
  });

  it('a hostile TX buffer through the fast path: the same typed fault and message as the JavaScript path; the tail stays', async () => {
    const { drv, regs, close } = await onMemfds();
    try {
      const r = await attack(drv, OP.txAt, words(...addr(OUTSIDE), 64));
      contained(
        r,
        drv,
        'dma-descriptor-outside-grant',
        /ring "tx": descriptor 0 field "buffer": buffer 0x50000000\+64 lies outside every granted DMA window/,
      );
      expect(regs[TDT >> 2]).toBe(0);
    } finally {
      await close();
    }
  });

  it('self-test: with the firewall off (IOMMU-confined spec) the same TX buffer reaches the device, so the tail check above can fire', async () => {
    const { drv, regs, close } = await onMemfds('iommu');
    try {
      const r = await attack(drv, OP.txAt, words(...addr(OUTSIDE), 64));
      expect(r.fault).toBeUndefined();
      expect(regs[TDT >> 2]).toBe(1);
    } finally {
      await close();
    }
  });

  it('a batch of 32 through the fast path whose LAST descriptor is outside: refused whole, the tail stays 0', async () => {
    const { drv, regs, close } = await onMemfds();
    try {
      const before = drv.stats().ringFastDoorbells;
      contained(
        await attack(drv, OP.batch, words(32, ...addr(OUTSIDE), 64)),
        drv,
        'dma-descriptor-outside-grant',
        /ring "tx": descriptor 31 field "buffer": buffer 0x50000000\+64 lies outside every granted DMA window/,
      );
      expect(regs[TDT >> 2]).toBe(0);
      expect(drv.stats().ringFastDoorbells).toBe(before);
    } finally {
      await close();
    }
  });

  it('self-test: the same batch with an honest last descriptor is served by the fast path (TDT 32)', async () => {
    const { drv, regs, close } = await onMemfds();
    try {
      const before = drv.stats().ringFastDoorbells;
      const r = await attack(drv, OP.batch, words(32, ...addr(TX_BUF(31)), 60));
      expect(r.fault).toBeUndefined();
      expect(regs[TDT >> 2]).toBe(32);
      expect(drv.stats().ringFastDoorbells).toBe(before + 1);
    } finally {
      await close();
    }
  });

  // The Wasm check walks two descriptors per loop turn, an odd count's first alone (ring-fast.ts): the
  // bad descriptor at odd and even positions, last, first, in batches of odd and even size.
  it.each([
    [1, 0],
    [2, 0],
    [2, 1],
    [3, 0],
    [3, 1],
    [3, 2],
    [31, 29],
    [31, 30],
    [32, 30],
    [32, 31],
    [33, 0],
    [33, 31],
    [33, 32],
  ])(
    'a batch of %i through the fast path, descriptor %i outside: refused whole, the tail stays 0',
    async (count, at) => {
      const { drv, regs, close } = await onMemfds();
      try {
        const before = drv.stats().ringFastDoorbells;
        contained(
          await attack(drv, OP.batch, words(count, ...addr(OUTSIDE), 64, at)),
          drv,
          'dma-descriptor-outside-grant',
          new RegExp(`ring "tx": descriptor ${at} field "buffer": buffer 0x50000000\\+64 lies outside`),
        );
        expect(regs[TDT >> 2]).toBe(0);
        expect(drv.stats().ringFastDoorbells).toBe(before);
      } finally {
        await close();
      }
    },
  );

  it.each([1, 2, 3, 31, 32, 33])('self-test: an honest batch of %i is served by the fast path', async (count) => {
    const { drv, regs, close } = await onMemfds();
    try {
      const before = drv.stats().ringFastDoorbells;
      const r = await attack(drv, OP.batch, words(count, 0, 0, 0, 99));
      expect(r.fault).toBeUndefined();
      expect(regs[TDT >> 2]).toBe(count);
      expect(drv.stats().ringFastDoorbells).toBe(before + 1);
    } finally {
      await close();
    }
  });

  // 60 handed over and done, then 5 from slot 60: slots 60..63 (one alone, then a pair) and 0 (alone)
  it.each([
    [3, 63, 'the last before the ring end'],
    [4, 0, 'the first after the wrap'],
    [-1, -1, 'none (self-test)'],
  ])('a batch of 5 wrapping the ring end through the fast path, bad at position %i (slot %i, %s)', async (at, slot) => {
    const { drv, regs, close } = await onMemfds();
    try {
      expect((await attack(drv, OP.batch, words(60, 0, 0, 0, 99))).fault).toBeUndefined();
      expect(regs[TDT >> 2]).toBe(60);
      regs[TDH >> 2] = 60; // the device has sent all 60
      const before = drv.stats().ringFastDoorbells;
      const r = await attack(drv, OP.batch, words(5, ...addr(OUTSIDE), 64, at < 0 ? 99 : at));
      if (at < 0) {
        expect(r.fault).toBeUndefined();
        expect(regs[TDT >> 2]).toBe(1);
        expect(drv.stats().ringFastDoorbells).toBe(before + 1);
        return;
      }
      contained(
        r,
        drv,
        'dma-descriptor-outside-grant',
        new RegExp(`ring "tx": descriptor ${slot} field "buffer": buffer 0x50000000\\+64 lies outside`),
      );
      expect(regs[TDT >> 2]).toBe(60);
      expect(drv.stats().ringFastDoorbells).toBe(before);
    } finally {
      await close();
    }
  });

  it('a head register beyond the ring, read through the inline gate: device-bad-head', async () => {
    const { drv, regs, close } = await onMemfds();
    try {
      regs[TDH >> 2] = 200;
      contained(
        await attack(drv, OP.read, words(TDH, 4)),
        drv,
        'device-bad-head',
        /ring "tx": the device's head \(register 0x3810\) reads 0xc8: outside the ring/,
      );
    } finally {
      await close();
    }
  });

  it('a head past the tail, seen by the sync before the next request: device-bad-head, the tail not moved', async () => {
    const { drv, regs, close } = await onMemfds();
    try {
      expect((await attack(drv, OP.send, words(60, 1))).fault).toBeUndefined();
      expect(regs[TDT >> 2]).toBe(1);
      regs[TDH >> 2] = 5; // beyond the tail: the device claims descriptors it was never given
      contained(
        await attack(drv, OP.send, words(60, 2)),
        drv,
        'device-bad-head',
        /ring "tx": the device's head \(register 0x3810\) reads 0x5: not between the head last seen \(0\) and the tail given to it \(1\)/,
      );
      expect(regs[TDT >> 2]).toBe(1);
    } finally {
      await close();
    }
  });

  it('a 2-byte read of a ring register on the inline path is refused too', async () => {
    const { drv, close } = await onMemfds();
    try {
      contained(
        await attack(drv, OP.read, words(TDBAL + 2, 2)),
        drv,
        'access-denied',
        /ring registers take 4-byte reads/,
      );
    } finally {
      await close();
    }
  });
});
