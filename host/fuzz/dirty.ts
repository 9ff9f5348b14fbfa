// Store tracking for the fuzzer's dirty-chunk restores (host/fuzz/snapshot.ts): the code the
// instrumenter (host/fuzz/instrument.ts) wraps around every store and bulk memory operation so that
// it sets its chunks' bits in the `__fz_dirty` global (chunks of 2^`__fz_dshift` bytes).

import type { Binaryen, BinaryenModule } from './binaryen.ts';

type AddVar = { _BinaryenFunctionAddVar(f: number, t: number): number };

export class StoreMarks {
  private fn = 0;
  /** The function's scratch local for store addresses (-1: none yet). */
  private tmp = -1;
  /** Its locals for a bulk operation's destination and size. */
  private tDest = -1;
  private tSize = -1;
  private readonly i64c: (v: bigint) => number;

  constructor(
    private readonly b: Binaryen,
    private readonly m: BinaryenModule,
  ) {
    this.i64c = m.i64.const as unknown as (v: bigint) => number;
  }

  /** Instrumenting function `fn` next: its scratch locals are made when first needed. */
  startFunction(fn: number): void {
    this.fn = fn;
    this.tmp = -1;
    this.tDest = -1;
    this.tSize = -1;
  }

  private addVar(t: number): number {
    return (this.b as unknown as AddVar)._BinaryenFunctionAddVar(this.fn, t);
  }

  private bit(addr: number): number {
    const m = this.m;
    return m.i64.shl(this.i64c(1n), m.i64.extend_u(m.i32.shr_u(addr, m.global.get('__fz_dshift', this.b.i32))));
  }

  /** A store at ptr+offset of `bytes` bytes: mark the chunks of its first and last byte, then yield ptr. */
  store(ptr: number, offset: number, bytes: number): number {
    const { m, b } = this;
    const i32 = b.i32;
    if (this.tmp < 0) this.tmp = this.addVar(i32);
    const tmp = this.tmp;
    const at = (k: number) => m.i32.add(m.local.get(tmp, i32), m.i32.const(offset + k));
    return m.block(
      null,
      [
        m.local.set(tmp, ptr),
        m.global.set(
          '__fz_dirty',
          m.i64.or(m.global.get('__fz_dirty', b.i64), m.i64.or(this.bit(at(0)), this.bit(at(bytes - 1)))),
        ),
        m.local.get(tmp, i32),
      ],
      i32,
    );
  }

  /**
   * A bulk operation (fill, copy, init): its dest operand is kept in a local, and its size operand
   * (evaluated last, bulkSize) marks the chunks dest .. dest+size-1 before it yields the size.
   */
  bulkDest(dest: number): number {
    const i32 = this.b.i32;
    if (this.tDest < 0) {
      this.tDest = this.addVar(i32);
      this.tSize = this.addVar(i32);
    }
    return this.m.local.tee(this.tDest, dest, i32);
  }

  bulkSize(size: number): number {
    const { m, b, i64c, tDest, tSize } = this;
    const i32 = b.i32;
    const sh = () => m.global.get('__fz_dshift', i32);
    const lo = () => m.i32.shr_u(m.local.get(tDest, i32), sh());
    const hi = m.i32.shr_u(
      m.i32.sub(m.i32.add(m.local.get(tDest, i32), m.local.get(tSize, i32)), m.i32.const(1)),
      sh(),
    );
    const cnt = m.i64.extend_u(m.i32.add(m.i32.sub(hi, lo()), m.i32.const(1)));
    const run = m.i64.shl(m.i64.sub(m.i64.shl(i64c(1n), cnt), i64c(1n)), m.i64.extend_u(lo()));
    const cntAgain = m.i32.add(
      m.i32.sub(
        m.i32.shr_u(m.i32.sub(m.i32.add(m.local.get(tDest, i32), m.local.get(tSize, i32)), m.i32.const(1)), sh()),
        lo(),
      ),
      m.i32.const(1),
    );
    const bits = m.select(m.i32.ge_u(cntAgain, m.i32.const(64)), i64c(-1n), run);
    return m.block(
      null,
      [
        m.local.set(tSize, size),
        m.if(m.local.get(tSize, i32), m.global.set('__fz_dirty', m.i64.or(m.global.get('__fz_dirty', b.i64), bits))),
        m.local.get(tSize, i32),
      ],
      i32,
    );
  }
}
