// The doorbell fast path: the descriptor firewall's tail write and head read as Wasm functions added to
// the driver's module by the inline register gate (inline-rewrite.ts; design in docs/design.md).
//
// Per ring (ring-state.ts FastRing, state in the block at the start of memory wasmdrv-gate.rings):
//   check(newTail) -> fresh | -1   the tests of RingFirewall.doorbell and checkDescriptor: block open,
//                                  newTail < count, shadow in a window, no more handed over than are free
//                                  counted from R.seen (the head last read: stricter than the device's
//                                  head, which only moves on from there; only if that fails is the head
//                                  register read, checked as deviceHead does, and the room counted from
//                                  it); then each new descriptor's words are loaded ONCE from the shadow
//                                  (memory 0) into locals, stored into the real ring and checked from
//                                  those locals (command bits, every buffer address + length wholly
//                                  inside one window of the table, the last hit first, exact u64).
//                                  Nothing the device or JavaScript can observe changes: the slots written
//                                  are past the device's tail, and the state is untouched but R.seen (a
//                                  sound observation). -1 on anything: the caller then calls the
//                                  JavaScript import, which decides from scratch.
//   commit(newTail, fresh)         checked += fresh, tail = newTail, the device's tail register written
//                                  (a fence, then a plain store: after the real ring's), then sync.
//   sync() -> head | -1            write-backs of [synced, head) (the bytes the manifest names, adjacent
//                                  ones merged) copied from the real ring into the shadow, as
//                                  RingFirewall.syncRing; -1 (JavaScript decides, and names a lying
//                                  device) when the head lies outside the ring or outside [seen, tail],
//                                  or the shadow is in no window.
//
// Both loops walk their slots in at most two runs of adjacent ones (the second from slot 0 when the range
// wraps), each two slots per loop turn, an odd count's first alone (`pairs`): V8's loop interrupt check
// and memory-base reloads are then paid once per two. Each slot of a pair has code of its own.
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
    const loadRM = (width: number, at: Expr, off: number, t: 'i32' | 'i64'): Expr => {
      const L = t === 'i64' ? m.i64 : m.i32;
      if (width === 1) return L.load8_u(off, 0, at, RM);
      if (width === 2) return L.load16_u(off, 0, at, RM);
      if (width === 4) return t === 'i64' ? m.i64.load32_u(off, 0, at, RM) : m.i32.load(off, 0, at, RM);
      return m.i64.load(off, 0, at, RM);
    };

    /** local `to` := (local a - local b) mod local nn, for a, b in [0, nn): no division (a - b, plus nn when negative). */
    const modSub = (to: number, a: number, b: number, nn: number): Expr[] => [
      set(to, m.i32.sub(get(a), get(b))),
      set(to, m.select(m.i32.lt_s(get(to), c(0)), m.i32.add(get(to), get(nn)), get(to))),
    ];

    /**
     * One run of adjacent slots, two per loop turn: from local `a` (shadow) and `b` (the real ring
     * beside it) up to `end` (shadow), `body(off, tag)` for the slot at a + off. An odd count first takes
     * one alone; then pairs, so V8's loop interrupt check and the memory-base reloads after it are paid
     * once per two slots. The slots are visited in order, each once.
     */
    const pairs = (a: number, b: number, end: number, body: (off: number, tag: string) => Expr[], name: string) => {
      const step = (k: number) => [set(a, m.i32.add(get(a), c(k * size))), set(b, m.i32.add(get(b), c(k * size)))];
      const bytes = m.i32.sub(get(end), get(a));
      const odd = (size & (size - 1)) === 0 ? m.i32.and(bytes, c(size)) : m.i32.and(m.i32.div_u(bytes, c(size)), c(1));
      return [
        m.if(odd, m.block(null, [...body(0, `${name}1`), ...step(1)])),
        m.if(
          m.i32.ne(get(a), get(end)),
          m.loop(
            name,
            m.block(null, [
              ...body(0, `${name}A`),
              ...body(size, `${name}B`),
              ...step(2),
              m.br(name, m.i32.ne(get(a), get(end))),
            ]),
          ),
        ),
      ];
    };

    // --- check(newTail) -> fresh | -1 ------------------------------------------------------------
    // 0 newTail; 1 n, 2 tail, 3 hd, 4 fresh, 5 p (shadow), 6 q (real), 7 pe (segment end), 8 k, 9 w,
    // 10 i; 11 addr, 12 len, 13 wsz (i64); 14 shAt, 15 reAt, 16 windows, 17 pending, 18 seen; 19..
    // the descriptor's words (i64); then per buffer-address field a: wb, lim (i64).
    const [n, tail, hd, fr, p, q, pe, k, w, i, addr, len, wsz] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
    const [shAt, reAt, nwin, pend, syn] = [14, 15, 16, 17, 18];
    const words = Math.floor(size / 8);
    const word = (j: number) => 19 + j;
    const wbOf = (a: number) => 19 + words + 2 * a;
    const limOf = (a: number) => 20 + words + 2 * a;
    const slow = (cond: Expr) => m.br('slow', cond);
    const I64 = (v: bigint) => m.i64.const(v as never);
    // One descriptor's copy and checks, for the slot at p + off (shadow) and q + off (real ring): `off`
    // goes into the loads' and stores' static offsets, so the second of a pair costs no address
    // arithmetic. Fresh expressions per call (binaryen trees are not shared); `tag` keeps labels unique.
    // Both of a pair use the same word locals and the same last-hit window, one after the other: the
    // second is checked from ITS copy, against the window the first left (a hit or a walk, as in a
    // loop of one).
    const inWord = (offset: number, width: number) =>
      Math.floor(offset / 8) < words && Math.floor((offset + width - 1) / 8) === Math.floor(offset / 8);
    const winOk = (b: number, sz: number) => m.i64.gt_u(m.i64.add(get(b, i64), get(sz, i64)), get(b, i64));
    const inits: Expr[] = [];
    for (const [ai, a] of ring.addresses.entries()) {
      const fixed = a.fixedLen >= 0;
      const L = () => I64(BigInt(Math.max(a.fixedLen, 0)));
      const [wb, lim] = [wbOf(ai), limOf(ai)];
      // the first window, as the last hit (else the doorbell goes slow: JavaScript decides)
      inits.push(
        set(wb, m.i64.load(WINDOWS_AT, 0, c(0), RM)),
        set(lim, m.i64.load(WINDOWS_AT + 8, 0, c(0), RM)),
        slow(m.i32.eqz(winOk(wb, lim))),
      );
      if (fixed) inits.push(slow(m.i64.lt_u(get(lim, i64), L())), set(lim, m.i64.sub(get(lim, i64), L())));
    }
    const one = (off: number, tag: string): Expr[] => {
      // ONE read of each descriptor word out of the driver's memory, into a local, stored into the real
      // ring; the checks read the fields from those locals: the very values stored.
      const out: Expr[] = [];
      for (let j = 0; j < words; j++) {
        out.push(set(word(j), m.i64.load(off + j * 8, 0, get(p))));
        out.push(m.i64.store(off + j * 8, 0, get(q), get(word(j), i64), RM));
      }
      for (let b = words * 8; b < size; b++)
        out.push(m.i32.store8(off + b, 0, get(q), m.i32.load8_u(off + b, 0, get(p)), RM));
      /** A field of the copy as i64 (zero-extended): from its word's local, else from the real ring. */
      const field = (offset: number, width: number): Expr => {
        if (!inWord(offset, width)) return loadRM(width, get(q), off + offset, 'i64');
        const j = Math.floor(offset / 8);
        const shifted = offset % 8 ? m.i64.shr_u(get(word(j), i64), I64(BigInt(8 * (offset % 8)))) : get(word(j), i64);
        return width === 8 ? shifted : m.i64.and(shifted, I64((1n << BigInt(8 * width)) - 1n));
      };
      for (const cmd of ring.commands) {
        // the bits that must be clear, tested in place in their word (no shift), else from the copy
        const bits = inWord(cmd.offset, cmd.width)
          ? m.i64.and(
              get(word(Math.floor(cmd.offset / 8)), i64),
              I64(BigInt(cmd.mask >>> 0) << BigInt(8 * (cmd.offset % 8))),
            )
          : m.i64.and(field(cmd.offset, cmd.width), I64(BigInt(cmd.mask >>> 0)));
        out.push(slow(m.i64.ne(bits, I64(0n))));
      }
      // The buffer checks. Per address field, the window its last buffer lay in: wb its bus address and
      // lim = its size minus the fixed length (a length field: its size), kept only for a window with
      // wb + size < 2^64 (and room for the fixed length). Then, for addr in u64, (addr - wb) mod 2^64 <=
      // lim - len holds exactly when wb <= addr and addr + len <= wb + size: addr < wb wraps to at least
      // 2^64 - wb > size >= lim - len. One subtraction and one comparison per buffer on a hit (two with a
      // length field); on a miss the whole table, each window tested exactly (inside()).
      for (const [ai, a] of ring.addresses.entries()) {
        const fixed = a.fixedLen >= 0;
        const L = () => I64(BigInt(Math.max(a.fixedLen, 0)));
        const [wb, lim] = [wbOf(ai), limOf(ai)];
        out.push(set(addr, field(a.offset, a.width)));
        if (!fixed) out.push(set(len, field(a.lenOffset, a.lenWidth)));
        const at = () => m.i32.add(c(WINDOWS_AT), m.i32.mul(get(w), c(WINDOW_BYTES)));
        const bus = () => m.i64.load(0, 0, at(), RM);
        /** addr + len wholly inside the window at w (bus, size in wsz), in exact u64 arithmetic. */
        const ln = () => (fixed ? L() : get(len, i64));
        const inside = () =>
          m.i32.and(
            m.i32.and(m.i64.ge_u(get(addr, i64), bus()), m.i64.le_u(ln(), get(wsz, i64))),
            m.i64.le_u(m.i64.sub(get(addr, i64), bus()), m.i64.sub(get(wsz, i64), ln())),
          );
        const [hit, walk] = [`hit${ai}${tag}`, `walk${ai}${tag}`];
        const d = m.i64.sub(get(addr, i64), get(wb, i64));
        out.push(
          m.block(hit, [
            fixed
              ? m.br(hit, m.i64.le_u(d, get(lim, i64)))
              : m.if(
                  m.i64.le_u(get(len, i64), get(lim, i64)),
                  m.br(hit, m.i64.le_u(d, m.i64.sub(get(lim, i64), get(len, i64)))),
                ),
            set(w, c(0)),
            m.loop(
              walk,
              m.block(null, [
                slow(m.i32.ge_u(get(w), get(nwin))),
                set(wsz, m.i64.load(8, 0, at(), RM)),
                m.if(
                  inside(),
                  m.block(null, [
                    // the window becomes the last hit: only one that passes winOk (else slow)
                    set(wb, bus()),
                    slow(m.i32.eqz(winOk(wb, wsz))),
                    set(lim, fixed ? m.i64.sub(get(wsz, i64), L()) : get(wsz, i64)),
                    m.br(hit),
                  ]),
                ),
                set(w, m.i32.add(get(w), c(1))),
                m.br(walk),
              ]),
            ),
          ]),
        );
      }
      return out;
    };
    const check = fresh(`wasmdrv-gate.ring${ring.slot}.check`);
    m.addFunction(
      check,
      binaryen.createType([i32]),
      i32,
      [
        ...Array<number>(10).fill(i32),
        i64,
        i64,
        i64,
        ...Array<number>(5).fill(i32),
        ...Array<number>(words + 2 * ring.addresses.length).fill(i64),
      ],
      m.block(null, [
        m.block('slow', [
          slow(m.i32.eqz(m.i32.load(ST_ENABLED, 0, c(0), RM))),
          set(n, st(R.count)),
          slow(m.i32.ge_u(get(0), get(n))),
          set(shAt, st(R.shadowAt)),
          slow(m.i32.lt_s(get(shAt), c(0))),
          set(reAt, st(R.realAt)),
          // -1 (no real ring in this memory) would wrap the stores into the state block itself
          slow(m.i32.lt_s(get(reAt), c(0))),
          set(nwin, m.i32.load(ST_WINDOWS, 0, c(0), RM)),
          slow(m.i32.eqz(get(nwin))),
          slow(m.i32.gt_u(get(nwin), c(MAX_WINDOWS))),
          set(tail, st(R.tail)),
          slow(m.i32.ge_u(get(tail), get(n))),
          ...modSub(fr, 0, tail, n),
          // The head last seen (R.seen): the device's head has moved from there towards the tail, never
          // past it, so what is free from it is at most what is free: a stricter test, no device read.
          set(syn, st(R.seen)),
          slow(m.i32.ge_u(get(syn), get(n))),
          set(hd, get(syn)),
          ...modSub(pend, tail, hd, n),
          // fresh > n - 1 - pending: it would wrap onto descriptors the device owns (as last seen); then
          // the device's head itself decides, as in JavaScript: inside the ring and between the head
          // last seen and the tail (else the device lies: JavaScript names it), and room from there.
          m.if(
            m.i32.gt_u(get(fr), m.i32.sub(m.i32.sub(get(n), c(1)), get(pend))),
            m.block(null, [
              set(hd, head()),
              slow(m.i32.ge_u(get(hd), get(n))),
              ...modSub(k, hd, syn, n),
              ...modSub(i, tail, syn, n),
              slow(m.i32.gt_u(get(k), get(i))),
              // a sound observation, kept whatever the test below decides (nothing else changes)
              setSt(R.seen, get(hd)),
              ...modSub(pend, tail, hd, n),
              slow(m.i32.gt_u(get(fr), m.i32.sub(m.i32.sub(get(n), c(1)), get(pend)))),
            ]),
          ),
          m.if(m.i32.eqz(get(fr)), m.return(c(0))),
          ...inits,
          // [tail, newTail) in at most two runs of adjacent slots (the second from slot 0 when it wraps),
          // walked by the shadow and real addresses: p to pe in the shadow, q beside it in the real ring.
          set(p, m.i32.add(get(shAt), m.i32.mul(get(tail), c(size)))),
          set(q, m.i32.add(get(reAt), m.i32.mul(get(tail), c(size)))),
          set(i, m.i32.add(get(shAt), m.i32.mul(get(0), c(size)))),
          set(pe, m.select(m.i32.gt_u(get(0), get(tail)), get(i), m.i32.add(get(shAt), m.i32.mul(get(n), c(size))))),
          m.loop(
            'run',
            m.block(null, [
              // ONE copy out of the driver's memory per descriptor; every check reads the copy.
              ...pairs(p, q, pe, one, 'next'),
              m.if(
                m.i32.and(m.i32.ne(get(pe), get(i)), m.i32.ne(get(0), c(0))),
                m.block(null, [set(p, get(shAt)), set(q, get(reAt)), set(pe, get(i)), m.br('run')]),
              ),
            ]),
          ),
          m.return(get(fr)),
        ]),
        m.return(c(-1)),
      ]),
    );

    // --- sync() -> head | -1 ---------------------------------------------------------------------
    // locals: 0 hd, 1 n, 2 synced, 3 shadow base, 4 real base, 5 sh, 6 re, 7 tail (then a run's end),
    // 8 moved, 9 seen, 10 the head's slot in the shadow
    // The write-back bytes in runs of adjacent ones, each copied by the widest loads that fit: the
    // pieces [offset, width], then, per slot (at + off), a fresh load and store each.
    const pieces: [number, number][] = [];
    const bytes = [
      ...new Set(ring.writeBacks.flatMap((f) => Array.from({ length: f.width }, (_, b) => f.offset + b))),
    ].sort((x, y) => x - y);
    for (let j = 0; j < bytes.length; ) {
      let run = 1;
      while (j + run < bytes.length && bytes[j + run] === bytes[j] + run) run++;
      for (let o = bytes[j], left = run; left > 0; ) {
        const wdt = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        pieces.push([o, wdt]);
        o += wdt;
        left -= wdt;
      }
      j += run;
    }
    const wbs = (off: number): Expr[] =>
      pieces.map(([o, wdt]) =>
        wdt === 8
          ? m.i64.store(off + o, 0, get(5), m.i64.load(off + o, 0, get(6), RM))
          : wdt === 4
            ? m.i32.store(off + o, 0, get(5), m.i32.load(off + o, 0, get(6), RM))
            : wdt === 2
              ? m.i32.store16(off + o, 0, get(5), m.i32.load16_u(off + o, 0, get(6), RM))
              : m.i32.store8(off + o, 0, get(5), m.i32.load8_u(off + o, 0, get(6), RM)),
      );
    const sync = fresh(`wasmdrv-gate.ring${ring.slot}.sync`);
    m.addFunction(
      sync,
      binaryen.none,
      i32,
      [i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32],
      m.block(null, [
        m.block('slow', [
          slow(m.i32.eqz(m.i32.load(ST_ENABLED, 0, c(0), RM))),
          set(0, head()),
          set(1, st(R.count)),
          slow(m.i32.ge_u(get(0), get(1))),
          // the device's head between the head last seen and the tail, else it lies: JavaScript names it
          set(7, st(R.tail)),
          slow(m.i32.ge_u(get(7), get(1))),
          set(9, st(R.seen)),
          slow(m.i32.ge_u(get(9), get(1))),
          ...modSub(8, 0, 9, 1),
          ...modSub(9, 7, 9, 1),
          slow(m.i32.gt_u(get(8), get(9))),
          set(2, st(R.synced)),
          m.if(
            m.i32.ne(get(2), get(0)),
            m.block(null, [
              set(3, st(R.shadowAt)),
              slow(m.i32.lt_s(get(3), c(0))),
              slow(m.i32.ge_u(get(2), get(1))),
              set(4, st(R.realAt)),
              slow(m.i32.lt_s(get(4), c(0))),
              // [synced, head) in at most two runs of adjacent slots (the second from slot 0 when it
              // wraps): 5 the shadow's address, 6 the real ring's beside it, 7 the run's end in the
              // shadow, 10 where the last run ends (the head's slot)
              set(5, m.i32.add(get(3), m.i32.mul(get(2), c(size)))),
              set(6, m.i32.add(get(4), m.i32.mul(get(2), c(size)))),
              set(10, m.i32.add(get(3), m.i32.mul(get(0), c(size)))),
              set(7, m.select(m.i32.gt_u(get(0), get(2)), get(10), m.i32.add(get(3), m.i32.mul(get(1), c(size))))),
              m.loop(
                'run',
                m.block(null, [
                  ...pairs(5, 6, 7, wbs, 'copy'),
                  m.if(
                    m.i32.and(m.i32.ne(get(7), get(10)), m.i32.ne(get(0), c(0))),
                    m.block(null, [set(5, get(3)), set(6, get(4)), set(7, get(10)), m.br('run')]),
                  ),
                ]),
              ),
              setSt(R.synced, get(0)),
            ]),
          ),
          setSt(R.seen, get(0)),
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
        // The doorbell. Not i32.atomic.store: V8 compiles a seq-cst store to `xchg`, a locked
        // read-modify-write, and a locked operation on the uncached BAR is a bus lock on real hardware
        // (which Linux's bus-lock detection traps and throttles) and a read the device never asked for.
        // Release order is what the device needs: every copy into the real ring above is visible before
        // it sees the tail. `atomic.fence` (mfence on x86) orders them, then one plain 32-bit store.
        m.atomic.fence(),
        m.i32.store(0, 0, c(ring.tail), get(0), REG),
        m.drop(m.call(sync, [], i32)),
      ]),
    );
    out.set(ring.slot, { check, commit, sync });
  }
  return out;
}
