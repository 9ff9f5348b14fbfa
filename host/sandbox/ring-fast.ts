// The doorbell fast path: the descriptor firewall's tail write and head read as Wasm functions added to
// the driver's module by the inline register gate (inline-rewrite.ts; design in docs/design.md).
//
// Per ring (ring-state.ts FastRing, state in the block at the start of memory wasmdrv-gate.rings):
//   check(newTail) -> fresh | -1   the same tests, in the same arithmetic, as RingFirewall.doorbell and
//                                  checkDescriptor: block open, newTail < count, shadow in a window, the
//                                  device's head inside the ring, no more handed over than are free; then
//                                  each new descriptor is copied ONCE from the shadow (memory 0) into the
//                                  real ring and checked FROM THAT COPY (command bits, every buffer address
//                                  + length wholly inside one window of the table, exact u64 arithmetic).
//                                  Nothing the device or JavaScript can observe changes: the slots written
//                                  are past the device's tail, and the state is untouched. -1 on anything:
//                                  the caller then calls the JavaScript import, which decides from scratch.
//   commit(newTail, fresh)         checked += fresh, tail = newTail, the device's tail register written
//                                  (a seq-cst store: after the real ring's), then sync.
//   sync() -> head | -1            write-backs of [synced, head) copied from the real ring into the shadow,
//                                  as RingFirewall.syncRing; -1 (JavaScript decides) when the device's
//                                  head lies outside the ring or the shadow is in no window.
//
// These functions must be added while the module still has ONE memory: loads and stores that name no
// memory then resolve to memory 0, the driver's own, whatever its name; the host's memories are named.

import type binaryenNs from 'binaryen';
import {
  MAX_WINDOWS,
  R,
  RING_BYTES,
  RINGS_AT,
  ST_ENABLED,
  ST_WINDOWS,
  WINDOW_BYTES,
  WINDOWS_AT,
  type FastRing,
} from './ring-state.ts';

type Binaryen = typeof binaryenNs;
type Expr = binaryenNs.ExpressionRef;

export interface RingFuncs {
  check: string;
  commit: string;
  sync: string;
}

