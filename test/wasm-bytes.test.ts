// The host's one Wasm reader (host/wasm/read.ts) and one writer (host/wasm/write.ts): what the writer
// encodes, the reader and V8 read back the same; section edits keep every other byte; and a package
// made by the packaging script is byte for byte the one `wasmdrv pack` makes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageSections, SIGNATURE_SECTION } from '../host/package/sign.ts';
import { readWasm, WasmFormatError } from '../host/wasm/read.ts';
import { Reader } from '../host/wasm/reader.ts';
import {
  appendCustomSection,
  encodeSection,
  name,
  sleb,
  uleb,
  vec,
  WASM_HEADER,
  withoutCustomSections,
} from '../host/wasm/write.ts';
import { driverPath, root } from './helpers.ts';

const I32 = 0x7f;

/** A module exporting `k() -> i32` that returns `value` (an i32.const with a signed LEB immediate). */
function constModule(value: number): Uint8Array {
  const body = [0, 0x41, ...sleb(value), 0x0b];
  return Uint8Array.from([
    ...WASM_HEADER,
    ...encodeSection(1, vec([[0x60, 0, 1, I32]])),
    ...encodeSection(3, vec([[0]])),
    ...encodeSection(7, vec([[...name('k'), 0x00, 0]])),
    ...encodeSection(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

const edges = [0, 1, 63, 64, 127, 128, 8191, 8192, 16383, 16384, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31, 2 ** 32 - 1];

describe('the Wasm writer and reader', () => {
  it('an unsigned LEB128 reads back as written, at every length boundary', () => {
    for (const n of edges) {
      const bytes = Uint8Array.from(uleb(n));
      const r = new Reader(bytes);
      expect(r.u32()).toBe(n);
      expect(r.pos).toBe(bytes.length); // nothing left over, nothing read past
    }
    expect(uleb(127)).toEqual([0x7f]);
    expect(uleb(128)).toEqual([0x80, 0x01]);
  });

  it('a signed LEB128 i32.const is the value V8 computes, for the extremes and every sign boundary', async () => {
    const values = [0, 1, -1, 63, 64, -64, -65, 8191, -8192, 2 ** 31 - 1, -(2 ** 31), 123456789, -987654321];
    for (const v of values) {
      const { instance } = await WebAssembly.instantiate(constModule(v) as Uint8Array<ArrayBuffer>);
      expect((instance.exports.k as () => number)()).toBe(v);
    }
  });

  it("the reader finds a written module's export and its type", () => {
    const info = readWasm(constModule(7));
    expect(info.exports).toEqual([{ name: 'k', desc: { kind: 'function', type: { params: [], results: ['i32'] } } }]);
    expect(info.sections.map((s) => s.id)).toEqual([1, 3, 7, 10]);
  });

  it('a custom section appended and removed leaves the module byte for byte as it was', () => {
    for (const d of ['edu', 'uart16550', 'e1000', 'edu-c', 'edu-rust']) {
      const wasm = new Uint8Array(readFileSync(driverPath(d)));
      const payload = new Uint8Array(300).map((_, i) => i & 0xff); // a two-byte section size
      const withSection = appendCustomSection(wasm, 'wasmdrv.test', payload);
      const info = readWasm(withSection);
      const found = info.customSections.find((c) => c.name === 'wasmdrv.test')!;
      expect(withSection.subarray(found.offset, found.offset + found.size)).toEqual(payload);
      expect(info.sections.at(-1)).toMatchObject({ id: 0, name: 'wasmdrv.test', end: withSection.length });
      expect(withoutCustomSections(withSection, 'wasmdrv.test')).toEqual(wasm);
      expect(WebAssembly.validate(withSection as Uint8Array<ArrayBuffer>)).toBe(true);
    }
  });

  it('a section that runs past the end is a format error naming the section and the byte', () => {
    const wasm = Uint8Array.from([...WASM_HEADER, ...encodeSection(0, [...name('x'), 1, 2, 3])]);
    expect(() => readWasm(wasm.subarray(0, wasm.length - 1))).toThrow(WasmFormatError);
    expect(() => readWasm(wasm.subarray(0, wasm.length - 1))).toThrow(/section 0 runs past the end at byte 10/);
  });

  it('the bytes a signature covers are the package before its signature section, cut by the same parser', () => {
    const signed = new Uint8Array(readFileSync(join(root, 'build', 'packages', 'edu.wdrv')));
    const found = packageSections(signed, 'edu.wdrv');
    const sig = found.info.sections.at(-1)!;
    expect(sig.name).toBe(SIGNATURE_SECTION);
    expect(found.signature!.signed).toEqual(signed.subarray(0, sig.start));
    expect(withoutCustomSections(signed, SIGNATURE_SECTION)).toEqual(found.signature!.signed);
  });

  it('the packaging script and `wasmdrv pack` make the same package, byte for byte', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wasmdrv-pack-'));
    try {
      const out = join(dir, 'edu.wdrv');
      const r = spawnSync(
        process.execPath,
        [
          join(root, 'bin', 'wasmdrv.js'),
          'pack',
          join(root, 'guest-drivers', 'edu'),
          '--wasm',
          driverPath('edu'),
          '--key',
          join(root, '.keys', 'dev.key'),
          '--out',
          out,
        ],
        { encoding: 'utf8' },
      );
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      // ed25519 signatures are deterministic: the same key over the same bytes gives the same file.
      expect(new Uint8Array(readFileSync(out))).toEqual(
        new Uint8Array(readFileSync(join(root, 'build', 'packages', 'edu.wdrv'))),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
