// memory.grow as a checked call (host/sandbox/memory-grow.ts): the rewrite on hand-made modules, and
// on every module of the WebAssembly spec suite that V8 accepts (each must stay valid).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import binaryen from 'binaryen';
import { afterAll, describe, expect, it } from 'vitest';
import { classify, LoadError } from '../host/faults.ts';
import { checkedGrow, GROW_NAME, GROW_REFUSED_EXPORT, START_EXPORT } from '../host/sandbox/memory-grow.ts';
import { readWasm } from '../host/wasm/read.ts';
import { withoutCustomSections } from '../host/wasm/write.ts';
import { root } from './helpers.ts';

function wat(text: string): Uint8Array<ArrayBuffer> {
  const m = binaryen.parseText(text);
  try {
    m.setFeatures(binaryen.Features.MutableGlobals | binaryen.Features.BulkMemory);
    binaryen.setDebugInfo(true);
    return m.emitBinary() as Uint8Array<ArrayBuffer>;
  } finally {
    m.dispose();
  }
}

const fn = (ex: WebAssembly.Exports, name: string) => ex[name] as (...args: number[]) => number;
const global = (ex: WebAssembly.Exports, name: string) => ex[name] as WebAssembly.Global;

const MODULE = `(module
  (import "env" "memory" (memory 1 3))
  (import "g" "x" (global $x i32))
  (global $y (mut i32) (i32.const 5))
  (func $never_called (result i32) (memory.grow (i32.const 100)))
  (func $grow (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func $dead (export "dead") (result i32) (unreachable) (memory.grow (i32.const 1)))
  (func $init (global.set $y (memory.grow (i32.const 1))))
  (export "y" (global $y))
  (start $init))`;

describe('memory.grow as a checked call', () => {
  it('grows within the limit, traps past it naming the pages, and moves the start function to an export', () => {
    const bytes = wat(MODULE);
    const out = checkedGrow(bytes, 't');
    expect(out).not.toBe(bytes);
    expect(WebAssembly.validate(out)).toBe(true);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 3 });
    const ex = new WebAssembly.Instance(new WebAssembly.Module(out), { env: { memory }, g: { x: 1 } }).exports;
    // The start function has not run at instantiation: the host runs it (instance.ts).
    expect(global(ex, 'y').value).toBe(5);
    fn(ex, START_EXPORT)();
    expect(global(ex, 'y').value).toBe(1); // the start function's own grow, checked and allowed: old size 1
    expect(fn(ex, 'grow')(1)).toBe(2);
    expect(memory.buffer.byteLength).toBe(3 * 65536);
    expect(global(ex, GROW_REFUSED_EXPORT).value).toBe(0);
    let err: unknown;
    try {
      fn(ex, 'grow')(5);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WebAssembly.RuntimeError);
    expect(global(ex, GROW_REFUSED_EXPORT).value).toBe(5);
    const use = { bytes: memory.buffer.byteLength, maxBytes: 3 * 65536, refusedPages: 5 };
    expect(classify(err, use)).toEqual({
      kind: 'memory-limit',
      message: 'memory.grow of 5 pages (327680 bytes) refused: memory is 196608 bytes, its limit 196608 bytes',
    });
    // Without the marker the same trap is an ordinary `unreachable`: nothing is inferred.
    expect(classify(err, { ...use, refusedPages: 0 }).kind).toBe('unreachable');
    // Indices kept: the exports still name the same functions; the appended one is named.
    const info = readWasm(out);
    expect(info.functionNames.get(0)).toBe('never_called');
    expect(info.functionNames.get(1)).toBe('grow');
    expect([...info.functionNames.values()]).toContain(GROW_NAME);
  });

  it('without the rewrite the same module only sees -1 (the test above depends on the rewrite)', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 3 });
    const ex = new WebAssembly.Instance(new WebAssembly.Module(wat(MODULE)), { env: { memory }, g: { x: 1 } }).exports;
    expect(fn(ex, 'grow')(5)).toBe(-1);
  });

  it('a module with no global or export section gets them in section order; one without memory.grow is untouched', () => {
    const bare = wat(`(module (import "env" "memory" (memory 1 2)) (func $f (drop (memory.grow (i32.const 1)))))`);
    const out = checkedGrow(bare, 'bare');
    expect(WebAssembly.validate(out)).toBe(true);
    expect(readWasm(out).exports.map((e) => e.name)).toEqual([GROW_REFUSED_EXPORT]);
    // Without a name section of its own the module gets one naming the checked grow alone.
    const unnamed = withoutCustomSections(bare, 'name');
    expect(readWasm(unnamed).functionNames.size).toBe(0);
    expect([...readWasm(checkedGrow(unnamed, 'unnamed')).functionNames]).toEqual([[1, GROW_NAME]]);
    const none = wat(`(module (import "env" "memory" (memory 1 2)) (func $f (drop (memory.size))))`);
    expect(checkedGrow(none, 'none')).toBe(none);
  });

  it("refuses a module that exports a name of the host's, whether or not it grows", () => {
    for (const grow of ['(func (drop (memory.grow (i32.const 1))))', '']) {
      const bytes = wat(
        `(module (import "env" "memory" (memory 1 2)) (global $g (mut i32) (i32.const 0)) (export "${GROW_REFUSED_EXPORT}" (global $g)) ${grow})`,
      );
      expect(() => checkedGrow(bytes, 'sly')).toThrow(LoadError);
      expect(() => checkedGrow(bytes, 'sly')).toThrow(
        `sly: export ${GROW_REFUSED_EXPORT} is reserved for the host (wasmdrv:*)`,
      );
    }
  });

  it('rewritten bytes are final: a second pass returns them as they are', () => {
    const out = checkedGrow(wat(MODULE), 't');
    expect(checkedGrow(out, 't')).toBe(out);
  });

  describe('the WebAssembly spec suite', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wasmdrv-grow-spec-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('every module V8 accepts stays valid after the rewrite; every other one is left as it is', () => {
      execFileSync('tar', ['-xzf', join(root, 'test', 'fixtures', 'spec-modules.tar.gz'), '-C', dir]);
      const bad: string[] = [];
      let rewritten = 0;
      for (const f of readdirSync(dir).filter((n) => n.endsWith('.wasm'))) {
        const bytes = readFileSync(join(dir, f));
        if (!WebAssembly.validate(bytes)) {
          if (checkedGrow(bytes, f) !== bytes) bad.push(`${f}: an invalid module was rewritten`);
          continue;
        }
        let out: Uint8Array;
        try {
          out = checkedGrow(bytes, f);
        } catch (err) {
          bad.push(`${f}: ${(err as Error).message}`);
          continue;
        }
        if (out === bytes) continue;
        rewritten++;
        if (!WebAssembly.validate(out as Uint8Array<ArrayBuffer>)) bad.push(`${f}: invalid after the rewrite`);
      }
      expect(bad).toEqual([]);
      expect(rewritten).toBeGreaterThanOrEqual(15); // 18 with this fixture
    });
  });
});
