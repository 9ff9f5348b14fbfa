// The DMA engine model on its own (host/sandbox/dma-firewall.ts): register forms, shadows, the
// transfer check, and the manifest fields that declare an engine. The hostile drivers that attack it
// through the whole stack are in test/hostile/dma.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { FaultError } from '../host/faults.ts';
import type { DmaEngineSpec } from '../host/grant.ts';
import { RegionFirewall } from '../host/sandbox/dma-firewall.ts';
import { grantFor, parseManifest } from '../host/package/manifest.ts';
import { openSimDevice } from '../host/devices/sim.ts';
import { eduManifest } from './hostile/harness.ts';

const windows = [{ name: 'dma0', bus: 0x1000_0000n, size: 0x1000 }];
/** A 32-bit engine: address pairs, a 4-byte length, a control register with start and direction bits. */
const pairEngine: DmaEngineSpec = {
  name: 'pairs',
  source: { low: 0x00, high: 0x04 },
  destination: { low: 0x08, high: 0x0c },
  length: { offset: 0x10, width: 4 },
  trigger: { offset: 0x14, width: 4, bit: 31 },
  direction: { offset: 0x14, width: 4, bit: 0, deviceToRam: 0 },
  deviceRanges: [[0n, 0xfffn]],
  readBack: false,
};

function firewall(spec: DmaEngineSpec, regs = new Map<number, bigint>()) {
  const fw = new RegionFirewall('test', 0, [spec], 0x100, windows, (off) => regs.get(off) ?? 0n);
  /** Write through the firewall and, when allowed, into the fake device. */
  const write = (off: number, width: 1 | 2 | 4 | 8, v: bigint) => {
    fw.write(off, width, v);
    regs.set(off, v);
  };
  return { fw, write };
}

const refusal = (f: () => void): string => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(FaultError);
    expect((err as FaultError).kind).toBe('dma-firewall');
    return (err as Error).message;
  }
  throw new Error('not refused');
};

describe('the DMA engine model', () => {
  it('low/high halves merge into one address; an 8-byte write over both halves sets both', () => {
    const { fw, write } = firewall(pairEngine);
    write(0x00, 4, 0x40n); // device side: source (direction bit 0 = 0: device to RAM)
    write(0x04, 4, 0n);
    write(0x08, 8, 0x1000_0000n); // both destination halves at once
    write(0x10, 4, 0x100n);
    expect(fw.shadowOf(0x08)).toBe(0x1000_0000n);
    expect(fw.shadowOf(0x0c)).toBe(0n);
    write(0x14, 4, 1n << 31n); // start: device to RAM, 256 bytes into the window: allowed
    write(0x0c, 4, 1n); // the high half alone moves the destination 4 GiB up
    expect(refusal(() => write(0x14, 4, 1n << 31n))).toContain('RAM side destination 0x8/0xc = 0x110000000');
  });

  it('a write over a register and its neighbour is refused unless it covers both', () => {
    const { write } = firewall(pairEngine);
    expect(refusal(() => write(0x0e, 2, 0xffffn))).toContain(
      'a 2-byte write at 0xe covers only part of the 4-byte register destination high (0xc)',
    );
    write(0x00, 8, 0x40n);
    write(0x08, 8, 0x1000_0000n);
    write(0x10, 8, 0x40n | (1n << 63n)); // length and control in one write, covering both: a legal start
  });

  it("narrowWrites 'merge' takes byte writes into the shadow; the check sees the merged value", () => {
    const spec: DmaEngineSpec = {
      ...pairEngine,
      source: { offset: 0x20, width: 8 },
      destination: { offset: 0x28, width: 8 },
      narrowWrites: 'merge',
    };
    const { fw, write } = firewall(spec);
    write(0x20, 8, 0x10n);
    write(0x28, 8, 0x1000_0000n);
    write(0x2b, 1, 0x20n); // destination byte 3: 0x1000_0000 -> 0x2000_0000
    expect(fw.shadowOf(0x28)).toBe(0x2000_0000n);
    write(0x10, 4, 16n);
    expect(refusal(() => write(0x14, 4, 1n << 31n))).toContain('RAM side destination 0x28 = 0x20000000');
  });

  it("ramSide 'both' checks both addresses against the windows", () => {
    const spec: DmaEngineSpec = { ...pairEngine, direction: undefined, ramSide: 'both', deviceRanges: undefined };
    const { write } = firewall(spec);
    write(0x00, 8, 0x1000_0000n);
    write(0x08, 8, 0x1000_0800n);
    write(0x10, 4, 0x800n);
    write(0x14, 4, 1n << 31n); // both halves of the window: allowed
    write(0x10, 4, 0x801n);
    expect(refusal(() => write(0x14, 4, 1n << 31n))).toContain('RAM side destination');
  });

  it('a zero-length transfer is refused even with addresses inside', () => {
    const { write } = firewall(pairEngine);
    write(0x00, 8, 0x40n);
    write(0x08, 8, 0x1000_0000n);
    write(0x10, 4, 0n);
    expect(refusal(() => write(0x14, 4, 1n << 31n))).toContain(
      'transfer of 0 bytes (length register 0x10): an empty transfer is refused',
    );
  });

  it('read-back refuses when the device holds something else than the driver wrote', () => {
    const regs = new Map<number, bigint>();
    const { write } = firewall({ ...pairEngine, readBack: true }, regs);
    write(0x00, 8, 0x40n);
    write(0x08, 8, 0x1000_0000n);
    write(0x10, 4, 16n);
    regs.set(0x10, 0x2000n); // the device ignored the length write
    expect(refusal(() => write(0x14, 4, 1n << 31n))).toContain(
      'length (0x10) reads back 0x2000 from the device, not the 0x10 the driver wrote',
    );
  });

  it('engines that overlap, stick out of the region, or lack a direction are refused at load', () => {
    const bad = (spec: Partial<DmaEngineSpec>) => () =>
      new RegionFirewall('t', 0, [{ ...pairEngine, ...spec } as DmaEngineSpec], 0x100, windows, () => 0n);
    expect(bad({ length: { offset: 0x0c, width: 4 } })).toThrow(
      'DMA engine pairs: destination high (0xc) overlaps length (0xc)',
    );
    expect(bad({ length: { offset: 0x100, width: 4 } })).toThrow('length (0x100) lies beyond the 256 granted bytes');
    expect(bad({ length: { offset: 0x12, width: 4 } })).toThrow('is not 4-byte aligned');
    expect(bad({ direction: undefined })).toThrow('needs a direction bit or a fixed ramSide');
    expect(bad({ deviceRanges: undefined })).toThrow('needs deviceRanges');
  });
});

