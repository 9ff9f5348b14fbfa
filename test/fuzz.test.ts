// The fuzzer: binaryen instrumentation keeps modules valid and behaving the same; seeded bugs (a
// 32-bit magic value from a device register, a bug in an interrupt handler, the older ring/divide
// fixtures) are found within a fixed execution budget, their clean twins never crash; reproducers
// replay deterministically and shrink; the grant is enforced; the CLI's budgets, JSON lines, help.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzDeviceSpec } from '../host/fuzz/device.ts';
import { crashKey, Executor } from '../host/fuzz/engine.ts';
import { minimize } from '../host/fuzz/minimize.ts';
import { grantFor, parseManifest } from '../host/package/manifest.ts';
import { fuzzJob } from '../host/fuzz/fuzz.ts';
import { instrument, loadBinaryen, PROBE_MODULE, type Instrumented } from '../host/fuzz/instrument.ts';
import { driverPath, root } from './helpers.ts';

const bytes = (name: string) => new Uint8Array(readFileSync(driverPath(name)));
const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-fuzz-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cache = new Map<string, Instrumented>();
const inst = async (name: string) => {
  if (!cache.has(name)) cache.set(name, await instrument(bytes(name), name));
  return cache.get(name)!;
};
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'bin', 'wasmdrv.js'), 'fuzz', ...args], { encoding: 'utf8' });

