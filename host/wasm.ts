// A small reader for the parts of a Wasm binary the host checks before it instantiates anything:
// function signatures of imports and exports, the memory import's limits, exported globals, and
// custom sections. Node 20's WebAssembly.Module.imports() gives names and kinds but no types, and a
// JS function satisfies any import signature, so the linker checks signatures from the binary.

export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'funcref' | 'externref';

export interface FuncType {
  params: ValType[];
  results: ValType[];
}

export type ImportDesc =
  | { kind: 'function'; type: FuncType }
  | { kind: 'memory'; min: number; max?: number; shared: boolean; memory64: boolean }
  | { kind: 'table' }
  | { kind: 'global'; type: ValType; mutable: boolean };

export interface WasmImport {
  module: string;
  name: string;
  desc: ImportDesc;
}

export type ExportDesc =
  | { kind: 'function'; type: FuncType }
  | { kind: 'memory' }
  | { kind: 'table' }
  | { kind: 'global'; type: ValType; mutable: boolean };

export interface WasmExport {
  name: string;
  desc: ExportDesc;
}

export interface WasmInfo {
  imports: WasmImport[];
  exports: WasmExport[];
  customSections: { name: string; offset: number; size: number }[];
  /** Function names from the "name" custom section, by function index (imports first). */
  functionNames: Map<number, string>;
  /** Number of imported functions (function index space starts with them). */
  importedFunctions: number;
  /** Offset and size of the code section. */
  code?: { offset: number; size: number };
}

