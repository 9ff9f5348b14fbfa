// Hostile drivers against the DMA register firewall (issue 15, class 1). Each attack is a register
// script run by test/fixtures/drivers/hostile-dma.ts on its own simulated edu device, once as a signed
// package under a manifest grant and once under an explicit Grant, while a bystander edu driver on
// another device answers factorials. Each must end in the fault `dma-firewall` (or `access-denied`
// under the shipped manifest's write policy) with zero bytes outside the DMA window in the device's
// DMA record. The self-tests first plant each kind of outside access with an all-access grant and
// check that the record counts exactly those bytes, so the suite cannot pass by seeing nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, loadPackage, needsSlowWrite, type DmaEngineSpec, type Driver, type Grant } from '../../host/index.ts';
import { driverPath } from '../helpers.ts';
import { Bystander, attack, dmaRecord, eduManifest, outsideBytes, trustStore } from './harness.ts';

const HOSTILE = 'test/hostile-dma';
const W = 0x0100_0000n; // the simulated edu's DMA window: bus address and size
const S = 0x1_0000n;
const DEV = 0x40000n; // edu's device buffer, 4 KiB
const SRC = 0x80,
  DST = 0x88,
  CNT = 0x90,
  CMD = 0x98;
const START = 1n,
  TO_RAM = 2n;
const TWO64 = 1n << 64n;

type Step = [kind: number, offset: number, value: bigint];
const w = (width: 1 | 2 | 4 | 8, offset: number, value: bigint): Step => [width, offset, value];
const idle: Step = [16, CMD, 2_000_000n];
const read64 = (offset: number): Step => [32, offset, 0n];
/** One edu transfer: source, destination, count, command (the trigger). */
const transfer = (src: bigint, dst: bigint, cnt: bigint, cmd: bigint): Step[] => [
  w(8, SRC, src),
  w(8, DST, dst),
  w(8, CNT, cnt),
  w(8, CMD, cmd),
];
function script(steps: Step[]): Uint8Array {
  const b = new Uint8Array(steps.length * 16);
  const v = new DataView(b.buffer);
  steps.forEach(([kind, offset, value], i) => {
    v.setUint32(i * 16, kind, true);
    v.setUint32(i * 16 + 4, offset, true);
    v.setBigUint64(i * 16 + 8, BigInt.asUintN(64, value), true);
  });
  return b;
}

// The grants: the shipped edu manifest's engine without its write list (so the engine model alone
// stands between the driver and the device), the shipped manifest as is, and the same engine as an
// explicit Grant for host.load.
const { writable: _writable, ...eduRegion } = eduManifest.regions[0];
const engineOnly = { ...eduManifest, name: 'hostile-dma', regions: [eduRegion] };
const shipped = { ...eduManifest, name: 'hostile-dma' };
const eduEngine: DmaEngineSpec = {
  name: 'edu-dma',
  source: { offset: SRC, width: 8 },
  destination: { offset: DST, width: 8 },
  length: { offset: CNT, width: 8 },
  trigger: { offset: CMD, width: 8, bit: 0 },
  direction: { offset: CMD, width: 8, bit: 1, deviceToRam: 1 },
  deviceRanges: [[DEV, DEV + 0xffen]], // as the shipped manifest: QEMU 7.2's edu takes a whole-buffer transfer as a hardware error
  addressBits: 28,
};
const explicitGrant: Grant = {
  regions: { 0: { read: true, write: true, size: 0x100, dmaEngines: [eduEngine] } },
  dmaWindows: 1,
};

let host: Host;
let store: ReturnType<typeof trustStore>;
let bystander: Bystander;
let devices = 0;

beforeAll(async () => {
  host = new Host();
  store = trustStore();
  bystander = await Bystander.start(host, store);
});
afterAll(async () => {
  await host.close();
  store.close();
});

type Path = 'package' | 'grant' | 'all-access';
/**
 * A fresh simulated edu with a full 64-bit DMA mask (so no address is clamped back into the window:
 * the more dangerous device) and the hostile driver on it, through the package loader, an explicit
 * Grant, or (self-tests only) the all-access default grant.
 */
