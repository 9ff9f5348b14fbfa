// The descriptor firewall on its own (host/sandbox/ring-firewall.ts): the e1000 manifest's rings, a
// register file standing in for the device, plain memory for the driver's window and the real rings.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../host/package/manifest.ts';
import { ringLayouts } from '../host/package/rings.ts';
import { RingFirewall, type RingState, carveRealRings, ringReserveBytes } from '../host/sandbox/ring-firewall.ts';
import { fault, root } from './helpers.ts';

const manifestPath = join(root, 'guest-drivers', 'e1000', 'manifest.json');
const rings = ringLayouts(parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath), manifestPath);
const WIN = 0x1000_0000n;
const WIN_SIZE = 0x3e000;
const TDBAL = 0x3800;
const TDBAH = 0x3804;
const TDLEN = 0x3808;
const TDH = 0x3810;
const TDT = 0x3818;

function setup() {
  const regs = new Map<number, number>();
  const writes: [number, number][] = [];
  const device = {
    read32: (o: number) => regs.get(o) ?? 0,
    write32: (o: number, v: number) => {
      writes.push([o, v >>> 0]);
      regs.set(o, v >>> 0);
    },
  };
  const win = new Uint8Array(WIN_SIZE);
  const reserveBus = WIN + BigInt(WIN_SIZE);
  const reserve = new Uint8Array(ringReserveBytes(rings));
  const real = carveRealRings(rings, reserveBus, reserve);
  const fw = new RingFirewall('t', rings, real, [{ bus: WIN, size: WIN_SIZE, bytes: () => win }], device);
  fw.start();
  const view = new DataView(win.buffer);
  /** A TX descriptor at shadow index i (ring at window offset 0x400). */
  const txd = (i: number, addr: bigint, len: number, cmd = 0x0b) => {
    view.setBigUint64(0x400 + i * 16, addr, true);
    view.setUint16(0x400 + i * 16 + 8, len, true);
    win[0x400 + i * 16 + 11] = cmd;
    win[0x400 + i * 16 + 12] = 0;
  };
  const configure = () => {
    fw.write(TDBAL, Number(WIN + 0x400n));
    fw.write(TDBAH, 0);
    fw.write(TDLEN, 64 * 16);
    fw.write(TDH, 0);
  };
  const realTx = new DataView(real[1].bytes.buffer, real[1].bytes.byteOffset);
  return { regs, writes, fw, win, txd, configure, real, realTx, device };
}