export class WasmFormatError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} at byte ${offset}`);
    this.name = 'WasmFormatError';
  }
}

const VALTYPES: Record<number, ValType> = {
  0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128', 0x70: 'funcref', 0x6f: 'externref',
};

class Reader {
  pos: number;
  constructor(readonly bytes: Uint8Array, pos = 0, readonly end = bytes.length) {
    this.pos = pos;
  }
  byte(): number {
    if (this.pos >= this.end) throw new WasmFormatError('unexpected end', this.pos);
    return this.bytes[this.pos++];
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) break;
      shift += 7;
      if (shift > 35) throw new WasmFormatError('LEB128 too long', this.pos);
    }
    return result;
  }
  skipLeb(): void {
    while (this.byte() & 0x80);
  }
  name(): string {
    const len = this.u32();
    if (this.pos + len > this.end) throw new WasmFormatError('name past the end', this.pos);
    const s = new TextDecoder('utf-8', { fatal: true }).decode(this.bytes.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }
  valtype(): ValType {
    const at = this.pos;
    const t = VALTYPES[this.byte()];
    if (!t) throw new WasmFormatError('unknown value type', at);
    return t;
  }
  limits(): { min: number; max?: number; shared: boolean; memory64: boolean } {
    const flags = this.byte();
    const min = this.u32();
    const max = flags & 1 ? this.u32() : undefined;
    return { min, max, shared: (flags & 2) !== 0, memory64: (flags & 4) !== 0 };
  }
}

/** Parse the sections the host needs. Throws WasmFormatError on a malformed binary. */
export function readWasm(input: Uint8Array): WasmInfo {
  const r = new Reader(input);
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  for (let i = 0; i < 8; i++) {
    if (r.byte() !== magic[i]) throw new WasmFormatError('not a Wasm 1.0 binary (bad magic or version)', i);
  }
  const types: FuncType[] = [];
  const funcTypeIndex: number[] = []; // type index of every function, imports first
  const globalTypes: { type: ValType; mutable: boolean }[] = [];
  const info: WasmInfo = { imports: [], exports: [], customSections: [], functionNames: new Map(), importedFunctions: 0 };
  const rawExports: { name: string; kind: number; index: number }[] = [];

  while (r.pos < r.end) {
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    const end = start + size;
    if (end > r.end) throw new WasmFormatError(`section ${id} runs past the end`, start);
    const s = new Reader(input, start, end);
    switch (id) {
      case 0: {
        const name = s.name();
        info.customSections.push({ name, offset: s.pos, size: end - s.pos });
        if (name === 'name') readNames(s, info.functionNames);
        break;
      }
      case 1: {
        for (let n = s.u32(); n > 0; n--) {
          if (s.byte() !== 0x60) throw new WasmFormatError('unsupported type form', s.pos - 1);
          const params = Array.from({ length: s.u32() }, () => s.valtype());
          const results = Array.from({ length: s.u32() }, () => s.valtype());
          types.push({ params, results });
        }
        break;
      }
      case 2: {
        for (let n = s.u32(); n > 0; n--) {
          const module = s.name();
          const name = s.name();
          const kind = s.byte();
          let desc: ImportDesc;
          if (kind === 0) {
            const t = s.u32();
            if (!types[t]) throw new WasmFormatError(`import ${module}.${name} uses unknown type ${t}`, s.pos);
            funcTypeIndex.push(t);
            desc = { kind: 'function', type: types[t] };
          } else if (kind === 1) {
            s.byte();
            s.limits();
            desc = { kind: 'table' };
          } else if (kind === 2) {
            desc = { kind: 'memory', ...s.limits() };
          } else if (kind === 3) {
            const type = s.valtype();
            const mutable = s.byte() === 1;
            globalTypes.push({ type, mutable });
            desc = { kind: 'global', type, mutable };
          } else {
            throw new WasmFormatError(`import ${module}.${name} has unknown kind ${kind}`, s.pos);
          }
          info.imports.push({ module, name, desc });
        }
        info.importedFunctions = funcTypeIndex.length;
        break;
      }
      case 3: {
        for (let n = s.u32(); n > 0; n--) funcTypeIndex.push(s.u32());
        break;
      }
      case 6: {
        for (let n = s.u32(); n > 0; n--) {
          const type = s.valtype();
          const mutable = s.byte() === 1;
          globalTypes.push({ type, mutable });
          // skip the constant init expression up to its `end`
          for (;;) {
            const op = s.byte();
            if (op === 0x0b) break;
            if (op === 0x41 || op === 0x42 || op === 0x23) s.skipLeb();
            else if (op === 0x43) s.pos += 4;
            else if (op === 0x44) s.pos += 8;
            else if (op === 0xd2) s.skipLeb();
          }
        }
        break;
      }
      case 7: {
        for (let n = s.u32(); n > 0; n--) rawExports.push({ name: s.name(), kind: s.byte(), index: s.u32() });
        break;
      }
      case 10:
        info.code = { offset: start, size };
        break;
      default:
        break;
    }
    r.pos = end;
  }

  for (const e of rawExports) {
    let desc: ExportDesc;
    if (e.kind === 0) {
      const t = types[funcTypeIndex[e.index]];
      if (!t) throw new WasmFormatError(`export ${e.name} names unknown function ${e.index}`, 0);
      desc = { kind: 'function', type: t };
    } else if (e.kind === 1) desc = { kind: 'table' };
    else if (e.kind === 2) desc = { kind: 'memory' };
    else {
      const g = globalTypes[e.index];
      desc = { kind: 'global', type: g?.type ?? 'i32', mutable: g?.mutable ?? false };
    }
    info.exports.push({ name: e.name, desc });
  }
  return info;
}

function readNames(s: Reader, out: Map<number, string>): void {
  try {
    while (s.pos < s.end) {
      const sub = s.byte();
      const size = s.u32();
      const end = s.pos + size;
      if (sub === 1) {
        for (let n = s.u32(); n > 0; n--) {
          const idx = s.u32();
          out.set(idx, s.name());
        }
      }
      s.pos = end;
    }
  } catch {
    // A malformed name section only costs us function names in fault reports.
  }
}

/** Bytes of the first custom section called `name`, or undefined. */
export function customSection(bytes: Uint8Array, info: WasmInfo, name: string): Uint8Array | undefined {
  const s = info.customSections.find((c) => c.name === name);
  return s ? bytes.subarray(s.offset, s.offset + s.size) : undefined;
}

export function formatType(t: FuncType): string {
  return `(${t.params.join(', ')}) -> (${t.results.join(', ')})`;
}

// --- writing: the few encoders the host's generated and rewritten modules need (gate.ts, instrument.ts)

/** Unsigned LEB128 (sizes, counts, indices). */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** A section: id, byte length, body. */
export function encodeSection(id: number, body: number[] | Uint8Array): number[] {
  return [id, ...uleb(body.length), ...body];
}
