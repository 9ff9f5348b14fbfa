// The doorbell fast path on its own (host/sandbox/ring-fast.ts): the Wasm check, commit and sync the
// host generates for the e1000 manifest's rings, called directly, over a state block, real rings and a
// register memory laid out as gate-link.ts lays them out, beside the JavaScript RingFirewall on the
// same block. What the Wasm check passes, JavaScript passes; what it refuses (-1), JavaScript refuses
// with the typed fault, and the device's tail stays where it was.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { grantFor, parseManifest } from '../host/package/manifest.ts';
import { ringLayouts } from '../host/package/rings.ts';
import { loadBinaryen } from '../host/sandbox/inline-rewrite.ts';
import { addRingFunctions } from '../host/sandbox/ring-fast.ts';
import {
  RingFirewall,
  carveRealRings,
  openStateBlock,
  ringReserveBytes,
  type DataWindow,
} from '../host/sandbox/ring-firewall.ts';
import { R, RINGS_AT, RING_BYTES, STATE_BYTES, fastRings } from '../host/sandbox/ring-state.ts';
import type { DeviceSpec } from '../host/device-spec.ts';
import { fault, root } from './helpers.ts';

const manifestPath = join(root, 'guest-drivers', 'e1000', 'manifest.json');
const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath);
const rings = ringLayouts(manifest, manifestPath);
const RDBAL = 0x2800;
const RDLEN = 0x2808;
const RDH = 0x2810;
const RDT = 0x2818;
const TDBAL = 0x3800;
const TDLEN = 0x3808;
const TDH = 0x3810;
const TDT = 0x3818;
// Two granted windows in the driver's memory: A at 0 (the shadow rings' home), B at 128 KiB.
const A = { bus: 0x1000_0000n, size: 0x10000, at: 0 };
const B = { bus: 0x2_4000_0000n, size: 0x8000, at: 0x20000 };
const PAGE = 65536;

let bin: Uint8Array;
let compiled: WebAssembly.Module | undefined;
/** The generated commit functions' text, by ring slot (binaryen's s-expression form). */
const commitText = new Map<number, string>();
const spec = {
  id: 't',
  name: 't',
  regions: [{ name: 'BAR0', size: 0x20000, source: { kind: 'fd', fd: 0, offset: 0 } }],
  ports: [],
  dma: [{ name: 'dma', size: 0x40000, bus: 0x1000_0000n, source: { kind: 'fd', fd: 0, offset: 0 } }],
  irq: { kind: 'eventfd', eventfd: 0 },
} as unknown as DeviceSpec;
const fast = fastRings(grantFor(manifest, spec, manifestPath).grant, 0);

beforeAll(async () => {
  const binaryen = await loadBinaryen();
  const m = new binaryen.Module();
  m.setFeatures(binaryen.Features.MultiMemory | binaryen.Features.Atomics | binaryen.Features.BulkMemory);
  m.setMemory(4, 4, 'memory');
  const funcs = addRingFunctions(binaryen, m, fast, { rings: 'rings', region: () => 'bar0' }, (b) => b);
  m.addMemoryImport('rings', 'gate', 'rings');
  m.addMemoryImport('bar0', 'gate', 'bar0');
  for (const [slot, f] of funcs) {
    m.addFunctionExport(f.check, `check${slot}`);
    m.addFunctionExport(f.commit, `commit${slot}`);
    m.addFunctionExport(f.sync, `sync${slot}`);
  }
  expect(m.validate()).toBeTruthy();
  for (const [slot, f] of funcs)
    commitText.set(slot, binaryen.emitText(binaryen.getFunctionInfo(m.getFunction(f.commit)).body));
  bin = m.emitBinary();
  m.dispose();
});

