// memory.grow as a checked call. Wasm answers a refused memory.grow with -1 to the driver alone, so
// the host would only learn of it from what the driver does next (AssemblyScript's allocator executes
// `unreachable`; a C or Rust driver may do anything). At load, every `memory.grow` on memory 0 becomes
// `call $grow`, a function appended to the module:
//
//     (func $grow (param $pages i32) (result i32) (local $old i32)
//       (if (i32.ne (local.tee $old (memory.grow (local.get $pages))) (i32.const -1))
//         (then (return (local.get $old))))
//       (global.set $refused (local.get $pages))
//       (unreachable))
//
// The memory is the host's, made with the driver's limit as its maximum (instance.ts), so a grow is
// refused exactly when the new size would exceed the limit. A refused grow traps: the driver never
// sees -1, the trap is a `memory-limit` fault, and `$refused` (a new global, exported as
// GROW_REFUSED_EXPORT) tells the host, exactly, that the trap was this one and how many pages were asked
// for (faults.ts classify). A trap, not an error code, because no driver can carry on without the
// memory it asked for, and a Wasm trap cannot be caught by the driver (a thrown host error could be,
// by a module using exception handling).
//
// Nothing is renumbered: the type, function and global are appended after the module's own, so every
// index the module uses keeps its meaning; each rewritten body only changes length. A start function
// would run inside `new WebAssembly.Instance`, before the host can read `$refused`: the start section
// is dropped and the function exported as START_EXPORT, which the instance calls first (instance.ts).
//
// The rewrite is byte-level and synchronous (the project's one Wasm reader: wasm/read.ts and the
// instruction walker wasm/code.ts), so it runs wherever a driver module is compiled: the main thread's
// compile, a worker's prepare(), the fuzzer and the campaign. The register gate's rewrite
// (inline-rewrite.ts) is given the rewritten bytes and keeps $grow like any other function.

import { LoadError } from '../faults.ts';
import { scanCode } from '../wasm/code.ts';
import { readWasm, type WasmInfo } from '../wasm/read.ts';
import { Reader } from '../wasm/reader.ts';
import { name, uleb } from '../wasm/write.ts';

/** The exported global that holds the pages of a refused memory.grow (0: none refused). */
export const GROW_REFUSED_EXPORT = 'wasmdrv:grow-refused';
/** The module's start function, exported instead of run at instantiation. */
export const START_EXPORT = 'wasmdrv:start';
/** The name the appended function gets in the name section (fault stacks show it). */
export const GROW_NAME = 'wasmdrv:memory.grow (checked)';
/** Export names a driver may not use: the host's. */
const RESERVED_PREFIX = 'wasmdrv:';

/** Section order of the binary format: custom sections aside, every section comes at its rank. */
const RANK = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
const rank = (id: number) => RANK.indexOf(id);

const done = new WeakMap<Uint8Array, Uint8Array>();

/**
 * `bytes` with every memory.grow on memory 0 turned into the checked call; `bytes` itself when there
 * is none, when the module has no 32-bit memory 0, or when it is not valid Wasm (its compile names
 * the problem). Throws LoadError when the module exports a name of the host's (`wasmdrv:...`).
 */
export function checkedGrow(bytes: Uint8Array, label: string): Uint8Array<ArrayBuffer> {
  const known = done.get(bytes);
  if (known) return known as Uint8Array<ArrayBuffer>;
  const out = rewrite(bytes, label) ?? bytes;
  done.set(bytes, out);
  done.set(out, out); // rewritten bytes are final (they carry the host's exports)
  return out as Uint8Array<ArrayBuffer>;
}

interface Section {
  id: number;
  /** The whole section, id byte to end. */
  start: number;
  end: number;
  /** Its payload (after the id and size). */
  body: number;
}

