// Coverage and fuel instrumentation of a driver binary, for the fuzzer.
//
// Every function entry, every block/loop/if/else and the fall-through of every br_if sets its own
// coverage global to 1 (`i32.const 1; global.set $cov_k`); every loop head burns one unit of a fuel
// global and executes `unreachable` when it runs out, so an execution in the fuzzer's thread always
// ends. The new globals are appended after the module's own, so no index changes; they are exported as
// "__cov_<k>" and "__fuel". Also collects the i32 constants of the code: the mutator's dictionary.
// (binaryen.js's log-execution pass would hook only function entries and loops, so this walks the
// instructions itself.)

import { encodeSection, uleb } from '../wasm.ts';

export interface Instrumented {
  bytes: Uint8Array;
  blocks: number;
  /** i32.const values found in the code, for the dictionary. */
  constants: number[];
}

class R {
  constructor(public b: Uint8Array, public p = 0) {}
  u8(): number {
    if (this.p >= this.b.length) throw new Error('instrument: unexpected end of code');
    return this.b[this.p++];
  }
  u32(): number {
    let r = 0, s = 0, x;
    do {
      x = this.u8();
      r += (x & 0x7f) * 2 ** s;
      s += 7;
    } while (x & 0x80);
    return r;
  }
  s64(): number {
    let r = 0n, s = 0n, x;
    do {
      x = this.u8();
      r |= BigInt(x & 0x7f) << s;
      s += 7n;
    } while (x & 0x80);
    if (x & 0x40) r -= 1n << s;
    return Number(BigInt.asIntN(32, r));
  }
}

const leb = uleb;
const section = encodeSection;

/** Skip one instruction's immediates (opcode already read). Throws on what the fuzzer cannot handle. */
function skipImmediates(r: R, op: number, constants: number[]): void {
  if (op === 0x02 || op === 0x03 || op === 0x04) r.s64();
  else if (op === 0x0c || op === 0x0d || op === 0x10 || (op >= 0x20 && op <= 0x26) || op === 0xd2) r.u32();
  else if (op === 0x0e) {
    for (let n = r.u32(); n >= 0; n--) r.u32();
  } else if (op === 0x11) {
    r.u32();
    r.u32();
  } else if (op === 0x1c) {
    for (let n = r.u32(); n > 0; n--) r.u8();
  } else if (op >= 0x28 && op <= 0x3e) {
    r.u32();
    r.u32();
  } else if (op === 0x3f || op === 0x40 || op === 0xd0) r.u8();
  else if (op === 0x41) constants.push(r.s64());
  else if (op === 0x42) r.s64();
  else if (op === 0x43) r.p += 4;
  else if (op === 0x44) r.p += 8;
  else if (op === 0xfc) {
    const sub = r.u32();
    if (sub === 8) {
      r.u32();
      r.u8();
    } else if (sub === 9 || sub === 13 || (sub >= 15 && sub <= 17)) r.u32();
    else if (sub === 10) {
      r.u8();
      r.u8();
    } else if (sub === 11) r.u8();
    else if (sub === 12 || sub === 14) {
      r.u32();
      r.u32();
    }
  } else if (op === 0xfd || op === 0xfe || op === 0x12 || op === 0x13 || op === 0x06 || op === 0x07 || op === 0x08 || op === 0x09 || op === 0x18 || op === 0x19) {
    throw new Error(`instrument: opcode 0x${op.toString(16)} (SIMD, threads, exceptions or tail calls) is not supported by the fuzzer`);
  }
}