async function hostile(path: Path, manifest: object = engineOnly): Promise<{ drv: Driver; device: string }> {
  const device = `sim:edu:hostile${devices++}`;
  // A slow DMA (50 ms of device time): a write meant to land while a transfer runs does.
  host.openDevice(device, { sim: { dmaBits: 64, dmaDelayNs: 50_000_000 } });
  const opts = { name: `hostile-${path}`, restart: false as const };
  const drv =
    path === 'package'
      ? await loadPackage(host, store.sign(HOSTILE, manifest), device, { trust: store.trust })
      : await host.load(driverPath(HOSTILE), device, path === 'grant' ? { ...opts, grant: explicitGrant } : opts);
  return { drv, device };
}

async function run(path: Path, steps: Step[], manifest?: object) {
  const { drv, device } = await hostile(path, manifest);
  const result = await bystander.during(() => attack(drv, 1, script(steps)));
  return { ...result, device, record: dmaRecord(host, device), outside: outsideBytes(host, device) };
}

describe('the DMA record (self-test: planted outside accesses are seen, to the byte)', () => {
  it('a legal transfer is recorded with its RAM range, device address and direction, and nothing outside', async () => {
    const r = await run('all-access', [
      ...transfer(DEV, W + 0x100n, 64n, START | TO_RAM),
      idle,
      ...transfer(W, DEV + 0x10n, 32n, START),
      idle,
    ]);
    expect(r.fault).toBeUndefined();
    expect(r.record.transfers).toBe(2);
    expect(r.record.recent).toEqual([
      { direction: 'write', bus: W + 0x100n, length: 64, device: DEV, outside: 0 },
      { direction: 'read', bus: W, length: 32, device: DEV + 0x10n, outside: 0 },
    ]);
    expect(r.outside).toBe(0);
  });

  const planted: [string, Step[], 'read' | 'write', number][] = [
    ['a write running past the window end', transfer(DEV, W + S - 16n, 4096n, START | TO_RAM), 'write', 4080],
    ['a read running past the window end', transfer(W + S - 8n, DEV, 64n, START), 'read', 56],
    ['a write starting before the window', transfer(DEV, W - 16n, 64n, START | TO_RAM), 'write', 16],
    ['a device address used as the RAM side', transfer(DEV, DEV, 64n, START), 'read', 64],
    ['a 64-bit address with the high half set', transfer(DEV, W | (1n << 32n), 64n, START | TO_RAM), 'write', 64],
    ['a range that wraps past 2^64', transfer(DEV, TWO64 - 16n, 32n, START | TO_RAM), 'write', 32],
  ];
  for (const [what, steps, dir, bytes] of planted) {
    it(`${what}: counted as ${bytes} outside ${dir} bytes`, async () => {
      const r = await run('all-access', [...steps, idle]);
      expect(r.fault).toBeUndefined();
      expect(r.record.outsideTransfers).toBe(1);
      expect(dir === 'read' ? r.record.outsideReadBytes : r.record.outsideWriteBytes).toBe(bytes);
      expect(dir === 'read' ? r.record.outsideWriteBytes : r.record.outsideReadBytes).toBe(0);
      expect(r.record.recent.at(-1)).toMatchObject({ direction: dir, outside: bytes });
    });
  }

  it('the freeze exploit with read-back turned off escapes, and the record sees it: why read-back is on by default', async () => {
    // edu ignores DMA register writes while a transfer runs: a count of 16 written then is lost, the
    // device keeps 2048, and the shadow says 16 when the second trigger moves the destination to 16
    // bytes before the window's end. Only read-back tells them apart.
    const device = `sim:edu:hostile${devices++}`;
    host.openDevice(device, { sim: { dmaBits: 64, dmaDelayNs: 50_000_000 } });
    const grant: Grant = {
      ...explicitGrant,
      regions: { 0: { ...explicitGrant.regions![0], dmaEngines: [{ ...eduEngine, readBack: false }] } },
    };
    const drv = await host.load(driverPath(HOSTILE), device, { name: 'no-read-back', restart: false, grant });
    const steps = [
      ...transfer(DEV, W, 2048n, START | TO_RAM),
      w(8, CNT, 16n),
      idle,
      w(8, DST, W + S - 16n),
      w(8, CMD, START | TO_RAM),
      idle,
    ];
    const r = await bystander.during(() => attack(drv, 1, script(steps)));
    expect(r.fault).toBeUndefined();
    expect(dmaRecord(host, device).outsideWriteBytes).toBe(2032);
  });
});

