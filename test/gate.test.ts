// The register gate (host/sandbox/gate.ts): for memory-backed regions a driver's register imports are
// a generated Wasm module's exports. It must give the same answers, faults and flight-recorder
// entries as the JavaScript path, in every mode, and never reach outside the grant.
import { describe, expect, it, afterAll } from 'vitest';
import { Host, type Driver, type Fault } from '../host/index.ts';
import { encodeGate, GATE_MODES, type GateMode } from '../host/sandbox/gate.ts';
import { loadNative } from '../host/native.ts';
import { decodeResponse } from '../host/payload.ts';
import { driverPath, u32 } from './helpers.ts';

const native = loadNative();
const host = new Host();
afterAll(() => host.close());
let n = 0;

/** sim:bench: a 4 KiB memfd register file (memory-backed: the gate serves it), 64 KiB of DMA. */
function benchDevice() {
  const dev = host.openDevice(`sim:bench:gate${n++}`, { sim: { dmaBytes: 65536 } });
  const fd = (dev.spec.regions[0].source as { fd: number }).fd;
  const regs = new Uint32Array(native.mapFd(fd, 4096, 0).buffer());
  return { dev, regs };
}

async function faultOf(mode: GateMode, op: number): Promise<{ fault: Fault; drv: Driver }> {
  const { dev } = benchDevice();
  const drv = await host.load(driverPath('test/broken'), dev, {
    name: `broken-${mode}-${op}`,
    registerGate: mode,
    restart: false,
    limits: { deadlineMs: 500 },
  });
  const faulted = new Promise<Fault>((resolve) => drv.once('fault', resolve));
  await drv.request(op, u32(0)).catch(() => {});
  return { fault: await faulted, drv };
}

