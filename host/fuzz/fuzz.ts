// wasmdrv fuzz: coverage-guided fuzzing of a driver against a device driven by the fuzz input.
//
// One job per thread: an Executor (host/fuzz/engine.ts) and a corpus. Mutation is AFL-style havoc
// plus two comparison-guided steps (cmplog): put a comparison operand the parent's run logged, or a
// dictionary value (the device model's and the driver's comparison constants), exactly where one
// of the parent's register reads takes its value from. Jobs of one campaign share a corpus
// directory: each writes what it adds and picks up what the others added.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../native.ts';
import type { Grant, Limits } from '../grant.ts';
import { crashKey, Executor, type Crash, type ExecResult } from './engine.ts';
import { instrument, type Instrumented } from './instrument.ts';

export interface FuzzOptions {
  driver: Uint8Array;
  model: string;
  /** Budget: executions in all (split across jobs); Infinity: until `seconds` or a crash. */
  execs: number;
  /** Budget: wall-clock seconds. */
  seconds?: number;
  stopOnCrash?: boolean;
  seed: number;
  jobs: number;
  grant?: Grant;
  limits?: Partial<Limits>;
  fuel?: number;
  /** Where new-coverage inputs (corpus/) and reproducers (crashes/) go; undefined: keep them in memory. */
  outDir?: string;
  onProgress?: (s: FuzzProgress) => void;
  onCrash?: (c: FuzzCrash) => void;
  /** Progress callback period in ms (default 1000). */
  progressMs?: number;
}

export interface FuzzCrash extends Crash {
  reproducer?: string;
  input: number[];
  /** Execution index (in the job that found it) and ms since the campaign started. */
  exec: number;
  ms: number;
  job: number;
}

export interface FuzzProgress {
  execs: number;
  execsPerSec: number;
  /** Coverage map entries reached. */
  coverage: number;
  /** Instrumented coverage sites (blocks and branches). */
  blocks: number;
  corpus: number;
  crashes: number;
  ms: number;
}

export interface FuzzResult extends FuzzProgress {
  crashList: FuzzCrash[];
  timeline: { execs: number; ms: number; coverage: number }[];
  corpusInputs: number[][];
  /** Per-phase CPU time of job 0, for the profile: ms in mutation, execution, bookkeeping. */
  profile?: {
    mutateMs: number;
    execMs: number;
    otherMs: number;
    calls: number;
    rebuilds: number;
    hangsSkipped: number;
  };
}

export interface JobOptions {
  model: string;
  execs: number;
  seconds?: number;
  stopOnCrash?: boolean;
  seed: number;
  job?: number;
  seedCorpus?: Uint8Array[];
  grant?: Grant;
  limits?: Partial<Limits>;
  fuel?: number;
  corpusDir?: string;
  crashDir?: string;
  progress?: (s: FuzzProgress) => void;
  onCrash?: (c: FuzzCrash) => void;
  progressMs?: number;
  /** ms timestamp (performance.timeOrigin-based) the campaign started, for crash times. */
  startedAt?: number;
  /** Stop flag shared by the jobs of a campaign (Int32Array over a SharedArrayBuffer; [0] != 0: stop). */
  stop?: Int32Array;
}

/** xorshift32 */
export class Rng {
  private x: number;
  constructor(seed: number) {
    this.x = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.x = x >>> 0);
  }
  below(n: number): number {
    return this.next() % n;
  }
}

const INTERESTING = [
  0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
];
const MAX_INPUT = 4096;

export interface Entry {
  input: Uint8Array;
  /** [ctrl offset, value offset] per register read of its run. */
  reads: Int32Array;
  /** Comparison operands its run logged (u32 values). */
  cmps: number[];
}

/**
 * Put value `v` (4 bytes, little-endian) where read `k` of the parent's run takes its value: over
 * the value bytes when the read came from the input; else turn the read's control byte into
 * "from the input" and insert the value; a read past the end of the input appends filler control
 * bytes (0x01: the model answers) up to it.
 */