export function instrument(input: Uint8Array, fuel: number): Instrumented {
  const r = new R(input, 8);
  const sections: { id: number; body: Uint8Array }[] = [];
  let importedGlobals = 0;
  let ownGlobals = 0;
  while (r.p < input.length) {
    const id = r.u8();
    const size = r.u32();
    const body = input.subarray(r.p, r.p + size);
    if (id === 2) {
      const s = new R(body);
      for (let n = s.u32(); n > 0; n--) {
        for (let name = 0; name < 2; name++) {
          const len = s.u32(); // (not `s.p += s.u32()`: that reads s.p before u32() moves it)
          s.p += len;
        }
        const kind = s.u8();
        if (kind === 0) s.u32();
        else if (kind === 1) {
          s.u8();
          const f = s.u8();
          s.u32();
          if (f & 1) s.u32();
        } else if (kind === 2) {
          const f = s.u8();
          s.u32();
          if (f & 1) s.u32();
        } else {
          s.u8();
          s.u8();
          importedGlobals++;
        }
      }
    }
    if (id === 6) ownGlobals = new R(body).u32();
    sections.push({ id, body });
    r.p += size;
  }
  const constants: number[] = [];
  let blocks = 0;
  const firstNew = importedGlobals + ownGlobals;
  const fuelGlobal = firstNew; // then coverage globals follow
  const cov = (): number[] => [0x41, 0x01, 0x24, ...leb(fuelGlobal + 1 + blocks++)];
  const burn = (): number[] => [
    0x23, ...leb(fuelGlobal), 0x45, 0x04, 0x40, 0x00, 0x0b, // if (fuel == 0) unreachable
    0x23, ...leb(fuelGlobal), 0x41, 0x01, 0x6b, 0x24, ...leb(fuelGlobal), // fuel -= 1
  ];

  const code = sections.find((s) => s.id === 10);
  if (!code) throw new Error('instrument: the module has no code');
  const cr = new R(code.body);
  const count = cr.u32();
  const newCode: number[] = [...leb(count)];
  for (let f = 0; f < count; f++) {
    const size = cr.u32();
    const end = cr.p + size;
    const fr = new R(code.body.subarray(0, end), cr.p);
    const localsStart = fr.p;
    for (let n = fr.u32(); n > 0; n--) {
      fr.u32();
      fr.u8();
    }
    const out: number[] = [...code.body.subarray(localsStart, fr.p), ...cov()];
    while (fr.p < end) {
      const at = fr.p;
      const op = fr.u8();
      skipImmediates(fr, op, constants);
      out.push(...code.body.subarray(at, fr.p));
      if (op === 0x03) out.push(...burn(), ...cov());
      else if (op === 0x02 || op === 0x04 || op === 0x05 || op === 0x0d) out.push(...cov());
    }
    newCode.push(...leb(out.length), ...out);
    cr.p = end;
  }

  // globals: the fuel, then one per covered block
  const g = sections.find((s) => s.id === 6);
  const newGlobals: number[] = [0x7f, 0x01, 0x41, ...sLeb(fuel), 0x0b];
  for (let k = 0; k < blocks; k++) newGlobals.push(0x7f, 0x01, 0x41, 0x00, 0x0b);
  const ownGlobalItems = g ? g.body.subarray(new R(g.body).u32() === ownGlobals ? leb(ownGlobals).length : 0) : new Uint8Array();
  const globalBody = [...leb(ownGlobals + blocks + 1), ...ownGlobalItems, ...newGlobals];
  // exports: the module's own, then __fuel and __cov_k
  const e = sections.find((s) => s.id === 7);
  const er = e ? new R(e.body) : undefined;
  const ownExports = er ? er.u32() : 0;
  const exportItems: number[] = er ? [...e!.body.subarray(er.p)] : [];
  const name = (s: string) => {
    const b = new TextEncoder().encode(s);
    return [...leb(b.length), ...b];
  };
  exportItems.push(...name('__fuel'), 0x03, ...leb(fuelGlobal));
  for (let k = 0; k < blocks; k++) exportItems.push(...name(`__cov_${k}`), 0x03, ...leb(fuelGlobal + 1 + k));
  const exportBody = [...leb(ownExports + blocks + 1), ...exportItems];

  const out: number[] = [...input.subarray(0, 8)];
  let wroteGlobals = false;
  let wroteExports = false;
  for (const s of sections) {
    if (!wroteGlobals && s.id !== 0 && s.id > 6 && s.id !== 12) {
      out.push(...section(6, globalBody));
      wroteGlobals = true;
    }
    if (!wroteExports && s.id !== 0 && s.id > 7 && s.id !== 12) {
      out.push(...section(7, exportBody));
      wroteExports = true;
    }
    if (s.id === 6 || s.id === 7) continue;
    if (s.id === 10) out.push(...section(10, newCode));
    else out.push(...section(s.id, s.body));
  }
  return { bytes: Uint8Array.from(out), blocks, constants: [...new Set(constants)] };
}

function sLeb(n: number): number[] {
  const o: number[] = [];
  let v = BigInt(n);
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && !(b & 0x40)) || (v === -1n && b & 0x40)) {
      o.push(b);
      return o;
    }
    o.push(b | 0x80);
  }
}
