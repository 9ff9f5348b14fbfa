// A small reader for the parts of a Wasm binary the host checks before it instantiates anything:
// function signatures of imports and exports, the memory import's limits, exported globals, and
// custom sections. Node 20's WebAssembly.Module.imports() gives names and kinds but no types, and a
// JS function satisfies any import signature, so the linker checks signatures from the binary.
// It is the host's one reader of Wasm structure: the linker, the inline-gate rewriter's memory check,
// the package loader and the signature check (write.ts edits sections as this finds them) all use it.

import { skipExpr, scanCode, type MemoryUse } from './code.ts';
import { Reader, type ValType, WasmFormatError } from './reader.ts';

export { type ValType, WasmFormatError } from './reader.ts';
export type { MemoryUse } from './code.ts';

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
  /** Every section in file order: id, the offset of its id byte, the offset just past its end (and a custom section's name). */
  sections: { id: number; start: number; end: number; name?: string }[];
  /** Memories and tables the module defines itself (sections 5 and 4), and the ones it imports. */
  definedMemories: number;
  definedTables: number;
  importedMemories: number;
  importedTables: number;
  /**
   * Every use of a memory index other than 0, wherever the module can name one: a load/store memarg
   * with the multi-memory flag (bit 6), memory.size/grow/init/copy/fill, an active data segment.
   */
  otherMemoryUses: MemoryUse[];
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
  const info: WasmInfo = {
    imports: [],
    exports: [],
    customSections: [],
    functionNames: new Map(),
    importedFunctions: 0,
    sections: [],
    definedMemories: 0,
    definedTables: 0,
    importedMemories: 0,
    importedTables: 0,
    otherMemoryUses: [],
  };
  const rawExports: { name: string; kind: number; index: number }[] = [];

  while (r.pos < r.end) {
    const head = r.pos;
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    const end = start + size;
    if (end > r.end) throw new WasmFormatError(`section ${id} runs past the end`, start);
    const s = new Reader(input, start, end);
    info.sections.push({ id, start: head, end });
    switch (id) {
      case 0: {
        const name = s.name();
        info.sections[info.sections.length - 1].name = name;
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
            info.importedTables++;
            desc = { kind: 'table' };
          } else if (kind === 2) {
            info.importedMemories++;
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
      case 4:
        info.definedTables += s.u32();
        break;
      case 5:
        info.definedMemories += s.u32();
        break;
      case 6: {
        for (let n = s.u32(); n > 0; n--) {
          const type = s.valtype();
          const mutable = s.byte() === 1;
          globalTypes.push({ type, mutable });
          skipExpr(s, info.otherMemoryUses); // the constant init expression, up to its `end`
        }
        break;
      }
      case 11: {
        // Data segments: 0 active in memory 0, 1 passive, 2 active in an explicit memory.
        for (let n = s.u32(); n > 0; n--) {
          const at = s.pos;
          const flags = s.u32();
          if (flags === 2) {
            const mem = s.u32();
            if (mem !== 0) info.otherMemoryUses.push({ memory: mem, at, what: 'an active data segment' });
          } else if (flags !== 0 && flags !== 1) {
            throw new WasmFormatError(`data segment with unknown flags ${flags}`, at);
          }
          if (flags !== 1) skipExpr(s, info.otherMemoryUses);
          const len = s.u32();
          if (s.pos + len > s.end) throw new WasmFormatError('data segment runs past its section', s.pos);
          s.pos += len;
        }
        break;
      }
      case 7: {
        for (let n = s.u32(); n > 0; n--) rawExports.push({ name: s.name(), kind: s.byte(), index: s.u32() });
        break;
      }
      case 10: {
        info.code = { offset: start, size };
        for (let n = s.u32(); n > 0; n--) {
          const bodySize = s.u32();
          const bodyEnd = s.pos + bodySize;
          if (bodyEnd > s.end) throw new WasmFormatError('function body runs past the code section', s.pos);
          const b = new Reader(input, s.pos, bodyEnd);
          for (let groups = b.u32(); groups > 0; groups--) {
            b.u32();
            b.valtype();
          }
          scanCode(b, info.otherMemoryUses);
          s.pos = bodyEnd;
        }
        break;
      }
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
