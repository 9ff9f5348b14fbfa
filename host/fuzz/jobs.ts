// Parallel fuzzing: one worker thread per job (host/fuzz/worker.ts), sharing the corpus directory,
// a stop flag and the crash list; the module is instrumented once, here.

import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../native.ts';
import { crashKey } from './engine.ts';
import {
  fuzzJob,
  type FuzzCrash,
  type FuzzOptions,
  type FuzzProgress,
  type FuzzResult,
  type JobOptions,
} from './fuzz.ts';
import { instrument } from './instrument.ts';

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
    skipRequests: o.skipRequests,
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