describe('descriptor firewall', () => {
  it('reserves one page-aligned real ring per declared ring, outside the driver window', () => {
    expect(ringReserveBytes(rings)).toBe(2 * 4096);
    const { regs, real } = setup();
    expect(real.map((r) => r.bus)).toEqual([WIN + BigInt(WIN_SIZE), WIN + BigInt(WIN_SIZE) + 4096n]);
    // start(): the device points at the real rings, empty.
    expect(regs.get(0x2800)).toBe(Number(real[0].bus));
    expect(regs.get(TDBAL)).toBe(Number(real[1].bus));
    expect([regs.get(TDH), regs.get(TDT)]).toEqual([0, 0]);
  });

  it('base writes record the shadow and never reach the device; the doorbell copies checked descriptors', () => {
    const { regs, writes, fw, txd, configure, real, realTx } = setup();
    configure();
    expect(regs.get(TDBAL)).toBe(Number(real[1].bus));
    expect(fw.read(TDBAL)).toBe(Number(WIN + 0x400n));
    txd(0, WIN + 0x30000n, 100);
    txd(1, WIN + 0x30800n, 1514);
    const before = writes.length;
    fw.write(TDT, 2);
    expect(regs.get(TDT)).toBe(2);
    expect(writes.slice(before).map(([o]) => o)).toEqual([TDT]);
    expect(realTx.getBigUint64(16, true)).toBe(WIN + 0x30800n);
    expect(realTx.getUint16(24, true)).toBe(1514);
    expect(fw.checked).toBe(2);
  });

  it('copies, never re-reads: a shadow rewritten after the doorbell does not reach the real ring', () => {
    const { fw, txd, configure, realTx } = setup();
    configure();
    txd(0, WIN + 0x30000n, 100);
    fw.write(TDT, 1);
    txd(0, 0xdead_0000n, 100);
    expect(realTx.getBigUint64(0, true)).toBe(WIN + 0x30000n);
  });

  it('copies the write-backs into the shadow when the driver reads the head', () => {
    const { regs, fw, win, txd, configure, real } = setup();
    configure();
    txd(0, WIN + 0x30000n, 100);
    fw.write(TDT, 1);
    real[1].bytes[12] = 0x01; // the device writes DD back and moves its head
    regs.set(TDH, 1);
    expect(win[0x400 + 12]).toBe(0);
    expect(fw.read(TDH)).toBe(1);
    expect(win[0x400 + 12]).toBe(0x01);
  });

  it.each([
    ['an address outside every window', 0x2000_0000n, 64, /buffer 0x20000000\+64 lies outside/],
    ['a length past the window end', WIN + BigInt(WIN_SIZE) - 100n, 101, /buffer 0x1003df9c\+101/],
    ['an address in the host-reserved real rings', WIN + BigInt(WIN_SIZE), 64, /lies outside every granted/],
    ['a 64-bit address with the high half set', (1n << 32n) | (WIN + 0x30000n), 64, /the high half is set/],
  ])('refuses %s, names ring, index, field and address, and leaves the tail alone', (_, addr, len, msg) => {
    const { regs, fw, txd, configure } = setup();
    configure();
    txd(0, WIN + 0x30000n, 64);
    txd(1, addr, len);
    const f = fault(() => fw.write(TDT, 2));
    expect(f.kind).toBe('dma-descriptor-outside-grant');
    expect(f.message).toMatch(/ring "tx": descriptor 1 field "buffer"/);
    expect(f.message).toMatch(msg);
    expect(regs.get(TDT)).toBe(0);
  });

  it('refuses command bits the manifest forbids (DEXT), a tail beyond the ring, a wrap, a head write', () => {
    const { regs, fw, txd, configure } = setup();
    configure();
    txd(0, WIN + 0x30000n, 64, 0x2b);
    expect(fault(() => fw.write(TDT, 1)).kind).toBe('dma-descriptor-bad-command');
    expect(fault(() => fw.write(TDT, 64)).message).toMatch(/tail 64 lies beyond the ring of 64/);
    txd(0, WIN + 0x30000n, 64);
    fw.write(TDT, 1); // one pending: the device has not moved its head
    expect(fault(() => fw.write(TDT, 0)).message).toMatch(/hands over 63 descriptors but only 62 are free/);
    expect(fault(() => fw.write(TDH, 5)).kind).toBe('dma-descriptor-bad-index');
    expect(fault(() => fw.write(TDLEN, 100)).kind).toBe('dma-descriptor-bad-ring');
    expect(fault(() => fw.write(TDLEN, 512 * 16)).kind).toBe('dma-descriptor-bad-ring');
    expect(regs.get(TDT)).toBe(1);
  });

  it('refuses a shadow ring outside the windows at the doorbell', () => {
    const { fw, txd, configure } = setup();
    configure();
    txd(0, WIN + 0x30000n, 64);
    fw.write(TDBAL, Number(WIN) + WIN_SIZE - 512);
    const f = fault(() => fw.write(TDT, 1));
    expect(f.kind).toBe('dma-descriptor-outside-grant');
    expect(f.message).toMatch(/shadow ring at 0x1003de00\+1024 \(field base\)/);
  });

  it('a reload takes running rings over: the next firewall adopts the state, writes nothing, checks on', () => {
    const { regs, writes, fw, win, txd, configure, real, device } = setup();
    configure();
    txd(0, WIN + 0x30000n, 100);
    txd(1, WIN + 0x30800n, 200);
    fw.write(TDT, 2);
    regs.set(TDH, 1); // the device finished one of them
    const saved = fw.state();
    expect(saved[1]).toMatchObject({ name: 'tx', shadowLow: Number(WIN + 0x400n), count: 64, tail: 2 });
    const next = new RingFirewall('t2', rings, real, [{ bus: WIN, size: WIN_SIZE, bytes: () => win }], device);
    const before = writes.length;
    expect(next.adopt(saved)).toBeUndefined();
    expect(writes.length).toBe(before); // the device keeps running untouched
    expect(next.read(TDBAL)).toBe(Number(WIN + 0x400n));
    expect(next.read(TDT)).toBe(2);
    // The adopted ring is checked as before: the next doorbell copies only the new descriptor...
    txd(2, WIN + 0x31000n, 300);
    next.write(TDT, 3);
    expect(new DataView(real[1].bytes.buffer, real[1].bytes.byteOffset).getUint16(2 * 16 + 8, true)).toBe(300);
    expect(next.checked).toBe(1);
    // ...and refuses a bad one.
    txd(3, 0x2000_0000n, 64);
    expect(fault(() => next.write(TDT, 4)).kind).toBe('dma-descriptor-outside-grant');
  });

  it.each([
    ['a count the manifest forbids', (s: RingState[]) => (s[1].count = 100), /saved count 100 is not legal/],
    ['a tail beyond the ring', (s: RingState[]) => (s[1].tail = 64), /saved indices lie beyond the ring/],
    ['another ring', (s: RingState[]) => (s[1].name = 'rx2'), /saved ring "rx2" is not ring "tx"/],
    [
      'a device moved off the real ring',
      (_: RingState[], r: Map<number, number>) => r.set(TDBAL, 0x1234000),
      /no longer on the host's real ring/,
    ],
    ['a device whose tail moved', (_: RingState[], r: Map<number, number>) => r.set(TDT, 9), /the device's tail moved/],
  ])('refuses to adopt %s (the caller then starts the rings afresh)', (_, spoil, why) => {
    const { regs, fw, win, txd, configure, real, device } = setup();
    configure();
    txd(0, WIN + 0x30000n, 100);
    fw.write(TDT, 1);
    const saved = fw.state();
    spoil(saved, regs);
    const next = new RingFirewall('t2', rings, real, [{ bus: WIN, size: WIN_SIZE, bytes: () => win }], device);
    expect(next.adopt(saved)).toMatch(why);
    expect(next.read(TDT)).toBe(0); // nothing taken over
  });
});