export function addRingFunctions(
  binaryen: Binaryen,
  m: binaryenNs.Module,
  rings: FastRing[],
  /** The memory names: the rings memory and each region's. */
  mem: { rings: string; region: (index: number) => string },
  fresh: (base: string) => string,
): Map<number, RingFuncs> {
  const i32 = binaryen.i32,
    i64 = binaryen.i64;
  const c = (n: number) => m.i32.const(n);
  const RM = mem.rings;
  const out = new Map<number, RingFuncs>();
  for (const ring of rings) {
    const S = RINGS_AT + ring.slot * RING_BYTES;
    const REG = mem.region(ring.region);
    const size = ring.descriptorSize;
    const st = (field: number) => m.i32.load(S + field, 0, c(0), RM);
    const setSt = (field: number, v: Expr) => m.i32.store(S + field, 0, c(0), v, RM);
    const get = (i: number, t = i32) => m.local.get(i, t);
    const set = (i: number, v: Expr) => m.local.set(i, v);
    const head = () => m.i32.and(m.i32.atomic.load(0, c(ring.head), REG), c(0xffff));
    const next = (i: number, n: number) =>
      set(i, m.select(m.i32.eq(m.i32.add(get(i), c(1)), get(n)), c(0), m.i32.add(get(i), c(1))));
    const loadRM = (width: number, at: Expr, off: number, t: 'i32' | 'i64'): Expr => {
      const L = t === 'i64' ? m.i64 : m.i32;
      if (width === 1) return L.load8_u(off, 0, at, RM);
      if (width === 2) return L.load16_u(off, 0, at, RM);
      if (width === 4) return t === 'i64' ? m.i64.load32_u(off, 0, at, RM) : m.i32.load(off, 0, at, RM);
      return m.i64.load(off, 0, at, RM);
    };

    // --- check(newTail) -> fresh | -1 ------------------------------------------------------------
    // 0 newTail; 1 n, 2 tail, 3 hd, 4 fresh, 5 shadow, 6 real, 7 i, 8 k, 9 w; 10 addr, 11 len, 12 wb, 13 wsz (i64)
    const [n, tail, hd, fr, sh, re, i, k, w, addr, len, wb, wsz] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
    const slow = (cond: Expr) => m.br('slow', cond);
    const copy: Expr[] = [];
    for (let b = 0; b + 8 <= size; b += 8) copy.push(m.i64.store(b, 0, get(re), m.i64.load(b, 0, get(sh)), RM));
    for (let b = size - (size % 8); b < size; b++)
      copy.push(m.i32.store8(b, 0, get(re), m.i32.load8_u(b, 0, get(sh)), RM));
    const checks: Expr[] = [];
    for (const cmd of ring.commands)
      checks.push(slow(m.i32.and(loadRM(cmd.width, get(re), cmd.offset, 'i32'), c(cmd.mask | 0))));
    for (const a of ring.addresses) {
      checks.push(set(addr, loadRM(a.width, get(re), a.offset, 'i64')));
      checks.push(
        set(
          len,
          a.fixedLen >= 0 ? m.i64.const(BigInt(a.fixedLen) as never) : loadRM(a.lenWidth, get(re), a.lenOffset, 'i64'),
        ),
      );
      checks.push(set(w, c(0)));
      const at = m.i32.add(c(WINDOWS_AT), m.i32.mul(get(w), c(WINDOW_BYTES)));
      checks.push(
        m.block('inside', [
          m.loop(
            'window',
            m.block(null, [
              slow(m.i32.ge_u(get(w), m.i32.load(ST_WINDOWS, 0, c(0), RM))),
              slow(m.i32.ge_u(get(w), c(MAX_WINDOWS))),
              set(wb, m.i64.load(0, 0, at, RM)),
              set(wsz, m.i64.load(8, 0, at, RM)),
              m.br(
                'inside',
                m.i32.and(
                  m.i32.and(m.i64.ge_u(get(addr, i64), get(wb, i64)), m.i64.le_u(get(len, i64), get(wsz, i64))),
                  m.i64.le_u(m.i64.sub(get(addr, i64), get(wb, i64)), m.i64.sub(get(wsz, i64), get(len, i64))),
                ),
              ),
              set(w, m.i32.add(get(w), c(1))),
              m.br('window'),
            ]),
          ),
        ]),
      );
    }
    const check = fresh(`wasmdrv-gate.ring${ring.slot}.check`);
    m.addFunction(
      check,
      binaryen.createType([i32]),
      i32,
      [i32, i32, i32, i32, i32, i32, i32, i32, i32, i64, i64, i64, i64],
      m.block(null, [
        m.block('slow', [
          slow(m.i32.eqz(m.i32.load(ST_ENABLED, 0, c(0), RM))),
          set(n, st(R.count)),
          slow(m.i32.ge_u(get(0), get(n))),
          slow(m.i32.lt_s(st(R.shadowAt), c(0))),
          set(tail, st(R.tail)),
          set(hd, head()),
          slow(m.i32.ge_u(get(hd), get(n))),
          slow(m.i32.ge_u(get(tail), get(n))),
          // fresh > n - 1 - pending: it would wrap onto descriptors the device owns
          set(fr, m.i32.rem_u(m.i32.sub(m.i32.add(get(0), get(n)), get(tail)), get(n))),
          slow(
            m.i32.gt_u(
              get(fr),
              m.i32.sub(m.i32.sub(get(n), c(1)), m.i32.rem_u(m.i32.sub(m.i32.add(get(tail), get(n)), get(hd)), get(n))),
            ),
          ),
          set(i, get(tail)),
          set(k, get(fr)),
          m.block('done', [
            m.loop(
              'next',
              m.block(null, [
                m.br('done', m.i32.eqz(get(k))),
                set(sh, m.i32.add(st(R.shadowAt), m.i32.mul(get(i), c(size)))),
                set(re, m.i32.add(st(R.realAt), m.i32.mul(get(i), c(size)))),
                // ONE copy out of the driver's memory; every check below reads the copy.
                ...copy,
                ...checks,
                next(i, n),
                set(k, m.i32.sub(get(k), c(1))),
                m.br('next'),
              ]),
            ),
          ]),
          m.return(get(fr)),
        ]),
        m.return(c(-1)),
      ]),
    );

    // --- sync() -> head | -1 ---------------------------------------------------------------------
    // locals: 0 hd, 1 n, 2 i, 3 shadow base, 4 real base, 5 sh, 6 re
    const wbs: Expr[] = [];
    for (const f of ring.writeBacks)
      for (let b = 0; b < f.width; b++)
        wbs.push(m.i32.store8(f.offset + b, 0, get(5), m.i32.load8_u(f.offset + b, 0, get(6), RM)));
    const sync = fresh(`wasmdrv-gate.ring${ring.slot}.sync`);
    m.addFunction(
      sync,
      binaryen.none,
      i32,
      [i32, i32, i32, i32, i32, i32, i32],
      m.block(null, [
        m.block('slow', [
          slow(m.i32.eqz(m.i32.load(ST_ENABLED, 0, c(0), RM))),
          set(0, head()),
          set(1, st(R.count)),
          slow(m.i32.ge_u(get(0), get(1))),
          set(2, st(R.synced)),
          m.if(
            m.i32.ne(get(2), get(0)),
            m.block(null, [
              set(3, st(R.shadowAt)),
              slow(m.i32.lt_s(get(3), c(0))),
              slow(m.i32.ge_u(get(2), get(1))),
              set(4, st(R.realAt)),
              m.loop(
                'copy',
                m.block(null, [
                  set(5, m.i32.add(get(3), m.i32.mul(get(2), c(size)))),
                  set(6, m.i32.add(get(4), m.i32.mul(get(2), c(size)))),
                  ...wbs,
                  next(2, 1),
                  m.br('copy', m.i32.ne(get(2), get(0))),
                ]),
              ),
              setSt(R.synced, get(0)),
            ]),
          ),
          m.return(get(0)),
        ]),
        m.return(c(-1)),
      ]),
    );

    // --- commit(newTail, fresh) ------------------------------------------------------------------
    const commit = fresh(`wasmdrv-gate.ring${ring.slot}.commit`);
    m.addFunction(
      commit,
      binaryen.createType([i32, i32]),
      binaryen.none,
      [],
      m.block(null, [
        m.f64.store(
          S + R.checked,
          0,
          c(0),
          m.f64.add(m.f64.load(S + R.checked, 0, c(0), RM), m.f64.convert_u.i32(get(1))),
          RM,
        ),
        setSt(R.tail, get(0)),
        m.i32.atomic.store(0, c(ring.tail), get(0), REG),
        m.drop(m.call(sync, [], i32)),
      ]),
    );
    out.set(ring.slot, { check, commit, sync });
  }
  return out;
}