async function setup() {
  const reserve = ringReserveBytes(rings);
  const ringsMem = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  const bar0 = new WebAssembly.Memory({ initial: 2, maximum: 2 });
  compiled ??= new WebAssembly.Module(bin as Uint8Array<ArrayBuffer>);
  const instance = new WebAssembly.Instance(compiled, {
    gate: { rings: ringsMem, bar0 },
  });
  const x = instance.exports as Record<string, (...a: number[]) => number> & { memory: WebAssembly.Memory };
  const mem = new Uint8Array(x.memory.buffer);
  const regs = new Uint32Array(bar0.buffer);
  const device = {
    read32: (o: number) => regs[o >>> 2],
    write32: (o: number, v: number) => {
      regs[o >>> 2] = v >>> 0;
    },
  };
  const windows: DataWindow[] = [A, B].map((w) => ({ ...w, bytes: () => mem.subarray(w.at, w.at + w.size) }));
  const realBus = 0x1003_e000n;
  const real = carveRealRings(rings, realBus, new Uint8Array(ringsMem.buffer, 4096, reserve));
  for (const r of real) r.at = 4096 + Number(r.bus - realBus);
  expect(4096 + reserve).toBeLessThanOrEqual(PAGE);
  const block = new Uint8Array(ringsMem.buffer, 0, STATE_BYTES);
  const fw = new RingFirewall('t', rings, real, windows, device, { bytes: block, firstSlot: 0 });
  fw.start();
  expect(openStateBlock(block, windows)).toBe(true);
  fw.write(RDBAL, Number(A.bus));
  fw.write(RDLEN, 64 * 16);
  fw.write(TDBAL, Number(A.bus + 0x400n));
  fw.write(TDLEN, 64 * 16);
  const view = new DataView(x.memory.buffer);
  const txd = (i: number, addr: bigint, len: number, cmd = 0x0b) => {
    view.setBigUint64(0x400 + i * 16, addr, true);
    view.setUint16(0x400 + i * 16 + 8, len, true);
    mem[0x400 + i * 16 + 11] = cmd;
    mem[0x400 + i * 16 + 12] = 0;
  };
  const rxd = (i: number, addr: bigint) => {
    view.setBigUint64(i * 16, addr, true);
    view.setBigUint64(i * 16 + 8, 0n, true);
  };
  const realTx = new DataView(real[1].bytes.buffer, real[1].bytes.byteOffset);
  /** The Wasm doorbell as the generated reg_write32 runs it: check, then commit on success. */
  const bell = (tail: number): number => {
    const fresh = x.check1(tail);
    if (fresh >= 0) x.commit1(tail, fresh);
    return fresh;
  };
  return { x, fw, regs, txd, rxd, bell, realTx, mem, real, block };
}

