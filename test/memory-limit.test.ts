// A memory.grow past the driver's memory limit is the fault `memory-limit`, naming the pages asked for,
// the memory's size and its limit: the same for AssemblyScript, C and Rust drivers (no frame names to
// go by), with the register gate compiled in, as a separate instance, or absent (a driver without
// register imports), and in the fuzzer's in-process load. The rewrite is host/sandbox/memory-grow.ts.
import { readFileSync } from 'node:fs';
import binaryen from 'binaryen';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../host/fuzz/engine.ts';
import { instrument } from '../host/fuzz/instrument.ts';
import { Host, LoadError, type Fault } from '../host/index.ts';
import { driverPath, u32, words } from './helpers.ts';

const PAGE = 65536;

describe('memory-limit', () => {
  const host = new Host();
  let n = 0;
  afterAll(() => host.close());

  /** sim:bench: a memfd register file (memory-backed: the register gate serves it). */
  const device = () => host.openDevice(`sim:bench:grow${n++}`, { sim: { dmaBytes: 65536 } });

  async function growFault(driver: string, pages: number, memoryPages: number): Promise<{ f: Fault; gate: string }> {
    const drv = await host.load(driverPath(driver), device(), {
      name: `grow${n++}`,
      limits: { memoryPages },
      restart: false,
    });
    const faulted = new Promise<Fault>((resolve) => drv.once('fault', resolve));
    const answer = await drv.request(1, u32(pages)).then(
      (r) => `answered ${[...r]}`,
      (e: { code?: string }) => e.code,
    );
    expect(answer).toBe('driver-faulted');
    return { f: await faulted, gate: drv.gateKind };
  }

  const message = (pages: number, limitPages: number) =>
    new RegExp(
      `^memory\\.grow of ${pages} pages \\(${pages * PAGE} bytes\\) refused: memory is \\d+ bytes, its limit ${limitPages * PAGE} bytes$`,
    );

  it('AssemblyScript (register gate compiled in): memory-limit with the pages and sizes, in the request', async () => {
    const { f, gate } = await growFault('test/grow', 3, 64);
    expect(gate).toBe('inline');
    expect(f.kind).toBe('memory-limit');
    expect(f.phase).toBe('request');
    expect(f.message).toMatch(message(3, 64));
    expect(f.stack[0]).toContain('wasmdrv:memory.grow (checked)');
  });

  it("AssemblyScript's allocator growing past the limit (test/broken op 11): memory-limit, not unreachable", async () => {
    const drv = await host.load(driverPath('test/broken'), `sim:edu:alloc${n++}`, {
      name: `alloc${n++}`,
      limits: { memoryPages: 32 },
      restart: false,
    });
    const faulted = new Promise<Fault>((resolve) => drv.once('fault', resolve));
    await drv.request(11, u32(0)).catch(() => {});
    const f = await faulted;
    expect(f.kind).toBe('memory-limit');
    expect(f.message).toMatch(
      /^memory\.grow of \d+ pages \(\d+ bytes\) refused: memory is \d+ bytes, its limit 2097152 bytes$/,
    );
  });

  it('AssemblyScript growing past the limit at load (its start function): memory-limit in phase load', async () => {
    const drv = host.load(driverPath('test/grow'), device(), {
      name: `start${n++}`,
      limits: { memoryPages: 16 },
      restart: false,
    });
    const err = await drv.then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/memory-limit/);
    expect(err?.message).toMatch(
      /memory\.grow of \d+ pages \(\d+ bytes\) refused: memory is \d+ bytes, its limit 1048576 bytes/,
    );
  });

  it('C (no register imports: no gate compiled in): memory-limit; the same module serves when it does not grow', async () => {
    const bytes = readFileSync(driverPath('test/grow-c'));
    expect(WebAssembly.Module.imports(new WebAssembly.Module(bytes)).filter((i) => i.name.startsWith('reg_'))).toEqual(
      [],
    );
    const drv = await host.load(bytes, device(), { name: `c${n++}`, limits: { memoryPages: 8 } });
    expect(drv.gateKind).not.toBe('inline');
    expect(words(await drv.request(2))[0]).toBeGreaterThan(0); // memory.size: the module loaded and serves
    const { f } = await growFault('test/grow-c', 1, 8);
    expect(f.kind).toBe('memory-limit');
    expect(f.message).toMatch(message(1, 8));
  });

  it('Rust (register gate as a separate instance, WASMDRV_INSTANCE_GATE=1): memory-limit', async () => {
    process.env.WASMDRV_INSTANCE_GATE = '1';
    try {
      const { f, gate } = await growFault('test/grow-rust', 2, 32);
      expect(gate).toBe('instance');
      expect(f.kind).toBe('memory-limit');
      expect(f.message).toMatch(message(2, 32));
    } finally {
      delete process.env.WASMDRV_INSTANCE_GATE;
    }
  });

  it('Rust (register gate compiled in): memory-limit', async () => {
    const { f, gate } = await growFault('test/grow-rust', 5, 40);
    expect(gate).toBe('inline');
    expect(f.kind).toBe('memory-limit');
    expect(f.message).toMatch(message(5, 40));
  });

  it("a driver exporting a name of the host's (wasmdrv:...) is refused at load and at reload", async () => {
    const m = binaryen.readBinary(readFileSync(driverPath('test/grow-c')));
    let sly: Uint8Array;
    try {
      m.addFunctionExport(binaryen.getExportInfo(m.getExport('probe')).value, 'wasmdrv:grow-refused');
      sly = m.emitBinary();
    } finally {
      m.dispose();
    }
    const err = await host.load(sly, device(), { name: 'sly', restart: false }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(LoadError);
    expect((err as Error).message).toContain('export wasmdrv:grow-refused is reserved for the host');
    const drv = await host.load(driverPath('test/grow-c'), device(), { name: `honest${n++}`, restart: false });
    const r = await drv.reload(sly);
    expect(r.ok).toBe(false);
    expect(r.error).toContain('the new module: export wasmdrv:grow-refused is reserved for the host');
    expect(words(await drv.request(2))[0]).toBeGreaterThan(0); // the old module still serves
  });

  it("the fuzzer's load: a refused grow is memory-limit; the next run's trap is its own", async () => {
    const ex = new Executor(await instrument(readFileSync(driverPath('test/grow-c')), 'grow-c'), 'edu');
    try {
      // mode 0, one event: request op 1 with 4 payload bytes (pages: 0x10000, refused at once)
      const c = ex.run(Uint8Array.of(0, 0x01, 4, 0, 0, 1, 0))?.crash;
      expect(c?.kind).toBe('memory-limit');
      expect(c?.message).toMatch(
        /^memory\.grow of 65536 pages \(4294967296 bytes\) refused: memory is \d+ bytes, its limit 4194304 bytes$/,
      );
      expect(c?.location).toMatch(/^grow_until_refused /); // the driver's call site, not the host's checked grow
      expect(ex.run(Uint8Array.of(0, 0x03, 0))?.crash?.kind).toBe('unreachable'); // op 3 traps
    } finally {
      ex.close();
    }
  });
});
