// The register gate compiled into the driver (host/sandbox/inline-gate.ts, inline-rewrite.ts): a
// driver may have exactly its one imported memory, and nothing it can express reaches the memories
// the host appends (the shared area and the device's regions).
import { afterAll, describe, expect, it } from 'vitest';
import binaryen from 'binaryen';
import { Host, LoadError } from '../host/index.ts';
import { inlineGate, loadBinaryen, prepareInlineGate } from '../host/sandbox/inline-rewrite.ts';
import { gateCompiles, prepareGate } from '../host/driver/gate-compiler.ts';
import { checkSingleMemory, engineHasMultiMemory } from '../host/sandbox/inline-gate.ts';
import { loadNative } from '../host/native.ts';
import { decodeResponse } from '../host/payload.ts';
import { u32 } from './helpers.ts';

const native = loadNative();
const host = new Host();
afterAll(() => host.close());
let n = 0;

/**
 * A minimal ABI driver in text form. `extra` goes into the module; request(op) runs `body` (which
 * may use local 0 = op, 1 = length) and returns 0.
 */
function driver(extra: string, body = '', memory = '(import "env" "memory" (memory $m 3))'): Uint8Array {
  const wat = `(module
    ${memory}
    (import "wasmdrv" "reg_read32" (func $rd (param i32 i32) (result i32)))
    (import "wasmdrv" "reg_write32" (func $wr (param i32 i32 i32)))
    ${extra}
    (global (export "wasmdrv_abi_version") i32 (i32.const 1))
    (func (export "probe") (result i32) (i32.const 0))
    (func (export "remove"))
    (func (export "interrupt") (param i32))
    (func (export "io_buffer") (result i32) (i32.const 1024))
    (func (export "dma_area") (result i32) (i32.const 131072))
    (func (export "dma_area_size") (result i32) (i32.const 65536))
    (func (export "io_buffer_size") (result i32) (i32.const 256))
    (func (export "request") (param i32 i32) (result i32)
      ${body}
      (i32.store (i32.const 1024) (call $rd (i32.const 0) (i32.const 0)))
      (i32.const 4)))`;
  const m = binaryen.parseText(wat);
  m.setFeatures(
    binaryen.Features.MVP |
      binaryen.Features.MultiMemory |
      binaryen.Features.BulkMemory |
      binaryen.Features.BulkMemoryOpt,
  );
  try {
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/** sim:bench: a 4 KiB memfd register file; `regs` sees the same pages. */
function benchDevice() {
  const dev = host.openDevice(`sim:bench:inline${n++}`, { sim: { dmaBytes: 65536 } });
  const fd = (dev.spec.regions[0].source as { fd: number }).fd;
  const regs = new Uint32Array(native.mapFd(fd, 4096, 0).buffer());
  return { dev, regs };
}

describe('inline register gate', () => {
  it('runs on this engine (Node >= 24 has multi-memory)', () => {
    expect(engineHasMultiMemory()).toBe(true);
  });

  const refused: [string, Uint8Array, RegExp][] = [
    ['declares a memory of its own besides env.memory', driver('(memory $own 1)'), /defines 1 memory of its own/],
    [
      'imports a second memory',
      driver('', '', '(import "env" "memory" (memory $m 3)) (import "env" "memory" (memory $m2 3))'),
      /imports 2 memories/,
    ],
    [
      'aims a data segment at memory 1',
      driver('(memory $own 1) (data (memory $own) (i32.const 0) "\\ff\\ff")'),
      /memory of its own|memory index 1/,
    ],
    [
      'copies from a memory 1 of its own',
      driver('(memory $own 1)', '(memory.copy $m $own (i32.const 0) (i32.const 0) (i32.const 16))'),
      /memory of its own|memory index 1/,
    ],
  ];
  for (const [what, bytes, message] of refused) {
    it(`refuses, with a LoadError, a driver that ${what}`, async () => {
      expect(WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)).toBe(true); // valid Wasm under multi-memory: only our rule refuses it
      const { dev } = benchDevice();
      const err = await host.load(bytes, dev, { name: `two-mem-${n}` }).catch((e) => e);
      expect(err).toBeInstanceOf(LoadError);
      expect(err.message).toMatch(message);
      expect(() => checkSingleMemory(bytes, 'x')).toThrow(LoadError);
    });
  }

  it("memory.fill, memory.copy and memory.grow act on the driver's own memory, never on a region", async () => {
    const { dev, regs } = benchDevice();
    regs.fill(0x11111111);
    // op 1: fill 64 KiB of its memory with 0xff, copy the first 32 KiB over the second, grow by one page
    const bytes = driver(
      '',
      `(if (i32.eq (local.get 0) (i32.const 1)) (then
        (memory.fill (i32.const 0) (i32.const 255) (i32.const 65536))
        (memory.copy (i32.const 32768) (i32.const 0) (i32.const 32768))
        (drop (memory.grow (i32.const 1)))))`,
    );
    const drv = await host.load(bytes, dev, { name: 'bulk' });
    expect(drv.status().registerGate.kind).toBe('inline');
    const r = decodeResponse(await drv.request(1, u32(0))).u32;
    // the response is register 0, read after the fill: still the device's value
    expect(r[0]).toBe(0x11111111);
    expect([...regs.subarray(0, 1024)].every((v) => v === 0x11111111)).toBe(true);
    await drv.stop();
  });

  it("a memory exported under another name is the driver's own memory 0 after the rewrite", async () => {
    const bytes = driver('(export "shared" (memory $m)) (export "region0" (memory $m))');
    const out = inlineGate(
      await loadBinaryen(),
      bytes,
      {
        regions: [{ index: 0, size: 4096, read: true, slowReads: [], write: true }],
        ringEntries: 256,
        recordReads: true,
      },
      'x',
    )!;
    const own = new WebAssembly.Memory({ initial: 3 });
    const shared = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    const region0 = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    const slow = { reg_read32: () => 0, reg_write32: () => {} };
    const inst = new WebAssembly.Instance(new WebAssembly.Module(out), {
      env: { memory: own },
      wasmdrv: slow,
      'wasmdrv-gate': { shared, region0 },
    });
    expect(inst.exports.shared).toBe(own);
    expect(inst.exports.region0).toBe(own);
    // and the memory imports of the result: the driver's first, the host's after it
    expect(
      WebAssembly.Module.imports(new WebAssembly.Module(out))
        .filter((i) => i.kind === 'memory')
        .map((i) => `${i.module}.${i.name}`),
    ).toEqual(['env.memory', 'wasmdrv-gate.shared', 'wasmdrv-gate.region0']);
  });

  it('writes to a region with a write policy go to JavaScript (the policy holds), reads stay inline', async () => {
    const { dev, regs } = benchDevice();
    regs[0] = 42;
    const bytes = driver('', '(call $wr (i32.const 0) (i32.const 64) (i32.const 7))');
    const drv = await host.load(bytes, dev, {
      name: 'policy',
      restart: false,
      grant: { regions: { 0: { read: true, write: true, writable: [{ offset: 64, width: 4, mask: 0xffn }] } } },
    });
    expect(drv.status().registerGate).toMatchObject({ kind: 'inline', regions: [0] });
    expect(decodeResponse(await drv.request(1, u32(0))).u32[0]).toBe(42);
    expect(regs[16]).toBe(7);
    const rec = drv.recorder().filter((e) => e.op === 'write');
    expect(rec.map((e) => [e.offset, Number(e.value)])).toEqual([[64, 7]]);
    await drv.stop();
  });

  it('with the descriptor firewall on, reads of ring registers go to JavaScript; their neighbours stay inline', async () => {
    // Reads at 0x27fc, 0x2800, 0x2818, 0x281c, 0x2816 (2 bytes) into the io buffer at 1028...
    const reads = [
      [0x27fc, 'rd'],
      [0x2800, 'rd'],
      [0x2818, 'rd'],
      [0x281c, 'rd'],
    ] as const;
    const body = reads
      .map(([off], i) => `(i32.store (i32.const ${1028 + i * 4}) (call $rd (i32.const 0) (i32.const ${off})))`)
      .join(' ');
    const bytes = driver('', body);
    const out = inlineGate(
      await loadBinaryen(),
      bytes,
      {
        regions: [{ index: 0, size: 0x4000, read: true, slowReads: [[0x2800, 0x281c]], write: false }],
        ringEntries: 256,
        recordReads: false,
      },
      'x',
    )!;
    const own = new WebAssembly.Memory({ initial: 3 });
    const shared = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    const region0 = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    const regs = new Uint32Array(region0.buffer);
    for (const [off] of reads) regs[off >>> 2] = off; // the device's value is its offset
    const slowCalls: number[] = [];
    const slow = {
      reg_read32: (_r: number, off: number) => {
        slowCalls.push(off);
        return 0xf00d;
      },
      reg_write32: () => {},
    };
    const inst = new WebAssembly.Instance(new WebAssembly.Module(out), {
      env: { memory: own },
      wasmdrv: slow,
      'wasmdrv-gate': { shared, region0 },
    });
    (inst.exports.request as (op: number, len: number) => number)(1, 0);
    const got = [...new Uint32Array(own.buffer, 1028, reads.length)];
    expect(got).toEqual([0x27fc, 0xf00d, 0xf00d, 0x281c]);
    expect(slowCalls).toEqual([0x2800, 0x2818]);
  });

  it('the gate is compiled in the compile process, byte for byte what the main thread makes', async () => {
    const { dev } = benchDevice();
    const bytes = driver('', '(call $wr (i32.const 0) (i32.const 8) (i32.const 99))');
    const before = { ...gateCompiles };
    const there = await prepareGate('compile-process', dev.spec, bytes, {}, 'record-all', 256);
    expect(gateCompiles).toEqual({ ...before, process: before.process + 1 });
    const here = await prepareInlineGate('compile-process', dev.spec, bytes, {}, 'record-all', 256);
    expect(there?.layout).toEqual(here?.layout);
    expect(Buffer.from(there!.bytes).equals(Buffer.from(here!.bytes))).toBe(true);
    // Inputs that cannot be copied to the process are compiled in the main thread, to the same bytes.
    const odd = { ...dev.spec, extra: () => 0 };
    const fallback = await prepareGate('compile-process', odd, bytes, {}, 'record-all', 256);
    expect(gateCompiles.mainThread).toBe(before.mainThread + 1);
    expect(Buffer.from(fallback!.bytes).equals(Buffer.from(here!.bytes))).toBe(true);
  });

  it('while a reload is being prepared the old module serves; requests after the swap reach the new one', async () => {
    const { dev, regs } = benchDevice();
    regs[0] = 77;
    const drv = await host.load(driver(''), dev, { name: 'reload-serves', restart: false });
    const next = driver('', '(call $wr (i32.const 0) (i32.const 8) (i32.const 99))');
    const reloading = drv.reload(next, { fresh: true });
    // Made before the new module was compiled: served at once, by the old module (no write to regs[2]).
    expect(decodeResponse(await drv.request(1, u32(0))).u32[0]).toBe(77);
    expect(regs[2]).toBe(0);
    expect((await reloading).ok).toBe(true);
    expect(decodeResponse(await drv.request(1, u32(0))).u32[0]).toBe(77);
    expect(regs[2]).toBe(99);
    await drv.stop();
  });

  it('a hot-reloaded module gets the gate compiled in too (made before the swap, in the compile process)', async () => {
    const { dev, regs } = benchDevice();
    regs[0] = 1234;
    const drv = await host.load(driver(''), dev, { name: 'reload-inline', restart: false });
    expect(drv.status().registerGate.kind).toBe('inline');
    const next = driver('', '(call $wr (i32.const 0) (i32.const 8) (i32.const 99))');
    const r = await drv.reload(next, { fresh: true });
    expect(r.ok, r.error).toBe(true);
    expect(drv.status().registerGate).toMatchObject({ kind: 'inline', regions: [0] });
    expect(decodeResponse(await drv.request(1, u32(0))).u32[0]).toBe(1234); // served by the new module
    expect(regs[2]).toBe(99);
    await drv.stop();
  });

  it('clock_ns is compiled in too: no wasmdrv.clock_ns import is left, and it reads CLOCK_MONOTONIC', async () => {
    const bytes = driver(
      '(import "wasmdrv" "clock_ns" (func $clk (result i64)))',
      `(local $t i64) (local.set $t (call $clk))
       (call $wr (i32.const 0) (i32.const 8) (i32.wrap_i64 (local.get $t)))
       (call $wr (i32.const 0) (i32.const 12) (i32.wrap_i64 (i64.shr_u (local.get $t) (i64.const 32))))`,
    );
    const layout = {
      regions: [{ index: 0, size: 4096, read: true, slowReads: [], write: true }],
      ringEntries: 256,
      recordReads: true,
      rings: [],
    };
    const out = inlineGate(await loadBinaryen(), bytes, layout, 'clock')!;
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(out)).map((i) => `${i.module}.${i.name}`);
    expect(imports).toContain('wasmdrv-gate.clock');
    expect(imports).not.toContain('wasmdrv.clock_ns');
    const { dev, regs } = benchDevice();
    const drv = await host.load(bytes, dev, { name: 'clock' });
    expect(drv.status().registerGate.kind).toBe('inline');
    const before = Number(process.hrtime.bigint());
    await drv.request(1, u32(0));
    const after = Number(process.hrtime.bigint());
    const t = regs[3] * 2 ** 32 + regs[2];
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(after);
    await drv.stop();
  });
});