interface Escape {
  what: string;
  steps: Step[];
  /** Text the fault message must contain. */
  says: string;
  /** Transfers the device performs before the refusal (all inside). */
  transfers?: number;
}

const escapes: Record<string, Escape[]> = {
  'transfers running past the window': [
    {
      what: 'count too long, destination 16 bytes inside the end',
      steps: transfer(DEV, W + S - 16n, 4096n, START | TO_RAM),
      says: 'is not inside one granted DMA window',
    },
    {
      what: 'count too long, source 8 bytes inside the end',
      steps: transfer(W + S - 8n, DEV, 64n, START),
      says: 'RAM side source 0x80',
    },
    {
      what: 'one byte past the end',
      steps: transfer(DEV, W + S - 4096n + 1n, 4096n, START | TO_RAM),
      says: `bytes [${hex(W + S - 4095n)}, ${hex(W + S + 1n)})`,
    },
    {
      what: 'starting before the window',
      steps: transfer(DEV, W - 16n, 64n, START | TO_RAM),
      says: 'RAM side destination 0x88',
    },
    {
      what: 'device side past the device buffer',
      steps: transfer(W, DEV + 0xff0n, 64n, START),
      says: 'device side destination 0x88 = 0x40ff0',
    },
    {
      what: "the whole device buffer (a hardware error in QEMU 7.2's edu)",
      steps: transfer(W, DEV, 4096n, START),
      says: 'are not inside a device range (0x40000–0x40ffe)',
    },
    { what: 'a count of zero', steps: transfer(W, DEV, 0n, START), says: 'an empty transfer is refused' },
  ],
  'device ranges used as the RAM side': [
    {
      what: 'RAM to device with a device address as source',
      steps: transfer(DEV, DEV + 0x800n, 64n, START),
      says: 'RAM side source 0x80 = 0x40000',
    },
    {
      what: 'device to RAM with a device address as destination',
      steps: transfer(DEV, DEV + 0x800n, 64n, START | TO_RAM),
      says: 'RAM side destination 0x88 = 0x40800',
    },
    {
      what: 'set up RAM to device, started device to RAM',
      steps: transfer(W, DEV, 64n, START | TO_RAM),
      says: 'a device to RAM transfer',
    },
    {
      what: 'set up device to RAM, started RAM to device',
      steps: transfer(DEV, W, 64n, START),
      says: 'a RAM to device transfer',
    },
  ],
  'partial-width writes': [
    {
      what: 'a 4-byte write to the 8-byte destination',
      steps: [w(8, SRC, DEV), w(4, DST, 0x7fff_0000n)],
      says: 'a 4-byte write at 0x88 covers only part of the 8-byte register destination (0x88)',
    },
    {
      what: 'a 4-byte write to the high half of the destination',
      steps: [w(8, DST, W), w(4, DST + 4, 1n)],
      says: 'a 4-byte write at 0x8c covers only part',
    },
    { what: 'a 4-byte write to the low half of the source', steps: [w(4, SRC, 0x40n)], says: 'a 4-byte write at 0x80' },
    {
      what: 'a single byte into the destination',
      steps: [w(8, DST, W), w(1, DST + 3, 0x7fn)],
      says: 'a 1-byte write at 0x8b',
    },
    { what: 'a 2-byte write into the count', steps: [w(2, CNT + 2, 0xffffn)], says: 'a 2-byte write at 0x92' },
    {
      what: 'a 4-byte write of the trigger',
      steps: [...transfer(DEV, W, 64n, 0n).slice(0, 3), w(4, CMD, 1n)],
      says: 'a 4-byte write at 0x98',
    },
  ],
  '64-bit addresses with the high half set': [
    {
      what: 'destination 2^32 above the window',
      steps: transfer(DEV, W | (1n << 32n), 64n, START | TO_RAM),
      says: 'is not inside one granted DMA window',
    },
    {
      what: 'source with bit 63 set',
      steps: transfer(W | (1n << 63n), DEV, 64n, START),
      says: 'RAM side source 0x80 = 0x8000000001000000',
    },
    {
      what: "destination above the device's 28 address bits",
      steps: transfer(DEV, W + (1n << 28n), 64n, START | TO_RAM),
      says: 'RAM side destination',
    },
  ],
  'ranges that overflow': [
    {
      what: 'destination near 2^64, wrapping to 16',
      steps: transfer(DEV, TWO64 - 16n, 32n, START | TO_RAM),
      says: 'RAM side destination 0x88 = 0xfffffffffffffff0',
    },
    {
      what: 'count near 2^64: address + count wraps back into the window',
      steps: transfer(DEV, W + 16n, TWO64 - 8n, START | TO_RAM),
      says: 'transfer of 18446744073709551608 bytes',
    },
    {
      what: 'a count that wraps both sides past 2^64',
      steps: transfer(W, DEV + 0x800n, TWO64 - 0x800n, START),
      says: 'is not inside one granted DMA window',
    },
  ],
  'writes in other orders': [
    {
      what: 'a legal transfer, then the destination moved outside, then the trigger again',
      steps: [...transfer(DEV, W, 64n, START | TO_RAM), idle, w(8, DST, W + S), w(8, CMD, START | TO_RAM)],
      says: 'RAM side destination 0x88 = 0x1010000',
      transfers: 1,
    },
    {
      what: 'a legal transfer, then the count grown past the window, then the trigger again',
      steps: [...transfer(DEV, W + S - 64n, 64n, START | TO_RAM), idle, w(8, CNT, 4096n), w(8, CMD, START | TO_RAM)],
      says: 'transfer of 4096 bytes',
      transfers: 1,
    },
    {
      // edu ignores its DMA registers while a transfer runs: the count of 16 is lost, the device keeps
      // 2048, so the second transfer would run 2032 bytes past the window. Read-back catches the difference.
      what: 'the count rewritten while a transfer runs (the device ignores it), the destination moved, the trigger again',
      steps: [
        ...transfer(DEV, W, 2048n, START | TO_RAM),
        w(8, CNT, 16n),
        idle,
        w(8, DST, W + S - 16n),
        w(8, CMD, START | TO_RAM),
      ],
      says: 'length (0x90) reads back 0x800 from the device, not the 0x10 the driver wrote',
      transfers: 1,
    },
    {
      what: 'the trigger before any address was written',
      steps: [w(8, CMD, START | TO_RAM)],
      says: 'with source (0x80) never written by this driver',
    },
    {
      what: 'the command written first without the start bit, then the addresses, then the trigger with the other direction',
      steps: [w(8, CMD, 0n), w(8, SRC, W), w(8, DST, DEV), w(8, CNT, 64n), w(8, CMD, START | TO_RAM)],
      says: 'a device to RAM transfer of 64 bytes (length register 0x90): RAM side destination 0x88 = 0x40000',
    },
  ],
};

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