describe('fuzzer instrumentation (binaryen)', () => {
  beforeAll(async () => {
    await loadBinaryen();
  }, 60_000);

  it('instruments a driver into a valid module with fuel, snapshot exports and a comparison dictionary', async () => {
    const r = await inst('edu');
    expect(WebAssembly.validate(r.bytes as Uint8Array<ArrayBuffer>)).toBe(true);
    expect(WebAssembly.validate(r.probe as Uint8Array<ArrayBuffer>)).toBe(true);
    expect(r.sites).toBeGreaterThan(100);
    expect(r.cmpSites).toBeGreaterThan(20);
    const exports = WebAssembly.Module.exports(new WebAssembly.Module(r.bytes as Uint8Array<ArrayBuffer>)).map(
      (e) => e.name,
    );
    expect(exports).toContain('__fuel');
    expect(exports).toContain(r.globals[0]);
    // The constants the driver compares with (the id's magic, the liveness pattern's inverse), not every i32.const.
    expect(r.dictionary).toContain(0xed);
    expect(r.dictionary).toContain(0xa5a55a5a);
    expect(r.dictionary).not.toContain(0x5a5aa5a5); // written to the device, never compared
  });

  it('keeps a bulk-memory module (passive data, memory.init, data.drop, memory.copy/fill) valid and behaving the same', async () => {
    const b = await loadBinaryen();
    const m = b.parseText(`(module
      (memory (export "memory") 1)
      (data $d "\\01\\02\\03\\04\\05\\06\\07\\08")
      (func (export "f") (param $n i32) (result i32) (local $i i32) (local $s i32)
        (memory.init $d (i32.const 16) (i32.const 0) (i32.const 8))
        (data.drop $d)
        (memory.copy (i32.const 32) (i32.const 16) (i32.const 8))
        (memory.fill (i32.const 40) (i32.const 9) (local.get $n))
        (loop $l
          (local.set $s (i32.add (local.get $s) (i32.load8_u (i32.add (i32.const 32) (local.get $i)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.add (i32.const 8) (local.get $n)))))
        (if (result i32) (i32.eq (local.get $s) (i32.const 0x2d)) (then (i32.const -1)) (else (local.get $s))))
    )`);
    m.setFeatures(b.Features.BulkMemory | b.Features.BulkMemoryOpt);
    const original = m.emitBinary();
    m.dispose();
    expect(WebAssembly.validate(original as Uint8Array<ArrayBuffer>)).toBe(true);
    const r = await instrument(original, 'bulk');
    expect(WebAssembly.validate(r.bytes as Uint8Array<ArrayBuffer>)).toBe(true);
    const plain = new WebAssembly.Instance(new WebAssembly.Module(original as Uint8Array<ArrayBuffer>)).exports as {
      f(n: number): number;
    };
    const probe = new WebAssembly.Instance(new WebAssembly.Module(r.probe as Uint8Array<ArrayBuffer>));
    const ex = new WebAssembly.Instance(new WebAssembly.Module(r.bytes as Uint8Array<ArrayBuffer>), {
      [PROBE_MODULE]: probe.exports,
    }).exports as { f(n: number): number; __fuel: WebAssembly.Global };
    ex.__fuel.value = 1000;
    expect(ex.f(0)).toBe(plain.f(0)); // 1+..+8 = 36
    const again = new WebAssembly.Instance(new WebAssembly.Module(r.bytes as Uint8Array<ArrayBuffer>), {
      [PROBE_MODULE]: probe.exports,
    }).exports as { f(n: number): number; __fuel: WebAssembly.Global };
    const plain2 = new WebAssembly.Instance(new WebAssembly.Module(original as Uint8Array<ArrayBuffer>)).exports as {
      f(n: number): number;
    };
    again.__fuel.value = 1000;
    const want = plain2.f(1); // 36 + 9 = 45 = 0x2d: the comparison's other arm
    expect(want).toBe(-1);
    expect(again.f(1)).toBe(want);
    // the loop burns fuel: none left, the call traps
    const starved = new WebAssembly.Instance(new WebAssembly.Module(r.bytes as Uint8Array<ArrayBuffer>), {
      [PROBE_MODULE]: probe.exports,
    }).exports as { f(n: number): number; __fuel: WebAssembly.Global };
    starved.__fuel.value = 3;
    expect(() => starved.f(0)).toThrow(WebAssembly.RuntimeError);
  });

  it("the spec suite's 3,707 modules: every valid one comes out valid or is refused, every invalid one refused, each error naming the module", async () => {
    const dir = mkdtempSync(join(tmp, 'spec-'));
    execFileSync('tar', ['-xzf', join(root, 'test', 'fixtures', 'spec-modules.tar.gz'), '-C', dir]);
    const files = readdirSync(dir).filter((f) => f.endsWith('.wasm'));
    expect(files.length).toBeGreaterThan(3000);
    const wrong: string[] = [];
    let valid = 0,
      instrumented = 0;
    for (const f of files) {
      const b = new Uint8Array(readFileSync(join(dir, f)));
      const ok = WebAssembly.validate(b);
      if (ok) valid++;
      try {
        const r = await instrument(b, f);
        if (!ok) wrong.push(`${f}: invalid, but instrumented`);
        else if (!WebAssembly.validate(r.bytes as Uint8Array<ArrayBuffer>)) wrong.push(`${f}: came out invalid`);
        else instrumented++;
      } catch (err) {
        const m = (err as Error).message;
        if (!m.startsWith(`${f}: `) || m.includes('\n')) wrong.push(`${f}: unclear error ${m}`);
      }
    }
    expect(wrong).toEqual([]);
    // Refused valid ones are those binaryen cannot read with the features Node runs (177 on 2026-12-02).
    expect(instrumented).toBeGreaterThanOrEqual(1000);
    expect(valid - instrumented).toBeLessThanOrEqual(177);
  }, 300_000);

  it('refuses what it cannot read with an error naming the module', async () => {
    await expect(instrument(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff, 0xff), 'junk.wasm')).rejects.toThrow(
      /junk\.wasm: not a valid WebAssembly module/,
    );
  });
});