function putAtRead(b: number[], reads: Int32Array, k: number, v: number): void {
  const ctrlAt = reads[2 * k],
    valAt = reads[2 * k + 1];
  const bytes = [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  if (valAt >= 0) {
    while (b.length < valAt + 4) b.push(0);
    for (let i = 0; i < 4; i++) b[valAt + i] = bytes[i];
  } else if (ctrlAt >= 0) {
    b[ctrlAt] &= 0x1c;
    if ((b[ctrlAt] & 0x1c) === 0x1c) b[ctrlAt] = 0;
    b.splice(ctrlAt + 1, 0, ...bytes);
  } else {
    // Reads past the end: how many of the parent's reads came after the input ran out, before k.
    let missing = 0;
    for (let j = 0; j < k; j++) if (reads[2 * j] < 0) missing++;
    for (let j = 0; j < missing; j++) b.push(0x01);
    b.push(0, ...bytes);
  }
}

/** Havoc: a stack of byte-level mutations, sometimes a splice, sometimes a cmplog/dictionary step. */
export function mutate(parent: Entry, r: Rng, corpus: Entry[], dictionary: number[]): Uint8Array {
  let b = Array.from(parent.input);
  const reads = parent.reads;
  const nReads = reads.length >> 1;
  if (nReads && r.below(3) === 0) {
    // cmplog: one register read of the parent gets one of its comparison operands (or a dictionary value).
    const k = r.below(nReads);
    const pool = parent.cmps.length && r.below(4) !== 0 ? parent.cmps : dictionary;
    if (pool.length) {
      let v = pool[r.below(pool.length)];
      if (r.below(8) === 0) v = (v + (r.below(2) ? 1 : -1)) >>> 0;
      putAtRead(b, reads, k, v);
      return Uint8Array.from(b.slice(0, MAX_INPUT));
    }
  }
  if (corpus.length > 1 && r.below(10) === 0) {
    const other = corpus[r.below(corpus.length)].input;
    const cut = r.below(Math.max(1, Math.min(b.length, other.length)));
    b = [...b.slice(0, cut), ...other.slice(cut)];
  }
  const put32 = (at: number, v: number) => {
    while (b.length < at + 4) b.push(0);
    for (let i = 0; i < 4; i++) b[at + i] = (v >>> (8 * i)) & 0xff;
  };
  for (let n = 1 << r.below(4); n > 0; n--) {
    // Positions include the end of the input, so that bytes can be written and inserted there.
    const at = r.below(b.length + 1);
    switch (r.below(10)) {
      case 0:
        if (at < b.length) b[at] ^= 1 << r.below(8);
        break;
      case 1:
        b[at] = r.below(256);
        break;
      case 2:
        b.splice(at, 0, ...Array.from({ length: 1 + r.below(8) }, () => r.below(256)));
        break;
      case 3:
        if (b.length > 1 && at < b.length) b.splice(at, 1 + r.below(Math.min(8, b.length - at)));
        break;
      case 4:
        put32(at, INTERESTING[r.below(INTERESTING.length)]);
        break;
      case 5:
        if (dictionary.length) put32(at, dictionary[r.below(dictionary.length)]);
        break;
      case 6: {
        // a "return this value" control byte (ctrl & 3 == 0) followed by a value
        const pool = r.below(2) && dictionary.length ? dictionary : INTERESTING;
        const v = r.below(3) ? pool[r.below(pool.length)] : r.next();
        b.splice(at, 0, r.below(7) << 2, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
        break;
      }
      case 7:
        if (nReads) {
          const v =
            r.below(2) && dictionary.length
              ? dictionary[r.below(dictionary.length)]
              : INTERESTING[r.below(INTERESTING.length)];
          putAtRead(b, reads, r.below(nReads), v);
        }
        break;
      case 8:
        // the header: mode and event count
        if (b.length === 0) b.push(0);
        b[0] = r.below(256);
        break;
      default:
        if (at < b.length) b[at] = (b[at] + 1 + r.below(16)) & 0xff;
    }
  }
  return Uint8Array.from(b.slice(0, MAX_INPUT));
}

function fnv(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}

const hashName = (b: Uint8Array) => createHash('sha1').update(b).digest('hex').slice(0, 16);
export const crashFileName = (c: Crash) =>
  `${c.kind}-${createHash('sha1').update(crashKey(c)).digest('hex').slice(0, 10)}.bin`;

/** Default seeds: each start mode, one request of each op with a small argument, an interrupt. */
export function defaultSeeds(): Uint8Array[] {
  return [
    new Uint8Array(),
    Uint8Array.of(2),
    Uint8Array.of(3),
    Uint8Array.of(0, 0x80),
    ...Array.from({ length: 8 }, (_, op) => Uint8Array.of(0, op, 4, 5, 0, 0, 0)),
  ];
}

/** One job: fuzz in this thread until a budget runs out. */
export function fuzzJob(inst: Instrumented, o: JobOptions): FuzzResult {
  const ex = new Executor(inst, o.model, { grant: o.grant, limits: o.limits, fuel: o.fuel });
  try {
    return loop(ex, o);
  } finally {
    ex.close();
  }
}

function loop(ex: Executor, o: JobOptions): FuzzResult {
  const r = new Rng(o.seed);
  const job = o.job ?? 0;
  const corpus: Entry[] = [];
  const crashes = new Map<string, FuzzCrash>();
  const hangs = new Set<number>();
  const timeline: FuzzResult['timeline'] = [];
  const t0 = performance.now();
  const startedAt = o.startedAt ?? performance.timeOrigin + t0;
  const deadline = o.seconds !== undefined ? t0 + o.seconds * 1000 : Infinity;
  const seen = new Set<string>();
  const prof = { mutateMs: 0, execMs: 0, otherMs: 0, calls: 0, rebuilds: 0, hangsSkipped: 0 };
  let n = 0;
  const keep = (input: Uint8Array, share: boolean) => {
    corpus.push({
      input,
      reads: ex.reads(),
      cmps: ex
        .comparisons()
        .filter((v): v is number => typeof v === 'number')
        .slice(0, 512),
    });
    timeline.push({ execs: n, ms: performance.now() - t0, coverage: ex.covered });
    if (share && o.corpusDir) {
      const name = hashName(input);
      seen.add(name);
      try {
        writeFileSync(join(o.corpusDir, name), input);
      } catch {
        /* another job wrote it */
      }
    }
  };
  const note = (input: Uint8Array, res: ExecResult): void => {
    const c = res.crash;
    if (!c) return;
    if (c.kind === 'deadline') hangs.add(fnv(input));
    const key = crashKey(c);
    if (crashes.has(key)) return;
    const found: FuzzCrash = {
      ...c,
      input: Array.from(input),
      exec: n,
      ms: Math.round(performance.timeOrigin + performance.now() - startedAt),
      job,
    };
    if (o.crashDir) {
      const file = join(o.crashDir, crashFileName(c));
      found.reproducer = file;
      try {
        writeFileSync(file, input, { flag: 'wx' }); // the first job to find it writes it
        writeFileSync(
          `${file}.json`,
          `${JSON.stringify({ kind: c.kind, location: c.location, message: c.message, model: o.model, exec: n, job, ms: found.ms, foundAt: new Date().toISOString(), seed: o.seed }, null, 2)}\n`,
        );
      } catch {
        /* already saved by another job */
      }
    }
    crashes.set(key, found);
    o.onCrash?.(found);
  };
  const snapshot = (): FuzzProgress => {
    const ms = performance.now() - t0;
    return {
      execs: n,
      execsPerSec: Math.round(n / Math.max(1e-3, ms / 1000)),
      coverage: ex.covered,
      blocks: ex.sites,
      corpus: corpus.length,
      crashes: crashes.size,
      ms: Math.round(ms),
    };
  };
  const stopNow = () => (o.stopOnCrash && crashes.size > 0) || (o.stop !== undefined && Atomics.load(o.stop, 0) !== 0);
  const importShared = () => {
    if (!o.corpusDir || !existsSync(o.corpusDir)) return;
    for (const f of readdirSync(o.corpusDir)) {
      if (seen.has(f)) continue;
      seen.add(f);
      let input: Uint8Array;
      try {
        input = new Uint8Array(readFileSync(join(o.corpusDir, f)));
      } catch {
        continue;
      }
      if (hangs.has(fnv(input))) continue;
      n++;
      const res = ex.run(input);
      note(input, res);
      if (res.fresh && !res.crash) keep(input, false);
    }
  };

  const seeds = o.seedCorpus?.length ? o.seedCorpus : defaultSeeds();
  // A reload carrying the driver's own saved state: mutations of it fuzz state_restore's checks.
  const st = ex.savedState;
  if (!o.seedCorpus?.length && st && st.length < 256)
    seeds.push(Uint8Array.from([3, st.length, ...st, 0x01, 0x01, 0x06, 0x00]));
  if (o.corpusDir && existsSync(o.corpusDir)) for (const f of readdirSync(o.corpusDir)) seen.add(f);
  for (const s of seeds) {
    if (n >= o.execs || stopNow()) break;
    n++;
    const res = ex.run(s);
    note(s, res);
    if ((res.fresh && !res.crash) || !corpus.length) keep(s, true);
  }
  let lastProgress = performance.now();
  let lastShare = lastProgress;
  const period = o.progressMs ?? 1000;
  while (n < o.execs) {
    if ((n & 255) === 0) {
      const now = performance.now();
      if (now >= deadline || stopNow()) break;
      if (now - lastProgress >= period) {
        lastProgress = now;
        o.progress?.(snapshot());
      }
      if (o.corpusDir && now - lastShare >= 1000) {
        lastShare = now;
        importShared();
      }
    }
    const ta = performance.now();
    const parent = corpus[r.below(corpus.length)];
    const input = mutate(parent, r, corpus, ex.dictionary);
    const tb = performance.now();
    prof.mutateMs += tb - ta;
    if (hangs.has(fnv(input))) {
      // A known hang is not run again: it would cost a full fuel budget for nothing new.
      prof.hangsSkipped++;
      continue;
    }
    n++;
    const res = ex.run(input);
    const tc = performance.now();
    prof.execMs += tc - tb;
    note(input, res);
    // New coverage joins the corpus; a crashing input does not (it is kept as a reproducer instead).
    if (res.fresh && !res.crash) keep(input, true);
    prof.otherMs += performance.now() - tc;
  }
  prof.calls = ex.calls;
  prof.rebuilds = ex.rebuilds;
  timeline.push({ execs: n, ms: performance.now() - t0, coverage: ex.covered });
  const done = snapshot();
  o.progress?.(done);
  return {
    ...done,
    crashList: [...crashes.values()],
    timeline,
    corpusInputs: corpus.map((c) => Array.from(c.input)),
    profile: prof,
  };
}

/** Instrument once (binaryen), then run `jobs` jobs: in this thread for one, in workers for more. */
export async function runFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const inst = await instrument(o.driver);
  const corpusDir = o.outDir && join(o.outDir, 'corpus');
  const crashDir = o.outDir && join(o.outDir, 'crashes');
  if (corpusDir && crashDir) {
    mkdirSync(corpusDir, { recursive: true });
    mkdirSync(crashDir, { recursive: true });
  }
  const seedCorpus: Uint8Array[] = [];
  if (corpusDir && existsSync(corpusDir))
    for (const f of readdirSync(corpusDir).sort()) seedCorpus.push(new Uint8Array(readFileSync(join(corpusDir, f))));
  const startedAt = performance.timeOrigin + performance.now();
  const base: JobOptions = {
    model: o.model,
    execs: o.execs,
    seconds: o.seconds,
    stopOnCrash: o.stopOnCrash,
    seed: o.seed,
    seedCorpus,
    grant: o.grant,
    limits: o.limits,
    fuel: o.fuel,
    corpusDir,
    crashDir,
    startedAt,
    progressMs: o.progressMs,
  };
  if (o.jobs <= 1) return fuzzJob(inst, { ...base, progress: o.onProgress, onCrash: o.onCrash });

  const per = Number.isFinite(o.execs) ? Math.ceil(o.execs / o.jobs) : Infinity;
  const t0 = performance.now();
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const live: FuzzProgress[] = [];
  const crashKeys = new Set<string>();
  const parts = await Promise.all(
    Array.from(
      { length: o.jobs },
      (_, k) =>
        new Promise<FuzzResult>((resolve, reject) => {
          const w = new Worker(join(packageRoot(), 'dist', 'fuzz-worker.js'), {
            workerData: {
              inst,
              options: { ...base, execs: per, seed: (o.seed + k * 0x9e3779b9) >>> 0, job: k, stopShared: stop.buffer },
            },
          });
          w.on('message', (m: { type: string; value: unknown }) => {
            if (m.type === 'progress') {
              live[k] = m.value as FuzzProgress;
              if (k === 0 && o.onProgress) o.onProgress(merge(live, t0));
            } else if (m.type === 'crash') {
              const c = m.value as FuzzCrash;
              if (!crashKeys.has(crashKey(c))) {
                crashKeys.add(crashKey(c));
                o.onCrash?.(c);
              }
              if (o.stopOnCrash) Atomics.store(stop, 0, 1);
            } else if (m.type === 'done') {
              resolve(m.value as FuzzResult);
              void w.terminate();
            }
          });
          w.once('error', reject);
        }),
    ),
  );
  const crashes = new Map<string, FuzzCrash>();
  for (const p of parts)
    for (const c of p.crashList)
      if (!crashes.has(crashKey(c)) || crashes.get(crashKey(c))!.ms > c.ms) crashes.set(crashKey(c), c);
  const ms = performance.now() - t0;
  const execs = parts.reduce((s, p) => s + p.execs, 0);
  return {
    execs,
    execsPerSec: Math.round(execs / (ms / 1000)),
    // Each job's own map: the best job's count (jobs share inputs through the corpus directory).
    coverage: Math.max(...parts.map((p) => p.coverage)),
    blocks: parts[0].blocks,
    corpus: parts.reduce((s, p) => s + p.corpus, 0),
    crashes: crashes.size,
    ms: Math.round(ms),
    crashList: [...crashes.values()],
    timeline: parts[0].timeline.map((t) => ({ ...t, execs: t.execs * o.jobs })),
    corpusInputs: parts.flatMap((p) => p.corpusInputs),
    profile: parts[0].profile,
  };
}

function merge(live: FuzzProgress[], t0: number): FuzzProgress {
  const ps = live.filter(Boolean);
  const ms = performance.now() - t0;
  const execs = ps.reduce((s, p) => s + p.execs, 0);
  return {
    execs,
    execsPerSec: Math.round(execs / Math.max(1e-3, ms / 1000)),
    coverage: Math.max(0, ...ps.map((p) => p.coverage)),
    blocks: ps[0]?.blocks ?? 0,
    corpus: ps.reduce((s, p) => s + p.corpus, 0),
    crashes: Math.max(0, ...ps.map((p) => p.crashes)),
    ms: Math.round(ms),
  };
}

/** Coverage over time as SVG: map entries covered against executions. */
export function coveragePlot(r: FuzzResult, title: string): string {
  const W = 640,
    H = 320,
    L = 60,
    B = 40;
  const maxX = Math.max(1, r.execs),
    maxY = Math.max(1, r.coverage);
  const pts = [{ execs: 0, coverage: 0 }, ...r.timeline].map(
    (t) =>
      `${(L + (t.execs / maxX) * (W - L - 20)).toFixed(1)},${(H - B - (t.coverage / maxY) * (H - B - 30)).toFixed(1)}`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="16" text-anchor="middle">${title}: ${r.coverage} edges after ${r.execs} executions</text>
<line x1="${L}" y1="${H - B}" x2="${W - 20}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="30" x2="${L}" y2="${H - B}" stroke="black"/>
<text x="${W - 20}" y="${H - B + 16}" text-anchor="end">${r.execs} execs</text><text x="${L - 6}" y="34" text-anchor="end">${r.coverage}</text>
<text x="${L - 6}" y="${H - B}" text-anchor="end">0</text>
<polyline fill="none" stroke="#2c7a3f" stroke-width="2" points="${pts.join(' ')}"/>
</svg>
`;
}

/** Execs/s of one job on a driver (for `npm run bench`), with where the time went. */
export async function measureFuzz(
  driver: Uint8Array,
  execs: number,
  model = 'edu',
): Promise<{
  execs: number;
  execsPerSec: number;
  cpuExecsPerSec: number;
  profile: NonNullable<FuzzResult['profile']>;
}> {
  const inst = await instrument(driver);
  const cpu0 = process.cpuUsage();
  const r = fuzzJob(inst, { model, execs, seed: 1 });
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return {
    execs: r.execs,
    execsPerSec: r.execsPerSec,
    cpuExecsPerSec: Math.round(r.execs / cpuS),
    profile: r.profile!,
  };
}
