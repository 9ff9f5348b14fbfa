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
  otherMemoryUses: { memory: number; at: number; what: string }[];
}

export class WasmFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at byte ${offset}`);
    this.name = 'WasmFormatError';
  }
}

const VALTYPES: Record<number, ValType> = {
  0x7f: 'i32',
  0x7e: 'i64',
  0x7d: 'f32',
  0x7c: 'f64',
  0x7b: 'v128',
  0x70: 'funcref',
  0x6f: 'externref',
};

class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    pos = 0,
    readonly end = bytes.length,
  ) {
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
          skipExpr(s, info); // the constant init expression, up to its `end`
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
          if (flags !== 1) skipExpr(s, info);
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
          scanCode(b, info);
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

/**
 * Walk instructions from r.pos to r.end, noting every memory index other than 0. Every opcode up to
 * Wasm 2.0 plus tail calls, exceptions, SIMD (incl. relaxed) and threads is decoded, so the walk
 * stays in step with the instruction stream; an opcode it does not know is a format error (a module
 * we cannot read is refused, not guessed at).
 */
function scanCode(r: Reader, info: WasmInfo, stopAtEnd = false): void {
  const mem = (at: number, what: string, idx: number) => {
    if (idx !== 0) info.otherMemoryUses.push({ memory: idx, at, what });
  };
  const memarg = (at: number, what: string) => {
    const flags = r.u32();
    if (flags & 0x40) mem(at, what, r.u32());
    r.skipLeb(); // offset
  };
  const blocktype = () => {
    const b = r.bytes[r.pos];
    if (b === 0x40 || VALTYPES[b]) r.pos++;
    else r.skipLeb(); // a type index (s33)
  };
  let depth = 0;
  while (r.pos < r.end) {
    const at = r.pos;
    const op = r.byte();
    if (op >= 0x45 && op <= 0xc4) continue; // numeric, no immediates (incl. sign extension)
    if (op >= 0x28 && op <= 0x3e) {
      memarg(at, 'a load or store');
      continue;
    }
    switch (op) {
      case 0x00:
      case 0x01:
      case 0x0f:
      case 0x1a:
      case 0x1b:
      case 0xd1:
      case 0x19:
      case 0x05:
        break;
      case 0x02:
      case 0x03:
      case 0x04:
      case 0x06:
        blocktype();
        depth++;
        break;
      case 0x0b:
        if (depth === 0 && stopAtEnd) return;
        depth--;
        break;
      case 0x07:
      case 0x08:
      case 0x09:
      case 0x18:
      case 0x0c:
      case 0x0d:
      case 0x10:
      case 0x12:
      case 0x20:
      case 0x21:
      case 0x22:
      case 0x23:
      case 0x24:
      case 0x25:
      case 0x26:
      case 0xd2:
      case 0x41:
      case 0x42:
        r.skipLeb();
        if (op === 0x18) depth--;
        break;
      case 0x0e:
        for (let n = r.u32() + 1; n > 0; n--) r.u32();
        break;
      case 0x11:
      case 0x13:
        r.u32();
        r.u32();
        break;
      case 0x1c:
        for (let n = r.u32(); n > 0; n--) r.valtype();
        break;
      case 0x3f:
        mem(at, 'memory.size', r.u32());
        break;
      case 0x40:
        mem(at, 'memory.grow', r.u32());
        break;
      case 0x43:
        r.pos += 4;
        break;
      case 0x44:
        r.pos += 8;
        break;
      case 0xd0:
        blocktype();
        break; // a heap type: one byte or an s33 index
      case 0xfc: {
        const sub = r.u32();
        if (sub <= 7) break;
        if (sub === 8) {
          r.u32();
          mem(at, 'memory.init', r.u32());
        } else if (sub === 10) {
          mem(at, 'memory.copy', r.u32());
          mem(at, 'memory.copy', r.u32());
        } else if (sub === 11) mem(at, 'memory.fill', r.u32());
        else if (sub === 12 || sub === 14) {
          r.u32();
          r.u32();
        } else if (sub === 9 || sub === 13 || sub === 15 || sub === 16 || sub === 17) r.u32();
        else throw new WasmFormatError(`unknown instruction 0xfc ${sub}`, at);
        break;
      }
      case 0xfd: {
        const sub = r.u32();
        if (sub <= 11 || sub === 92 || sub === 93) memarg(at, 'a SIMD load or store');
        else if (sub >= 84 && sub <= 91) {
          memarg(at, 'a SIMD lane load or store');
          r.pos++;
        } else if (sub === 12 || sub === 13) r.pos += 16;
        else if (sub >= 21 && sub <= 34) r.pos++;
        else if (sub > 0x113) throw new WasmFormatError(`unknown instruction 0xfd ${sub}`, at);
        break;
      }
      case 0xfe: {
        const sub = r.u32();
        if (sub === 3) r.pos++;
        else if (sub <= 0x4e) memarg(at, 'an atomic access');
        else throw new WasmFormatError(`unknown instruction 0xfe ${sub}`, at);
        break;
      }
      default:
        throw new WasmFormatError(`unknown instruction 0x${op.toString(16)}`, at);
    }
    if (r.pos > r.end) throw new WasmFormatError('instruction runs past its function', at);
  }
}

/** Skip a constant expression (global init, segment offset) up to its end, noting memory uses. */
function skipExpr(s: Reader, info: WasmInfo): void {
  scanCode(s, info, true);
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