function rewrite(bytes: Uint8Array, label: string): Uint8Array | undefined {
  let info: WasmInfo;
  try {
    info = readWasm(bytes);
  } catch {
    return undefined;
  }
  // The host's names, whether or not this module gets them: a driver exporting its own
  // `wasmdrv:grow-refused` could otherwise pass its traps off as refused grows.
  const reserved = info.exports.find((e) => e.name.startsWith(RESERVED_PREFIX));
  if (reserved) throw new LoadError(`${label}: export ${reserved.name} is reserved for the host (${RESERVED_PREFIX}*)`);
  const sections: Section[] = info.sections.map((s) => {
    const r = new Reader(bytes, s.start + 1, s.end);
    r.u32();
    return { id: s.id, start: s.start, end: s.end, body: r.pos };
  });
  const section = (id: number) => sections.find((s) => s.id === id);
  // Memory 0: the first imported memory, else the first the module defines (which the linker refuses,
  // but the rewrite does not depend on that). A 64-bit memory's grow takes an i64: left alone.
  const imported = info.imports.find((i) => i.desc.kind === 'memory');
  let memory64: boolean | undefined = imported?.desc.kind === 'memory' ? imported.desc.memory64 : undefined;
  if (memory64 === undefined && section(5)) {
    try {
      const r = new Reader(bytes, section(5)!.body, section(5)!.end);
      if (r.u32() > 0) memory64 = r.limits().memory64;
    } catch {
      return undefined;
    }
  }
  if (memory64 !== false || !info.code) return undefined;
  const code = section(10)!;

  // Every body, and the memory.grow instructions in it.
  const bodies: { start: number; end: number; grows: number[] }[] = [];
  let total = 0;
  try {
    const r = new Reader(bytes, code.body, code.end);
    for (let n = r.u32(); n > 0; n--) {
      const size = r.u32();
      const start = r.pos;
      const b = new Reader(bytes, start, start + size);
      for (let groups = b.u32(); groups > 0; groups--) {
        b.u32();
        b.valtype();
      }
      const grows: number[] = [];
      scanCode(b, [], false, grows);
      bodies.push({ start, end: start + size, grows });
      total += grows.length / 2;
      r.pos = start + size;
    }
  } catch {
    return undefined;
  }
  if (total === 0) return undefined;
  // Only a valid module: an index the module names beyond its own must not come to mean ours.
  if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) return undefined;
  const start = section(8);

  const countOf = (s: Section | undefined) => (s ? new Reader(bytes, s.body, s.end).u32() : 0);
  const importedGlobals = info.imports.filter((i) => i.desc.kind === 'global').length;
  const typeIndex = countOf(section(1));
  const growFunc = info.importedFunctions + countOf(section(3));
  const refusedGlobal = importedGlobals + countOf(section(6));

  /** A vector section with `extra` items appended to what it holds (or a new one). */
  const appended = (id: number, extra: number[][]): Uint8Array => {
    const s = section(id);
    if (!s) return sectionOf(id, [uleb(extra.length), ...extra]);
    const r = new Reader(bytes, s.body, s.end);
    const n = r.u32();
    return sectionOf(id, [uleb(n + extra.length), bytes.subarray(r.pos, s.end), ...extra]);
  };
  const exports: number[][] = [[...name(GROW_REFUSED_EXPORT), 0x03, ...uleb(refusedGlobal)]];
  if (start) {
    const r = new Reader(bytes, start.body, start.end);
    exports.push([...name(START_EXPORT), 0x00, ...uleb(r.u32())]);
  }
  const growBody = [
    ...[0x01, 0x01, 0x7f], // one local: i32
    ...[0x20, 0x00, 0x40, 0x00, 0x22, 0x01], // local.get 0, memory.grow 0, local.tee 1
    ...[0x41, 0x7f, 0x47, 0x04, 0x40], // i32.const -1, i32.ne, if
    ...[0x20, 0x01, 0x0f, 0x0b], //   local.get 1, return, end
    ...[0x20, 0x00, 0x24, ...uleb(refusedGlobal), 0x00, 0x0b], // local.get 0, global.set, unreachable, end
  ];
  const call = [0x10, ...uleb(growFunc)];
  const codeParts: ArrayLike<number>[] = [uleb(bodies.length + 1)];
  for (const b of bodies) {
    if (b.grows.length === 0) {
      codeParts.push(uleb(b.end - b.start), bytes.subarray(b.start, b.end));
      continue;
    }
    const parts: ArrayLike<number>[] = [];
    let at = b.start;
    for (let i = 0; i < b.grows.length; i += 2) {
      parts.push(bytes.subarray(at, b.grows[i]), call);
      at = b.grows[i + 1];
    }
    parts.push(bytes.subarray(at, b.end));
    const body = concat(parts);
    codeParts.push(uleb(body.length), body);
  }
  codeParts.push(uleb(growBody.length), growBody);

  const replaced = new Map<number, Uint8Array>([
    [1, appended(1, [[0x60, 0x01, 0x7f, 0x01, 0x7f]])], // (i32) -> (i32)
    [3, appended(3, [uleb(typeIndex)])],
    [6, appended(6, [[0x7f, 0x01, 0x41, 0x00, 0x0b]])], // (mut i32) (i32.const 0)
    [7, appended(7, exports)],
    [8, new Uint8Array()], // the start function is exported instead
    [10, sectionOf(10, codeParts)],
  ]);
  const out: ArrayLike<number>[] = [bytes.subarray(0, 8)];
  // A module without a global or export section gets one, at its place in the section order.
  const missing = [6, 7].filter((id) => !section(id));
  const flushBefore = (id: number) => {
    while (missing.length && (id < 0 || rank(missing[0]) < rank(id))) out.push(replaced.get(missing.shift()!)!);
  };
  let named = false;
  for (const s of sections) {
    if (s.id === 0) {
      const names: boolean = !named && isNameSection(bytes, s);
      named ||= names;
      out.push(names ? withGrowName(bytes, s, growFunc) : bytes.subarray(s.start, s.end));
      continue;
    }
    flushBefore(s.id);
    out.push(replaced.get(s.id) ?? bytes.subarray(s.start, s.end));
  }
  flushBefore(-1);
  // No name section: one naming only the checked grow, so that a stack shows where a refusal trapped.
  if (!named) {
    const sub = concat([uleb(1), uleb(growFunc), name(GROW_NAME)]);
    out.push(sectionOf(0, [name('name'), [1], uleb(sub.length), sub]));
  }
  return concat(out);
}

