// The instruction walker: steps through a function body or a constant expression opcode by opcode
// (so it stays in step with the stream) and notes every use of a memory index other than 0.

import { type Reader, VALTYPES, WasmFormatError } from './reader.ts';

/** A use of a memory index other than 0: the memory, the byte offset of the instruction, what it is. */
export interface MemoryUse {
  memory: number;
  at: number;
  what: string;
}

/**
 * Walk instructions from r.pos to r.end, noting every memory index other than 0 (and, into `grows`,
 * the start and end offsets of every `memory.grow` on memory 0: host/sandbox/memory-grow.ts). Every opcode up to
 * Wasm 2.0 plus tail calls, exceptions, SIMD (incl. relaxed) and threads is decoded, so the walk
 * stays in step with the instruction stream; an opcode it does not know is a format error (a module
 * we cannot read is refused, not guessed at).
 */
export function scanCode(r: Reader, uses: MemoryUse[], stopAtEnd = false, grows?: number[]): void {
  const mem = (at: number, what: string, idx: number) => {
    if (idx !== 0) uses.push({ memory: idx, at, what });
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
      case 0x40: {
        const idx = r.u32();
        mem(at, 'memory.grow', idx);
        if (idx === 0) grows?.push(at, r.pos);
        break;
      }
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
export function skipExpr(s: Reader, uses: MemoryUse[]): void {
  scanCode(s, uses, true);
}
