// The fuzzer finds the deliberately buggy drivers' bugs within a fixed number of executions, and each
// reproducer replays to the same fault, deterministically; --minimize shrinks it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { crashKey, Executor, minimize } from '../host/fuzz/engine.ts';
import { fuzzJob } from '../host/fuzz/fuzz.ts';
import { instrument } from '../host/fuzz/instrument.ts';
import { driverPath, root } from './helpers.ts';

const bytes = (name: string) => new Uint8Array(readFileSync(driverPath(name)));
const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-fuzz-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('fuzzer', () => {
  it('instruments a driver into a valid module with coverage and fuel globals', () => {
    const r = instrument(bytes('edu'), 1000);
    expect(WebAssembly.validate(r.bytes as Uint8Array<ArrayBuffer>)).toBe(true);
    expect(r.blocks).toBeGreaterThan(100);
    const exports = WebAssembly.Module.exports(new WebAssembly.Module(r.bytes as Uint8Array<ArrayBuffer>)).map((e) => e.name);
    expect(exports).toContain('__fuel');
    expect(exports).toContain(`__cov_${r.blocks - 1}`);
    expect(r.constants).toContain(0xed);
  });

  for (const [driver, kind] of [['test/buggy-ring', 'memory-out-of-bounds'], ['test/buggy-div', 'divide-by-zero']] as const) {
    it(`finds the bug in ${driver} (${kind}) within 3,000 executions, and its reproducer replays`, () => {
      const r = fuzzJob(bytes(driver), 'edu', 3000, 7, []);
      const crash = r.crashList.find((c) => c.kind === kind);
      expect(crash, `crashes: ${JSON.stringify(r.crashList.map((c) => c.kind))}`).toBeDefined();
      expect(crash!.location).toContain('request');
      const ex = new Executor(bytes(driver), 'edu');
      try {
        const input = Uint8Array.from(crash!.input);
        for (let i = 0; i < 3; i++) expect(crashKey(ex.run(input).crash!)).toBe(`${crash!.kind}@${crash!.location}`);
        const small = minimize(ex, input);
        expect(small.length).toBeLessThanOrEqual(input.length);
        expect(crashKey(ex.run(small).crash!)).toBe(`${crash!.kind}@${crash!.location}`);
      } finally {
        ex.close();
      }
    });
  }

  it('is deterministic for a seed, and coverage grows past the seeds on the edu driver', () => {
    const a = fuzzJob(bytes('edu'), 'edu', 600, 3, []);
    const b = fuzzJob(bytes('edu'), 'edu', 600, 3, []);
    expect(b.coveredBlocks).toEqual(a.coveredBlocks);
    expect(b.crashList.map((c) => `${c.kind}@${c.location}`)).toEqual(a.crashList.map((c) => `${c.kind}@${c.location}`));
    expect(a.coverage).toBeGreaterThan(a.timeline[0]?.coverage ?? 0);
    expect(a.corpus).toBeGreaterThan(1);
  });

  it('wasmdrv fuzz --json writes reproducers and a coverage plot, and --replay reproduces', () => {
    const out = join(tmp, 'out');
    const run = spawnSync(process.execPath, [join(root, 'bin', 'wasmdrv.js'), 'fuzz', driverPath('test/buggy-div'), '--model', 'edu', '--execs', '3000', '--seed', '7', '--jobs', '2', '--out', out, '--json'], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const r = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    expect(r.execs).toBeGreaterThanOrEqual(3000);
    expect(r.execsPerSec).toBeGreaterThan(0);
    expect(r.coverage).toBeGreaterThan(0);
    expect(existsSync(r.plot)).toBe(true);
    expect(readFileSync(r.plot, 'utf8')).toContain('<svg');
    const div = r.crashes.find((c: { kind: string }) => c.kind === 'divide-by-zero');
    expect(div).toBeDefined();
    expect(existsSync(div.reproducer)).toBe(true);
    const replay = spawnSync(process.execPath, [join(root, 'bin', 'wasmdrv.js'), 'fuzz', driverPath('test/buggy-div'), '--model', 'edu', '--replay', div.reproducer, '--json'], { encoding: 'utf8' });
    expect(replay.status).toBe(1);
    expect(JSON.parse(replay.stdout).crash).toMatchObject({ kind: 'divide-by-zero', location: div.location });
  });
});