function concat(parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A section: id, byte length, the parts of its payload. */
function sectionOf(id: number, parts: ArrayLike<number>[]): Uint8Array {
  const body = concat(parts);
  return concat([[id], uleb(body.length), body]);
}

function isNameSection(bytes: Uint8Array, s: Section): boolean {
  try {
    return new Reader(bytes, s.body, s.end).name() === 'name';
  } catch {
    return false;
  }
}

/** The name section with the appended function named (subsection 1, whose indices ascend: ours is last). */
function withGrowName(bytes: Uint8Array, s: Section, func: number): Uint8Array {
  try {
    const r = new Reader(bytes, s.body, s.end);
    r.name();
    const out: ArrayLike<number>[] = [bytes.subarray(s.body, r.pos)];
    while (r.pos < r.end) {
      const at = r.pos;
      const sub = r.byte();
      const size = r.u32();
      const end = r.pos + size;
      if (end > r.end) return bytes.subarray(s.start, s.end);
      if (sub !== 1) {
        out.push(bytes.subarray(at, end));
      } else {
        const n = new Reader(bytes, r.pos, end);
        const count = n.u32();
        const payload = concat([uleb(count + 1), bytes.subarray(n.pos, end), uleb(func), name(GROW_NAME)]);
        out.push([1], uleb(payload.length), payload);
      }
      r.pos = end;
    }
    return sectionOf(0, out);
  } catch {
    return bytes.subarray(s.start, s.end); // a malformed name section only costs names
  }
}
