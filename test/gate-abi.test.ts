// The register gate's functions and their Wasm types come from host/abi.ts's table (the register rows
// with an `access`), not from a list of their own: the gate module's imports and exports must be
// exactly those rows with exactly their types, and the gate and the inline rewrite serve each row by
// the row's kind and width.
import { describe, expect, it } from 'vitest';
import { IMPORTS } from '../host/abi.ts';
import { encodeGate, GATE_FUNCS, GATE_ROWS } from '../host/sandbox/gate.ts';
import { readWasm } from '../host/wasm/read.ts';

const registerRows = Object.entries(IMPORTS.registers);

describe('register gate from the ABI table', () => {
  it('serves exactly the register rows that declare an access, in the table order', () => {
    const accessRows = registerRows.filter(([, row]) => 'access' in row).map(([name]) => name);
    expect(GATE_FUNCS).toEqual(accessRows);
    // Every reg_read*/reg_write* of the ABI is one of them; region_count/region_size are not.
    expect(accessRows).toEqual(registerRows.map(([n]) => n).filter((n) => /^reg_(read|write)\d+$/.test(n)));
    expect(GATE_FUNCS).toHaveLength(8);
  });

  it("each gate row's kind and width agree with its signature: (region, offset) -> value, (region, offset, value)", () => {
    for (const row of GATE_ROWS) {
      const value = row.width === 8 ? 'i64' : 'i32';
      const want =
        row.kind === 'read'
          ? { params: ['i32', 'i32'], results: [value] }
          : { params: ['i32', 'i32', value], results: [] };
      expect({ params: [...row.params], results: [...row.results] }, row.name).toEqual(want);
      expect(row.name).toBe(`reg_${row.kind}${row.width * 8}`);
      const tableRow = IMPORTS.registers[row.name];
      expect(row.params).toBe(tableRow.params);
      expect(row.results).toBe(tableRow.results);
    }
  });

  it("the encoded gate imports slow.<name> and exports <name> with each row's Wasm type, and validates", () => {
    const layout = {
      regions: [
        { index: 0, size: 4096, base: 65536, read: true, write: true },
        { index: 1, size: 6, base: 131072, read: true, write: false },
      ],
      ringEntries: 64,
    };
    const bytes = encodeGate(layout, 3);
    expect(WebAssembly.validate(bytes)).toBe(true);
    const info = readWasm(bytes);
    const sigOf = (name: string) => {
      const r = IMPORTS.registers[name as keyof typeof IMPORTS.registers];
      return { params: [...r.params], results: [...r.results] };
    };
    const fnImports = info.imports.filter((i) => i.desc.kind === 'function');
    expect(fnImports.map((i) => `${i.module}.${i.name}`)).toEqual(GATE_FUNCS.map((n) => `slow.${n}`));
    for (const i of fnImports) expect(i.desc.kind === 'function' && i.desc.type, i.name).toEqual(sigOf(i.name));
    const fnExports = info.exports.filter((e) => e.desc.kind === 'function');
    expect(fnExports.map((e) => e.name)).toEqual([...GATE_FUNCS]);
    for (const e of fnExports) expect(e.desc.kind === 'function' && e.desc.type, e.name).toEqual(sigOf(e.name));
  });
});