describe('fuzzer', () => {
  const seeded = [
    ['test/fuzz-magic-bug', 'memory-out-of-bounds', 'request'],
    ['test/fuzz-irq-bug', 'memory-out-of-bounds', 'interrupt'],
    ['test/buggy-ring', 'memory-out-of-bounds', 'request'],
    ['test/buggy-div', 'divide-by-zero', 'request'],
  ] as const;
  for (const [driver, kind, where] of seeded) {
    it(`finds the bug in ${driver} (${kind} in ${where}) within 20,000 executions, and its reproducer replays and shrinks`, async () => {
      const r = fuzzJob(await inst(driver), { model: 'edu', execs: 20_000, seed: 7, stopOnCrash: true });
      const crash = r.crashList.find((c) => c.kind === kind);
      expect(crash, `crashes: ${JSON.stringify(r.crashList.map((c) => c.kind))}`).toBeDefined();
      expect(crash!.location).toContain(`/${where} `);
      expect(crash!.exec).toBeLessThanOrEqual(20_000);
      const ex = new Executor(await inst(driver), 'edu');
      try {
        const input = Uint8Array.from(crash!.input);
        for (let i = 0; i < 3; i++) expect(crashKey(ex.run(input).crash!)).toBe(crashKey(crash!));
        const small = minimize(ex, input);
        expect(small.length).toBeLessThanOrEqual(input.length);
        expect(crashKey(ex.run(small).crash!)).toBe(crashKey(crash!));
      } finally {
        ex.close();
      }
    }, 60_000);
  }

  for (const driver of ['test/fuzz-magic-clean', 'test/fuzz-irq-clean']) {
    it(`finds no crash in the clean twin ${driver} in 20,000 executions, and reaches its magic-value branch`, async () => {
      const i = await inst(driver);
      const r = fuzzJob(i, { model: 'edu', execs: 20_000, seed: 7 });
      expect(r.crashList).toEqual([]);
      expect(r.execs).toBe(20_000);
      // The branch behind the magic value is reached: an input in the corpus carries the magic value.
      const magic = driver.includes('magic') ? [0x0d, 0xf0, 0xde, 0xc0] : [0xfe, 0x0f, 0xdc, 0xba];
      const hasMagic = r.corpusInputs.some((c) => c.some((_, k) => magic.every((m, j) => c[k + j] === m)));
      expect(hasMagic).toBe(true);
    }, 60_000);
  }

  it('finds the bug behind a descriptor write-back (test/fuzz-rx-bug: an unchecked received length) within 20,000 executions; the clean twin never crashes', async () => {
    const r = fuzzJob(await inst('test/fuzz-rx-bug'), { model: 'e1000', execs: 20_000, seed: 7, stopOnCrash: true });
    const crash = r.crashList.find((c) => c.kind === 'panic');
    expect(crash, `crashes: ${JSON.stringify(r.crashList)}`).toBeDefined();
    expect(crash!.message, crash!.location).toMatch(/out of range/i);
    expect(crash!.exec).toBeLessThanOrEqual(20_000);
    const ex = new Executor(await inst('test/fuzz-rx-bug'), 'e1000');
    try {
      expect(ex.receivesFrames).toBe(true);
      expect(crashKey(ex.run(Uint8Array.from(crash!.input)).crash!)).toBe(crashKey(crash!));
      // By hand: a frame whose write-back says 0x0800 bytes (beyond a frame), then a receive request.
      const oversize = [0x04, 0x41, 0x00, 0x08, 0x03, 0x00, 4, 1, 2, 3, 4, 0x02, 0];
      expect(ex.run(Uint8Array.from(oversize)).crash?.kind).toBe('panic');
      // The same frame with the device's own write-back (its 4 bytes' length) is a frame like any other.
      expect(ex.run(Uint8Array.from([0x04, 0x40, 4, 1, 2, 3, 4, 0x02, 0])).crash).toBeUndefined();
    } finally {
      ex.close();
    }
    const clean = fuzzJob(await inst('test/fuzz-rx-clean'), { model: 'e1000', execs: 20_000, seed: 7 });
    expect(clean.crashList).toEqual([]);
    expect(clean.execs).toBe(20_000);
  }, 120_000);

  it('a frame event is a request for a model that receives no frames (edu): inputs keep their meaning there', async () => {
    const ex = new Executor(await inst('edu'), 'edu');
    try {
      expect(ex.receivesFrames).toBe(false);
      const calls = ex.calls;
      ex.run(Uint8Array.of(0, 0x41, 0));
      expect(ex.calls - calls).toBe(1); // request op 1, not a frame
    } finally {
      ex.close();
    }
  });

  it("never makes the requests a manifest's fuzz.skipRequests names (the e1000's bench-only forward, op 6)", async () => {
    const where = join(root, 'guest-drivers', 'e1000', 'manifest.json');
    const manifest = parseManifest(readFileSync(where, 'utf8'), where);
    expect(manifest.fuzz?.skipRequests).toEqual([6]);
    const forward = Uint8Array.of(0, 0x06, 8, 0, 0, 0, 0, 0xe8, 0x03, 0, 0); // forward for 1000 ms
    const open = new Executor(await inst('e1000'), 'e1000');
    const skip = new Executor(await inst('e1000'), 'e1000', { skipRequests: manifest.fuzz!.skipRequests });
    try {
      expect(open.run(forward).crash?.kind).toBe('deadline'); // virtual time: a hang
      const calls = skip.calls;
      expect(skip.run(forward).crash).toBeUndefined();
      expect(skip.calls).toBe(calls);
    } finally {
      open.close();
      skip.close();
    }
    expect(() => parseManifest(JSON.stringify({ ...manifest, fuzz: { skipRequests: [16] } }), 'bad')).toThrow(/bad/);
  });

  it('is deterministic for a seed', async () => {
    const a = fuzzJob(await inst('edu'), { model: 'edu', execs: 3000, seed: 3 });
    const b = fuzzJob(await inst('edu'), { model: 'edu', execs: 3000, seed: 3 });
    expect(b.coverage).toBe(a.coverage);
    expect(b.corpusInputs).toEqual(a.corpusInputs);
    expect(b.crashList.map(crashKey)).toEqual(a.crashList.map(crashKey));
    expect(a.corpus).toBeGreaterThan(5);
  }, 60_000);

  it('restores only dirty chunks, with the same results as restoring all of memory', async () => {
    const i = await inst('edu');
    expect(i.tracksStores).toBe(true);
    const dirty = fuzzJob(i, { model: 'edu', execs: 4000, seed: 11 });
    const full = fuzzJob({ ...i, tracksStores: false }, { model: 'edu', execs: 4000, seed: 11 });
    expect(dirty.corpusInputs).toEqual(full.corpusInputs);
    expect(dirty.coverage).toBe(full.coverage);
    expect(dirty.crashList.map(crashKey)).toEqual(full.crashList.map(crashKey));
  }, 60_000);

  it("fuzzes a reload: state_restore of the driver's own saved state, then requests; a refused state ends the run", async () => {
    const ex = new Executor(await inst('edu'), 'edu');
    try {
      const st = ex.savedState!;
      expect(st.length).toBe(20);
      const tail = [0x01, 0x01, 0x06, 0x00]; // one request (op 1), no DMA bytes
      const calls0 = ex.calls;
      expect(ex.run(Uint8Array.from([3, st.length, ...st, ...tail])).crash).toBeUndefined();
      expect(ex.calls - calls0).toBe(2); // state_restore, then the request
      const calls1 = ex.calls;
      ex.run(Uint8Array.from([3, st.length, 9, ...st.subarray(1), ...tail])); // version 9: refused
      expect(ex.calls - calls1).toBe(1);
    } finally {
      ex.close();
    }
  });

  it('gives each driver call its own fuel: eight polling factorial requests are not a hang', async () => {
    const ex = new Executor(await inst('edu'), 'edu', { fuel: 2000 });
    try {
      const fact = [2, 4, 5, 0, 0, 0];
      const r = ex.run(Uint8Array.from([0x1c, ...Array(8).fill(fact).flat()]));
      expect(r.crash).toBeUndefined();
      expect(ex.calls).toBe(8);
    } finally {
      ex.close();
    }
  });

  it('fuzzes under a grant: a write the grant does not allow is access-denied, as under wasmdrv run', async () => {
    const grant = {
      imports: ['registers', 'irq', 'dma', 'services'] as const,
      regions: { 0: { read: true, write: true, writable: [{ offset: 0x08, width: 4 as const }] } },
    };
    const ex = new Executor(await inst('edu'), 'edu', { grant: { ...grant, imports: [...grant.imports] } });
    try {
      const r = ex.run(Uint8Array.of(2)); // a fuzzed probe: its liveness write (0x04) is not granted
      expect(r.crash?.kind).toBe('access-denied');
      expect(r.crash?.location).toContain('probe');
    } finally {
      ex.close();
    }
  });

  it('fuzzes under a package grant: the edu manifest makes a device-given DMA address a dma-firewall crash', async () => {
    const manifest = parseManifest(
      readFileSync(join(root, 'guest-drivers', 'edu', 'manifest.json'), 'utf8'),
      'edu manifest',
    );
    const { grant, limits } = grantFor(manifest, fuzzDeviceSpec('edu'), 'edu manifest');
    const granted = fuzzJob(await inst('test/fuzz-dma-bug'), {
      model: 'edu',
      execs: 5000,
      seed: 7,
      grant,
      limits,
      stopOnCrash: true,
    });
    expect(granted.crashList.map((c) => c.kind)).toContain('dma-firewall');
    const open = fuzzJob(await inst('test/fuzz-dma-bug'), { model: 'edu', execs: 5000, seed: 7 });
    expect(open.crashList.map((c) => c.kind)).not.toContain('dma-firewall');
  }, 60_000);

  it('fuzzes the e1000 under its manifest: lying heads and write-backs meet the descriptor firewall as an oracle', async () => {
    const where = join(root, 'guest-drivers', 'e1000', 'manifest.json');
    const manifest = parseManifest(readFileSync(where, 'utf8'), where);
    const { grant, limits } = grantFor(manifest, fuzzDeviceSpec('e1000'), where);
    const r = fuzzJob(await inst('e1000'), { model: 'e1000', execs: 3000, seed: 3, grant, limits });
    const kinds = new Set(r.crashList.map((c) => c.kind));
    // A device that lies about its head (or writes back garbage) drives the driver into descriptor
    // hand-overs the firewall refuses: typed faults, never a host error.
    expect([...kinds].some((k) => k.startsWith('dma-descriptor-'))).toBe(true);
    expect(kinds.has('host-error')).toBe(false);
  }, 60_000);

  it('wasmdrv fuzz --json --jobs 2: JSON lines, a reproducer with its execution index and time, --replay reproduces', () => {
    const out = join(tmp, 'out');
    const run = cli(
      driverPath('test/buggy-div'),
      '--model',
      'edu',
      '--execs',
      '4000',
      '--seed',
      '7',
      '--jobs',
      '2',
      '--out',
      out,
      '--json',
      '--plot',
    );
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const r = lines.at(-1);
    expect(r.event).toBe('done');
    expect(lines.some((l) => l.event === 'crash' && l.kind === 'divide-by-zero')).toBe(true);
    expect(r.execs).toBeGreaterThanOrEqual(4000);
    expect(r.coverage).toBeGreaterThan(0);
    const svg = readFileSync(r.plot, 'utf8');
    expect(svg).toContain('<svg');
    expect(svg).toMatch(/<polyline [^>]*points="(\S+,\S+ ){2,}/); // a line over time, not just the origin
    const div = r.crashes.find((c: { kind: string }) => c.kind === 'divide-by-zero');
    expect(div).toBeDefined();
    expect(existsSync(div.reproducer)).toBe(true);
    const meta = JSON.parse(readFileSync(`${div.reproducer}.json`, 'utf8'));
    expect(meta).toMatchObject({ kind: 'divide-by-zero', location: div.location, model: 'edu' });
    expect(typeof meta.exec).toBe('number');
    expect(typeof meta.ms).toBe('number');
    const replay = cli(driverPath('test/buggy-div'), '--model', 'edu', '--replay', div.reproducer, '--json');
    expect(replay.status).toBe(1);
    expect(JSON.parse(replay.stdout).crash).toMatchObject({ kind: 'divide-by-zero', location: div.location });
  }, 120_000);

  it('wasmdrv fuzz: --stop-on-crash ends at the first crash; --help; a bad option is a one-line usage error', () => {
    const stop = cli(
      driverPath('test/buggy-div'),
      '--model',
      'edu',
      '--execs',
      '0',
      '--seconds',
      '60',
      '--stop-on-crash',
      '--out',
      join(tmp, 'stop'),
      '--json',
    );
    expect(stop.status, stop.stderr).toBe(0);
    const done = JSON.parse(stop.stdout.trim().split('\n').at(-1)!);
    expect(done.crashes.length).toBe(1);
    expect(existsSync(join(tmp, 'stop', 'coverage.svg'))).toBe(false); // no --plot, no plot
    expect(done.execs).toBeLessThan(20_000);
    const help = cli('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--stop-on-crash');
    const bad = cli(driverPath('edu'), '--model', 'edu', '--bogus');
    expect(bad.status).toBe(2);
    expect(bad.stderr.split('\n')[0]).toMatch(/^wasmdrv fuzz: .*bogus/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  }, 120_000);
});
