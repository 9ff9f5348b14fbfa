// wasmdrv fuzz: coverage-guided fuzzing of a driver against a device driven by the fuzz input.
//
// One job per thread (this file): an Executor (host/fuzz/engine.ts), a corpus, the mutator
// (host/fuzz/mutate.ts) and the crash store. Jobs of one campaign (host/fuzz/jobs.ts) share a corpus
// directory: each writes what it adds and picks up what the others added.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Grant, Limits } from '../grant.ts';
import { crashKey, Executor, type Crash, type ExecResult } from './engine.ts';
import { instrument, type Instrumented } from './instrument.ts';
import { defaultSeeds, type Entry, mutate, Rng } from './mutate.ts';

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
  /** Request ops never made (a manifest's fuzz.skipRequests). */
  skipRequests?: number[];
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
  /** Request ops never made (a manifest's fuzz.skipRequests). */
  skipRequests?: number[];
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

function fnv(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}

const hashName = (b: Uint8Array) => createHash('sha1').update(b).digest('hex').slice(0, 16);
export const crashFileName = (c: Crash) =>
  `${c.kind}-${createHash('sha1').update(crashKey(c)).digest('hex').slice(0, 10)}.bin`;

/** One job: fuzz in this thread until a budget runs out. */
export function fuzzJob(inst: Instrumented, o: JobOptions): FuzzResult {
  const ex = new Executor(inst, o.model, {
    grant: o.grant,
    limits: o.limits,
    fuel: o.fuel,
    skipRequests: o.skipRequests,
  });
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

  const seeds = o.seedCorpus?.length ? o.seedCorpus : defaultSeeds(ex.receivesFrames);
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