describe('the Wasm doorbell (ring-fast.ts) against the JavaScript firewall', () => {
  it('rings the doorbell with a fence and one plain store: no locked read-modify-write on the BAR', () => {
    // V8 compiles i32.atomic.store to xchg, a locked RMW: on an uncached BAR a bus lock (trapped and
    // throttled by Linux's bus-lock detection) and a device read nobody asked for.
    expect(commitText.size).toBe(2);
    for (const [slot, text] of commitText) {
      const fence = text.indexOf('(atomic.fence');
      const store = text.search(/\(i32\.store \$bar0/);
      expect(fence, `ring ${slot}: fence`).toBeGreaterThan(-1);
      expect(store, `ring ${slot}: plain store to the BAR`).toBeGreaterThan(fence);
      expect(text, `ring ${slot}`).not.toMatch(/atomic\.(store|rmw|cmpxchg)/);
    }
  });

  it('a batch whose buffers alternate between two windows: every one passes (the last-hit window misses and moves)', async () => {
    const { fw, regs, txd, bell, realTx } = await setup();
    for (let i = 0; i < 8; i++) txd(i, i % 2 ? B.bus + BigInt(i * 256) : A.bus + 0x1000n + BigInt(i * 256), 200);
    expect(bell(8)).toBe(8);
    expect(regs[TDT >> 2]).toBe(8);
    expect(fw.checked).toBe(8);
    // the real ring holds the copies
    expect(realTx.getBigUint64(7 * 16, true)).toBe(B.bus + 7n * 256n);
    expect(realTx.getUint16(7 * 16 + 8, true)).toBe(200);
  });

  it.each([
    ['outside both windows', 0x5000_0000n, 64, 'dma-descriptor-outside-grant', /descriptor 7 field "buffer"/],
    [
      'running 1 byte past window B',
      B.bus + BigInt(B.size) - 63n,
      64,
      'dma-descriptor-outside-grant',
      /0x240007fc1\+64/,
    ],
    ['between the windows, starting in A', A.bus + BigInt(A.size) - 8n, 64, 'dma-descriptor-outside-grant', /\+64/],
    ['B with the high half changed', B.bus + (1n << 32n), 64, 'dma-descriptor-outside-grant', /high half is set/],
    ['wrapping past 2^64', 0xffff_ffff_ffff_fff0n, 0x20, 'dma-descriptor-outside-grant', /0xfffffffffffffff0/],
    // (addr - window start) wraps below a window's start: the one-comparison test must still refuse it
    ['1 byte below window A', A.bus - 1n, 64, 'dma-descriptor-outside-grant', /0xfffffff\+64/],
    ['at bus address 0', 0n, 64, 'dma-descriptor-outside-grant', /0x0\+64/],
  ])(
    'a batch of 8 whose LAST buffer lies %s: -1, the tail stays, JavaScript names it',
    async (_, at, len, kind, says) => {
      const { fw, regs, txd, bell, x } = await setup();
      for (let i = 0; i < 7; i++) txd(i, (i % 2 ? B.bus : A.bus + 0x1000n) + BigInt(i * 256), 100);
      txd(7, at, len);
      expect(bell(8)).toBe(-1);
      expect(regs[TDT >> 2]).toBe(0);
      expect(fw.checked).toBe(0);
      const f = fault(() => fw.write(TDT, 8));
      expect(f.kind).toBe(kind);
      expect(f.message).toMatch(says);
      expect(regs[TDT >> 2]).toBe(0);
      expect(x.check1(8)).toBe(-1);
    },
  );

  it('a batch whose LAST command sets a refused bit: -1, and JavaScript faults dma-descriptor-bad-command', async () => {
    const { fw, regs, txd, bell } = await setup();
    for (let i = 0; i < 7; i++) txd(i, A.bus + 0x1000n, 64);
    txd(7, A.bus + 0x1000n, 64, 0x2b);
    expect(bell(8)).toBe(-1);
    expect(regs[TDT >> 2]).toBe(0);
    expect(fault(() => fw.write(TDT, 8)).kind).toBe('dma-descriptor-bad-command');
  });

  it("the head last seen decides the room; past it, the device's head (read only then)", async () => {
    const { fw, regs, txd, bell, x } = await setup();
    for (let i = 0; i < 64; i++) txd(i, A.bus + 0x1000n, 64);
    expect(bell(63)).toBe(63); // the ring full: the device has done nothing
    expect(bell(1)).toBe(-1); // two more than are free, by the last sync and by the device
    regs[TDH >> 2] = 10; // the device sent 10; no sync has seen it
    expect(bell(5)).toBe(6); // 10 free by the device's head: read, since the head last seen leaves none
    expect(regs[TDT >> 2]).toBe(5);
    expect(fw.checked).toBe(69);
    expect(x.sync1()).toBe(10);
    expect(bell(10)).toBe(-1); // 5 more, only 4 free from head 10
    expect(fault(() => fw.write(TDT, 10)).kind).toBe('dma-descriptor-bad-index');
  });

  it('a head the device could not have: sync and the doorbell go to JavaScript, which faults device-bad-head', async () => {
    const { fw, regs, txd, bell, x } = await setup();
    for (let i = 0; i < 64; i++) txd(i, A.bus + 0x1000n, 64);
    expect(bell(4)).toBe(4);
    regs[TDH >> 2] = 3;
    expect(x.sync1()).toBe(3);
    regs[TDH >> 2] = 64; // outside the ring
    expect(x.sync1()).toBe(-1);
    expect(fault(() => fw.read(TDH)).message).toMatch(/device's head \(register 0x3810\) reads 0x40: outside the ring/);
    regs[TDH >> 2] = 2; // backwards past the last sync (3)
    expect(x.sync1()).toBe(-1);
    expect(fault(() => fw.read(TDH)).kind).toBe('device-bad-head');
    regs[TDH >> 2] = 6; // past the tail (4)
    expect(x.sync1()).toBe(-1);
    // a doorbell that needs the device's head (more than the last sync leaves free) refuses it too
    expect(bell(3)).toBe(-1);
    const f = fault(() => fw.write(TDT, 3));
    expect(f.kind).toBe('device-bad-head');
    expect(f.message).toMatch(/reads 0x6: not between the head last seen \(3\) and the tail given to it \(4\)/);
    expect(regs[TDT >> 2]).toBe(4);
  });

  it('a head moved back to the last sync but behind one a doorbell saw since: sync refuses it, as JavaScript does', async () => {
    const { fw, regs, txd, bell, x } = await setup();
    for (let i = 0; i < 64; i++) txd(i, A.bus + 0x1000n, 64);
    expect(bell(63)).toBe(63);
    regs[TDH >> 2] = 1;
    expect(x.check1(3)).toBe(-1); // reads the head (1, sound: seen), then finds 4 > 1 free
    regs[TDH >> 2] = 0; // back to where the last sync was
    expect(x.sync1()).toBe(-1);
    const f = fault(() => fw.read(TDH));
    expect(f.kind).toBe('device-bad-head');
    expect(f.message).toMatch(/reads 0x0: not between the head last seen \(1\) and the tail given to it \(63\)/);
  });

  it("a batch that wraps past the ring's end is checked and copied in both runs; a bad one after the wrap refuses it whole", async () => {
    const { fw, regs, txd, bell } = await setup();
    for (let i = 0; i < 64; i++) txd(i, A.bus + 0x1000n + BigInt(i * 128), 100);
    expect(bell(60)).toBe(60);
    regs[TDH >> 2] = 60; // the device has done all 60
    // slots 60..63 and 0..3; slot 2 (after the wrap) outside every window
    for (const i of [60, 61, 62, 63, 0, 1, 3]) txd(i, B.bus + BigInt(i * 64), 64);
    txd(2, 0x5000_0000n, 64);
    expect(bell(4)).toBe(-1);
    expect(regs[TDT >> 2]).toBe(60);
    expect(fault(() => fw.write(TDT, 4)).message).toMatch(/descriptor 2 field "buffer"/);
    const ok = await setup();
    for (let i = 0; i < 64; i++) ok.txd(i, A.bus + 0x1000n + BigInt(i * 128), 100);
    expect(ok.bell(60)).toBe(60);
    ok.regs[TDH >> 2] = 60;
    for (const i of [60, 61, 62, 63, 0, 1, 2, 3]) ok.txd(i, B.bus + BigInt(i * 64), 64);
    expect(ok.bell(4)).toBe(8);
    expect(ok.regs[TDT >> 2]).toBe(4);
    expect(ok.fw.checked).toBe(68);
    for (const i of [60, 63, 0, 3]) expect(ok.realTx.getBigUint64(i * 16, true)).toBe(B.bus + BigInt(i * 64));
    // write-backs of [60, 2): both runs copied, nothing else
    for (let i = 0; i < 64; i++) ok.real[1].bytes[i * 16 + 12] = 0x01;
    ok.regs[TDH >> 2] = 2;
    expect(ok.x.sync1()).toBe(2);
    const dd = (i: number) => ok.mem[0x400 + i * 16 + 12];
    expect([59, 60, 63, 0, 1, 2, 3].map(dd)).toEqual([0, 1, 1, 1, 1, 0, 0]); // 59: synced before, as 0
  });

  it('a ring whose real copy is not in the rings memory (realAt -1): check and sync go to JavaScript, the block untouched', async () => {
    const { x, txd, block, regs } = await setup();
    for (let i = 0; i < 8; i++) txd(i, A.bus + 0x1000n, 64);
    const dv = new DataView(block.buffer, block.byteOffset, STATE_BYTES);
    dv.setInt32(RINGS_AT + RING_BYTES + R.realAt, -1, true);
    const before = block.slice();
    expect(x.check1(4)).toBe(-1);
    expect(block.slice()).toEqual(before);
    dv.setUint32(RINGS_AT + RING_BYTES + R.synced, 60, true); // something to copy, were it not refused
    const before2 = block.slice();
    expect(x.sync1()).toBe(-1);
    expect(block.slice()).toEqual(before2);
    expect(regs[TDT >> 2]).toBe(0);
  });

  it('sync copies the named write-back bytes of [synced, head) only', async () => {
    const { x, regs, txd, bell, mem, real } = await setup();
    for (let i = 0; i < 8; i++) txd(i, A.bus + 0x1000n, 64);
    expect(bell(4)).toBe(4);
    const r = real[1].bytes;
    for (let i = 0; i < 4; i++) {
      r[i * 16 + 12] = 0x01; // DD, the one written-back byte of a TX descriptor the manifest names
      r[i * 16 + 13] = 0x77; // a byte it does not name
    }
    regs[TDH >> 2] = 2;
    expect(x.sync1()).toBe(2);
    expect([0, 1, 2, 3].map((i) => mem[0x400 + i * 16 + 12])).toEqual([1, 1, 0, 0]);
    expect([0, 1].map((i) => mem[0x400 + i * 16 + 13])).toEqual([0, 0]);
    expect(mem[0x400 + 11]).toBe(0x0b);
  });
});

// check and sync walk a run of adjacent slots two per loop turn, an odd count's first slot alone
// (ring-fast.ts `pairs`): each case below puts the batch's first slot, its bad descriptor and the ring's
// end at the places that unrolling makes different: odd and even positions in the batch, the odd one
// taken alone, a batch that wraps with an odd run on either side of the ring's end.
describe('two descriptors per loop turn: every slot of a batch is copied and checked, wherever it falls', () => {
  type Setup = Awaited<ReturnType<typeof setup>>;
  /** A buffer of slot i, generation g: alternating between the windows (the last-hit window moves inside a pair). */
  const buf = (i: number, g: number) =>
    i % 3 === 0 ? B.bus + BigInt(((i + g) % 8) * 2048) : A.bus + 0x1000n + BigInt(((i + g) % 16) * 2048);
  interface Bad {
    name: string;
    kind: string;
    put: (t: Setup, slot: number) => void;
  }
  const rings = {
    rx: {
      head: RDH,
      tail: RDT,
      shadow: 0,
      honest: (t: Setup, i: number, g: number) => t.rxd(i, buf(i, g)),
      check: (t: Setup, tail: number) => t.x.check0(tail),
      commit: (t: Setup, tail: number, fresh: number) => t.x.commit0(tail, fresh),
      sync: (t: Setup) => t.x.sync0(),
      named: [8, 9, 12, 13], // written-length, status, errors
      bad: [
        { name: 'outside both windows', kind: 'dma-descriptor-outside-grant', put: (t, s) => t.rxd(s, 0x5000_0000n) },
        // the fixed 2048-byte buffer runs 1 byte past window B
        {
          name: 'past the end of B',
          kind: 'dma-descriptor-outside-grant',
          put: (t, s) => t.rxd(s, B.bus + BigInt(B.size) - 2047n),
        },
        {
          name: 'the high half changed',
          kind: 'dma-descriptor-outside-grant',
          put: (t, s) => t.rxd(s, A.bus + 0x1000n + (1n << 32n)),
        },
        { name: '1 byte below A', kind: 'dma-descriptor-outside-grant', put: (t, s) => t.rxd(s, A.bus - 1n) },
      ] as Bad[],
    },
    tx: {
      head: TDH,
      tail: TDT,
      shadow: 0x400,
      honest: (t: Setup, i: number, g: number) => t.txd(i, buf(i, g), 60 + ((i + g) % 5)),
      check: (t: Setup, tail: number) => t.x.check1(tail),
      commit: (t: Setup, tail: number, fresh: number) => t.x.commit1(tail, fresh),
      sync: (t: Setup) => t.x.sync1(),
      named: [12], // status
      bad: [
        {
          name: 'outside both windows',
          kind: 'dma-descriptor-outside-grant',
          put: (t, s) => t.txd(s, 0x5000_0000n, 64),
        },
        {
          name: 'a length 1 byte past B',
          kind: 'dma-descriptor-outside-grant',
          put: (t, s) => t.txd(s, B.bus + BigInt(B.size) - 100n, 101),
        },
        {
          name: 'the high half changed',
          kind: 'dma-descriptor-outside-grant',
          put: (t, s) => t.txd(s, A.bus + 0x1000n + (1n << 32n), 64),
        },
        {
          name: 'a refused command bit',
          kind: 'dma-descriptor-bad-command',
          put: (t, s) => t.txd(s, A.bus + 0x1000n, 64, 0x2b),
        },
      ] as Bad[],
    },
  };
  type RingName = keyof typeof rings;

  /** A fresh setup whose ring has `start` descriptors handed over and done (the head last seen: start). */
  async function at(name: RingName, start: number): Promise<Setup> {
    const r = rings[name];
    const t = await setup();
    for (let i = 0; i < 64; i++) r.honest(t, i, 0);
    if (start > 0) {
      const fresh = r.check(t, start);
      expect(fresh).toBe(start);
      r.commit(t, start, fresh);
      t.regs[r.head >> 2] = start;
      expect(r.sync(t)).toBe(start);
    }
    return t;
  }
  const slotBytes = (t: Setup, name: RingName, i: number) => {
    const r = rings[name];
    return [...t.mem.subarray(r.shadow + i * 16, r.shadow + i * 16 + 16)];
  };
  const realBytes = (t: Setup, name: RingName, i: number) => [
    ...t.real[name === 'rx' ? 0 : 1].bytes.subarray(i * 16, i * 16 + 16),
  ];

  const cases: [RingName, number, number][] = [];
  // 61/62/63: a batch that reaches the ring's end or wraps: its first run odd or even, its second too
  for (const name of ['rx', 'tx'] as const)
    for (const count of [1, 2, 3, 4, 31, 32, 33])
      for (const start of [0, 1, 61, 62, 63]) cases.push([name, count, start]);

  it.each(cases)(
    'ring %s, a batch of %i from slot %i: honest, every slot copied; a bad descriptor at any position refused whole',
    async (name, count, start) => {
      const r = rings[name];
      const newTail = (start + count) % 64;
      const slots = Array.from({ length: count }, (_, k) => (start + k) % 64);
      // honest: the Wasm check passes it, and the real ring holds this batch's copy of every slot (a
      // new generation of buffers, so a slot the loop skipped still holds the old copy or none)
      const ok = await at(name, start);
      for (const s of slots) r.honest(ok, s, 1);
      const fresh = r.check(ok, newTail);
      expect(fresh).toBe(count);
      r.commit(ok, newTail, fresh);
      expect(ok.regs[r.tail >> 2]).toBe(newTail);
      expect(ok.fw.checked).toBe(start + count);
      for (const s of slots) expect(realBytes(ok, name, s), `slot ${s}`).toEqual(slotBytes(ok, name, s));
      // a bad one at each position in turn (the kinds in turn): -1, the device's tail stays, nothing
      // counted; JavaScript refuses the same doorbell, naming that descriptor
      for (let k = 0; k < count; k++) {
        const bad = r.bad[k % r.bad.length];
        const t = await at(name, start);
        for (const s of slots) r.honest(t, s, 1);
        bad.put(t, slots[k]);
        expect(r.check(t, newTail), `bad (${bad.name}) at position ${k}, slot ${slots[k]}`).toBe(-1);
        expect(t.regs[r.tail >> 2]).toBe(start);
        expect(t.fw.checked).toBe(start);
        const f = fault(() => t.fw.write(r.tail, newTail));
        expect(f.kind).toBe(bad.kind);
        expect(f.message).toMatch(new RegExp(`ring "${name}": descriptor ${slots[k]} field`));
        expect(t.regs[r.tail >> 2]).toBe(start);
      }
    },
  );

  const syncCases: [RingName, number, number][] = [];
  for (const name of ['rx', 'tx'] as const)
    for (const done of [1, 2, 3, 4, 5, 31, 32, 33])
      for (const start of [0, 1, 62, 63]) syncCases.push([name, done, start]);

  it.each(syncCases)(
    'ring %s: sync after the device did %i from slot %i copies the named write-back bytes of exactly those slots',
    async (name, done, start) => {
      const r = rings[name];
      const t = await at(name, start);
      const tail = (start + 40) % 64;
      const fresh = r.check(t, tail);
      expect(fresh).toBe(40);
      r.commit(t, tail, fresh);
      // the device writes back every byte 8..15 of every slot of the real ring
      const real = t.real[name === 'rx' ? 0 : 1].bytes;
      for (let i = 0; i < 64; i++) for (let b = 8; b < 16; b++) real[i * 16 + b] = 0xa0 + b;
      const before = Array.from({ length: 64 }, (_, i) => slotBytes(t, name, i));
      const head = (start + done) % 64;
      t.regs[r.head >> 2] = head;
      expect(r.sync(t)).toBe(head);
      for (let i = 0; i < 64; i++) {
        const inRange = (i - start + 64) % 64 < done;
        const want = before[i].map((v, b) => (inRange && r.named.includes(b) ? 0xa0 + b : v));
        expect(slotBytes(t, name, i), `slot ${i}${inRange ? ' (done)' : ''}`).toEqual(want);
      }
    },
  );
});