for (const [escapeKind, variants] of Object.entries(escapes)) {
  describe(`hostile drivers: ${escapeKind}`, () => {
    for (const v of variants) {
      for (const path of ['package', 'grant'] as const) {
        it(`${v.what} (${path === 'package' ? 'signed package, manifest grant' : 'explicit Grant'}): dma-firewall, 0 outside bytes`, async () => {
          const r = await run(path, v.steps);
          expect(r.fault?.kind, r.fault?.message ?? 'no fault').toBe('dma-firewall');
          expect(r.fault!.message).toContain(v.says);
          expect(r.error?.name).toBe('RequestError');
          expect(r.outside).toBe(0);
          expect(r.record.transfers).toBe(v.transfers ?? 0);
        });
      }
    }
  });
}

describe('hostile drivers under the shipped edu manifest (write list and engine together)', () => {
  const cases: [string, Step[], string][] = [
    ['count too long', transfer(DEV, W + S - 16n, 4096n, START | TO_RAM), 'dma-firewall'],
    ['device address as the RAM side', transfer(DEV, DEV, 64n, START), 'dma-firewall'],
    ['a 4-byte write to the destination', [w(4, DST, 0x7fff_0000n)], 'access-denied'],
    [
      'a trigger with the destination moved after a legal transfer',
      [...transfer(DEV, W, 64n, START | TO_RAM), idle, w(8, DST, W + S), w(8, CMD, START | TO_RAM)],
      'dma-firewall',
    ],
  ];
  for (const [what, steps, kind] of cases) {
    it(`${what}: ${kind}, 0 outside bytes`, async () => {
      const r = await run('package', steps, shipped);
      expect(r.fault?.kind, r.fault?.message ?? 'no fault').toBe(kind);
      expect(r.outside).toBe(0);
    });
  }

  it('the bystander answered throughout', () => {
    expect(bystander.answered).toBeGreaterThan(100);
    expect(bystander.drv.stats().faults).toBe(0);
  });
});

