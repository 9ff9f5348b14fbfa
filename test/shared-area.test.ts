// The driver's shared area (host/sandbox/shared.ts): the flight recorder's entry format, which the
// JavaScript writer and the register gates (gate.ts, inline-rewrite.ts) share, and the counters
// Driver.stats() derives from it.
import { describe, expect, it } from 'vitest';
import { DriverShared, GSTAT, GSTATS_OFFSET, OP, RING_OFFSET, STAT, entryMeta } from '../host/sandbox/shared.ts';

describe('driver shared area', () => {
  it('a JavaScript entry is the two words the gate writes: offset | op, width, region; value', () => {
    const area = DriverShared.create(16);
    const sh = new DriverShared(area);
    sh.record(OP.write, 3, 0x1234, 8, 0xdeadbeef, 0x01020304);
    const words = new BigUint64Array(area, RING_OFFSET, 2);
    expect(words[0]).toBe(0x1234n | entryMeta(OP.write, 8, 3));
    expect(words[0]).toBe(0x1234n | (1n << 32n) | (8n << 40n) | (3n << 48n));
    expect(words[1]).toBe(0x01020304deadbeefn);
    expect(sh.entries()).toEqual([
      { seq: 0, op: 'write', region: 3, offset: 0x1234, width: 8, value: 0x01020304deadbeefn },
    ]);
  });

  it('decodes entries the gate wrote (i64 words, no JavaScript involved), interleaved with JavaScript entries', () => {
    const area = DriverShared.create(4);
    const sh = new DriverShared(area);
    const g = new BigUint64Array(area, GSTATS_OFFSET, 8);
    const ring = new BigUint64Array(area, RING_OFFSET, 8);
    // as inline-rewrite.ts does for a read and a write: the entry at ((reads + writes + js) & mask) * 16,
    // then its own kind's counter += 1
    const put = (own: number, word0: bigint, value: bigint) => {
      const at = Number((g[GSTAT.gateReads] + g[GSTAT.gateWrites] + g[GSTAT.jsEntries]) & 3n) * 2;
      ring[at] = word0;
      ring[at + 1] = value;
      g[own]++;
    };
    put(GSTAT.gateReads, 0xffcn | entryMeta(OP.read, 4, 0), 0xffffffffn);
    put(GSTAT.gateWrites, 0x20n | entryMeta(OP.write, 2, 1), 0xbeefn);
    sh.record(OP.irq, 0, 0, 0, 7, 0); // a JavaScript entry in between
    put(GSTAT.gateReads, 0x4n | entryMeta(OP.read, 1, 0), 0x7n);
    sh.stats[STAT.regReads] += 2; // and two reads JavaScript served (counted, not recorded here)
    expect(sh.entries().map((e) => [e.seq, e.op, e.region, e.offset, e.width, e.value])).toEqual([
      [0, 'read', 0, 0xffc, 4, 0xffffffffn],
      [1, 'write', 1, 0x20, 2, 0xbeefn],
      [2, 'irq', 0, 0, 0, 7n],
      [3, 'read', 0, 4, 1, 7n],
    ]);
    expect(sh.stat('regReads')).toBe(4);
    expect(sh.stat('regWrites')).toBe(1);
  });

  it('keeps sequence numbers and slots right when an i64 counter crosses 2^32', () => {
    const area = DriverShared.create(4);
    const sh = new DriverShared(area);
    const g = new BigUint64Array(area, GSTATS_OFFSET, 8);
    g[GSTAT.jsEntries] = 0xffff_fffen;
    for (let i = 0; i < 5; i++) sh.record(OP.request, 0, i, 0, i, 0);
    expect(g[GSTAT.jsEntries]).toBe(0x1_0000_0003n);
    expect(sh.recorderTotal).toBe(0x1_0000_0003);
    expect(sh.entries().map((e) => [e.seq, e.offset])).toEqual([
      [0xffff_ffff, 1],
      [0x1_0000_0000, 2],
      [0x1_0000_0001, 3],
      [0x1_0000_0002, 4],
    ]);
    expect(sh.stat('regReads')).toBe(0);
  });
});
