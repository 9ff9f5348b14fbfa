// The WebAssembly spec test suite as a test of the load path. test/fixtures/spec-modules.tar.gz holds
// every distinct binary module of github.com/WebAssembly/testsuite's core .wast files (made by
// scripts/spec-fixtures.sh with wabt's wast2json; 3,707 modules, 232 KiB). None of them is a wasmdrv
// driver: the loader must refuse each with a LoadError (never another error, a hang or a crash), and
// the register-gate rewriter must answer each one that V8 accepts with a LoadError, "nothing to do",
// or a module V8 still accepts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Host, LoadError } from '../host/index.ts';
import { DEFAULT_LIMITS } from '../host/grant.ts';
import { checkModule } from '../host/sandbox/linker.ts';
import { inlineGate, loadBinaryen } from '../host/sandbox/inline-rewrite.ts';
import { root } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'wasmdrv-spec-'));
execFileSync('tar', ['-xzf', join(root, 'test', 'fixtures', 'spec-modules.tar.gz'), '-C', dir]);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.wasm'))
  .sort();
const host = new Host();
afterAll(() => {
  host.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The load path up to instantiation, as DriverInstance.create runs it. */
function load(bytes: Uint8Array, spec: ReturnType<Host['openDevice']>['spec'], label: string): void {
  try {
    new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  } catch (err) {
    throw new LoadError(`${label}: does not compile: ${(err as Error).message}`);
  }
  checkModule(
    bytes,
    { regions: spec.regions, ports: spec.ports, dmaCount: spec.dma.length, hasIrq: !!spec.irq },
    {},
    DEFAULT_LIMITS,
    label,
  );
}

describe('the WebAssembly spec test suite on the load path', () => {
  it('has the fixture modules', () => {
    expect(files.length).toBe(3707);
  });

  it('refuses every module with a LoadError', () => {
    const dev = host.openDevice('sim:bench:spec', { sim: { dmaBytes: 65536 } });
    const other: string[] = [];
    let refused = 0;
    for (const f of files) {
      try {
        load(readFileSync(join(dir, f)), dev.spec, f);
        other.push(`${f}: loaded`);
      } catch (err) {
        if (err instanceof LoadError) refused++;
        else other.push(`${f}: ${(err as Error).constructor.name}: ${(err as Error).message}`);
      }
    }
    expect(other).toEqual([]);
    expect(refused).toBe(files.length);
  });

  it('the register-gate rewriter keeps every module V8 accepts valid, or refuses it with a LoadError', async () => {
    const binaryen = await loadBinaryen();
    const layout = {
      regions: [{ index: 0, size: 4096, read: true, slowReads: [], write: true }],
      ringEntries: 256,
      recordReads: true,
    };
    const bad: string[] = [];
    let rewritten = 0,
      refused = 0,
      untouched = 0;
    for (const f of files) {
      const bytes = readFileSync(join(dir, f));
      if (!WebAssembly.validate(bytes)) continue;
      try {
        const out = inlineGate(binaryen, bytes, layout, f);
        if (out === undefined) untouched++;
        else if (WebAssembly.validate(out)) rewritten++;
        else bad.push(`${f}: rewritten module is invalid`);
      } catch (err) {
        if (err instanceof LoadError) refused++;
        else bad.push(`${f}: ${(err as Error).message}`);
      }
    }
    if (process.env.SPEC_COUNTS) console.log({ rewritten, refused, untouched });
    expect(bad).toEqual([]);
    expect(rewritten + refused + untouched).toBeGreaterThan(1000);
  });
});
