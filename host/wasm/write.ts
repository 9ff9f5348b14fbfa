// The host's one Wasm writer: the encoders of the modules it generates (the register gate,
// gate.ts), and the section edits of packages (manifest and signature, package/sign.ts; the packaging
// script reaches them through package/pack.ts). Section edits work on the sections as readWasm
// (read.ts) finds them, so what is signed and what is verified are cut by the same parser.

import { readWasm, type WasmInfo } from './read.ts';

/** The 8 bytes every Wasm 1.0 binary starts with: "\0asm" and version 1. */
export const WASM_HEADER: readonly number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

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

/** Signed LEB128 of a 32-bit integer (i32.const immediates). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** A name: its UTF-8 length, then its bytes. */
export function name(s: string): number[] {
  const bytes = new TextEncoder().encode(s);
  return [...uleb(bytes.length), ...bytes];
}

/** A vector: the number of items, then the items. */
export function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** A section: id, byte length, body. */
export function encodeSection(id: number, body: number[] | Uint8Array): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** A custom section (id 0): its name, then the payload. */
export function encodeCustomSection(sectionName: string, payload: Uint8Array): Uint8Array {
  const head = name(sectionName);
  const size = head.length + payload.length;
  const lead = [0, ...uleb(size), ...head];
  const out = new Uint8Array(lead.length + payload.length);
  out.set(lead, 0);
  out.set(payload, lead.length);
  return out;
}

/** The module with a custom section called `name` appended after its last section. */
export function appendCustomSection(bytes: Uint8Array, sectionName: string, payload: Uint8Array): Uint8Array {
  const sec = encodeCustomSection(sectionName, payload);
  const out = new Uint8Array(bytes.length + sec.length);
  out.set(bytes, 0);
  out.set(sec, bytes.length);
  return out;
}

/**
 * The module with every custom section called `name` removed: the header and the other sections'
 * bytes, exactly as `info` (readWasm of these bytes; read here when not given) locates them.
 */
export function withoutCustomSections(bytes: Uint8Array, sectionName: string, info?: WasmInfo): Uint8Array {
  const keep = (info ?? readWasm(bytes)).sections.filter((sec) => !(sec.id === 0 && sec.name === sectionName));
  const out = new Uint8Array(8 + keep.reduce((n, sec) => n + sec.end - sec.start, 0));
  out.set(bytes.subarray(0, 8), 0);
  let o = 8;
  for (const sec of keep) {
    out.set(bytes.subarray(sec.start, sec.end), o);
    o += sec.end - sec.start;
  }
  return out;
}