describe('the register gate sends every write touching an engine register to the checked path', () => {
  it('needsSlowWrite is true exactly for writes overlapping an engine register, at every width and offset', () => {
    const policy = { read: true, write: true, dmaEngines: [eduEngine] };
    for (const width of [1, 2, 4, 8]) {
      for (let off = 0; off + width <= 0x100; off += width) {
        const touches = off < CMD + 8 && off + width > SRC;
        expect(needsSlowWrite(policy, off, width), `width ${width} at 0x${off.toString(16)}`).toBe(touches);
      }
    }
    expect(needsSlowWrite({ ...policy, writable: [] }, 0, 4)).toBe(true);
    expect(needsSlowWrite({ read: true, write: false }, 0, 4)).toBe(true);
    expect(needsSlowWrite({ read: true, write: true }, 0x80, 8)).toBe(false);
  });

  it('on a memory-backed region the gate serves, narrow writes into an engine register fault and never reach memory', async () => {
    const device = 'sim:bench:firewall';
    const dev = host.openDevice(device, { sim: { dmaBytes: 65536 } });
    const bus = dev.spec.dma[0].bus;
    const engine: DmaEngineSpec = { ...eduEngine, addressBits: undefined };
    const grant: Grant = { regions: { 0: { read: true, write: true, dmaEngines: [engine] } }, dmaWindows: 1 };
    for (const [width, offset] of [
      [1, 0x8b],
      [2, 0x92],
      [4, 0x84],
      [4, 0x98],
    ] as const) {
      const drv = await host.load(driverPath(HOSTILE), dev, {
        name: `gate-${width}-${offset}`,
        restart: false,
        grant,
        registerGate: 'record-all',
      });
      const r = await attack(drv, 1, script([w(1, 0x7f, 0x5an), read64(0x78), w(width, offset, 0xffn), read64(0x88)]));
      expect(r.fault?.kind, r.fault?.message ?? 'no fault').toBe('dma-firewall');
      expect(r.fault!.message).toContain(`a ${width}-byte write at 0x${offset.toString(16)}`);
      await drv.stop();
    }
    // A write beside the engine is served (by the gate) and lands; a legal transfer's trigger passes the check.
    const drv = await host.load(driverPath(HOSTILE), dev, {
      name: 'gate-ok',
      restart: false,
      grant,
      registerGate: 'record-all',
    });
    const out = await drv.request(
      1,
      script([w(1, 0x7f, 0x5an), ...transfer(DEV, bus, 64n, START | TO_RAM), read64(0x78), read64(0x98)]),
    );
    const v = new DataView(out.buffer, out.byteOffset);
    expect(v.getBigUint64(0, true) >> 56n).toBe(0x5an);
    expect(v.getBigUint64(8, true)).toBe(START | TO_RAM); // the trigger reached the memory-backed register
    await drv.stop();
  });
});