describe('dmaEngines in the manifest', () => {
  const dev = openSimDevice('edu');
  afterAll(() => dev.close());
  it('the shipped edu manifest turns into an engine grant with its window count', () => {
    const { grant } = grantFor(parseManifest(JSON.stringify(eduManifest), 'edu'), dev.spec, 'edu');
    expect(grant.dmaWindows).toBe(1);
    expect(grant.regions![0].dmaEngines![0]).toMatchObject({
      name: 'edu-dma',
      source: { offset: 0x80, width: 8 },
      deviceRanges: [[0x40000n, 0x40ffen]],
      addressBits: 28,
    });
  });

  it('the superseded dmaAddress field is refused, naming its replacement', () => {
    const old = {
      ...eduManifest,
      regions: [{ ...eduManifest.regions[0], dmaAddress: [{ offset: '0x80', width: 8 }] }],
    };
    expect(() => parseManifest(JSON.stringify(old), 'old.json')).toThrow(
      'regions.0.dmaAddress is no longer accepted: it checked one address register, not the transfer; declare the DMA engine in regions.0.dmaEngines',
    );
  });

  it('an engine register outside the granted size is refused, naming the field', () => {
    const small = { ...eduManifest, regions: [{ ...eduManifest.regions[0], size: '0x90' }] };
    expect(() => grantFor(parseManifest(JSON.stringify(small), 'small.json'), dev.spec, 'small.json')).toThrow(
      'small.json: regions.0.dmaEngines.0: DMA engine edu-dma: length (0x90) lies beyond the 144 granted bytes of its region',
    );
  });

  it('a malformed engine is refused by the schema', () => {
    const e = eduManifest.regions[0].dmaEngines[0];
    const bad = {
      ...eduManifest,
      regions: [{ ...eduManifest.regions[0], dmaEngines: [{ ...e, source: { offset: '0x80', width: 2 } }] }],
    };
    expect(() => parseManifest(JSON.stringify(bad), 'bad.json')).toThrow('regions.0.dmaEngines.0.source');
  });
});