describe('register gate', () => {
  it('encodes a module Wasm accepts for any number of regions, with both recording modes', () => {
    for (let regions = 0; regions <= 6; regions++) {
      for (const recordReads of [true, false]) {
        const layout = {
          regions: Array.from({ length: regions }, (_, i) => ({
            index: i,
            size: 4096 << i,
            base: 65536 * (i + 1),
            read: i !== 2,
            write: i !== 3,
          })),
          ringEntries: 256,
          recordReads,
        };
        expect(
          WebAssembly.validate(encodeGate(layout, regions + 1)),
          `${regions} regions, recordReads ${recordReads}`,
        ).toBe(true);
      }
    }
  });

  for (const mode of GATE_MODES) {
    it(`${mode}: reads and writes reach the device's memory, counted and recorded`, async () => {
      const { dev, regs } = benchDevice();
      regs.set([11, 22, 33, 44, 55, 66, 77, 0xdeadbeef]);
      const drv = await host.load(driverPath('bench'), dev, { name: `bench-${mode}`, registerGate: mode });
      expect(drv.status().registerGate).toEqual({
        mode,
        regions: mode === 'off' ? [] : [0],
        kind: mode === 'off' ? 'off' : 'inline',
      });
      // op 1: n reads of registers 0..7 in turn, answers (ns, sum); op 2: register 8 + (i & 7) = i
      const r = decodeResponse(await drv.request(1, u32(16)));
      expect(r.u32[2]).toBe(((11 + 22 + 33 + 44 + 55 + 66 + 77 + 0xdeadbeef) * 2) >>> 0);
      await drv.request(2, u32(8));
      expect([...regs.subarray(8, 16)]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      const s = drv.status().stats;
      expect(s.regWrites).toBe(8);
      expect(s.regReads).toBe(mode === 'record-writes' ? 0 : 16);
      const rec = drv.recorder().filter((e) => e.op === 'read' || e.op === 'write');
      const writes = rec.filter((e) => e.op === 'write');
      expect(writes.map((e) => [e.offset, Number(e.value), e.width])).toEqual(
        [0, 1, 2, 3, 4, 5, 6, 7].map((i) => [0x20 + i * 4, i, 4]),
      );
      const reads = rec.filter((e) => e.op === 'read');
      if (mode === 'record-writes') expect(reads).toEqual([]);
      else
        expect(reads.slice(-8).map((e) => [e.offset, Number(e.value)])).toEqual([
          [0, 11],
          [4, 22],
          [8, 33],
          [12, 44],
          [16, 55],
          [20, 66],
          [24, 77],
          [28, 0xdeadbeef],
        ]);
      // the recorder's sequence numbers stay gap-free across gate and JavaScript entries
      const all = drv.recorder();
      all.forEach((e, i) => i > 0 && expect(e.seq).toBe(all[i - 1].seq + 1));
      await drv.stop();
    });

    it(`${mode}: bad accesses end in the same typed faults as on the JavaScript path`, async () => {
      const cases: [number, string, string][] = [
        [1, 'register-out-of-bounds', 'region 0 offset 0x1000 width 4'],
        [2, 'register-out-of-bounds', 'region 0 offset 0xffe width 4'],
        [3, 'register-out-of-bounds', 'region 0 offset 0xfffffffc width 8'],
        [4, 'register-misaligned', 'region 0 offset 0x2 width 4'],
        [5, 'bad-region', 'region 7'],
      ];
      for (const [op, kind, text] of cases) {
        const { fault } = await faultOf(mode, op);
        expect(fault.kind, `op ${op}`).toBe(kind);
        expect(fault.message).toContain(text);
        if (mode !== 'off') expect(fault.stack[0]).toMatch(/^(fimport\$\d+|\S*reg_(read|write)\d+) \(wasm:/); // the gate function, inside the driver
      }
    });
  }

  it('simulated register files stay on the JavaScript path (the model runs on every access)', async () => {
    const drv = await host.load(driverPath('edu'), `sim:edu:gate${n++}`, { name: 'edu-sim' });
    expect(drv.status().registerGate.regions).toEqual([]);
    await drv.stop();
  });

  it('a deadline kill keeps the register writes the gate recorded before the hang', async () => {
    // op 21 writes STATUS (0x20) and FACTORIAL (0x08), then loops forever
    const { fault } = await faultOf('record-all', 21);
    expect(fault.kind).toBe('deadline');
    const writes = fault.recorder.filter((e) => e.op === 'write').map((e) => [e.offset, Number(e.value)]);
    expect(writes.slice(-2)).toEqual([
      [0x20, 0x80],
      [0x08, 10],
    ]);
  });

  it('a smaller granted size holds in the gate even though the mapping is a whole page', async () => {
    const { dev } = benchDevice();
    const drv = await host.load(driverPath('bench'), dev, {
      name: 'bench-small',
      restart: false,
      grant: { regions: { 0: { read: true, write: true, size: 16 } } },
    });
    const faulted = new Promise<Fault>((resolve) => drv.once('fault', resolve));
    expect(decodeResponse(await drv.request(1, u32(4))).u32.length).toBe(3); // registers 0..3: inside
    await drv.request(1, u32(8)).catch(() => {}); // register 4 (0x10): outside
    const f = await faulted;
    expect(f.kind).toBe('register-out-of-bounds');
    expect(f.message).toContain('offset 0x10 width 4: beyond its 16 bytes');
  });

  it('a region with a write policy: reads through the gate, writes checked by the policy', async () => {
    const { dev, regs } = benchDevice();
    const writable = [0, 1, 2, 3].map((i) => ({ offset: 0x20 + i * 4, width: 4 as const, mask: 0xffn }));
    const drv = await host.load(driverPath('bench'), dev, {
      name: 'bench-policy',
      restart: false,
      grant: { regions: { 0: { read: true, write: true, writable } } },
    });
    regs[0] = 5;
    expect(decodeResponse(await drv.request(1, u32(1))).u32[2]).toBe(5);
    await drv.request(2, u32(4)); // registers 0x20..0x2c, values 0..3: allowed
    expect([...regs.subarray(8, 12)]).toEqual([0, 1, 2, 3]);
    const faulted = new Promise<Fault>((resolve) => drv.once('fault', resolve));
    await drv.request(2, u32(5)).catch(() => {}); // the fifth write hits 0x30: not writable
    const f = await faulted;
    expect(f.kind).toBe('access-denied');
    expect(f.message).toContain('offset 0x30 width 4: not a writable register');
    expect(regs[12]).toBe(0);
  });
});
