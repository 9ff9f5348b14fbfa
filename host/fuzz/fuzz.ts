// wasmdrv fuzz: coverage-guided fuzzing of a driver against a device driven by the fuzz input.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../native.ts';
import { crashKey, Executor, mutate, Rng, type ExecResult } from './engine.ts';

export interface FuzzOptions {
  driver: Uint8Array;
  model: string;
  execs: number;
  seed: number;
  jobs: number;
  /** Where new-coverage inputs (corpus/) and reproducers (crashes/) go; undefined: keep them in memory. */
  outDir?: string;
  onProgress?: (s: FuzzProgress) => void;
}

export interface FuzzCrash {
  kind: string;
  location: string;
  message: string;
  reproducer?: string;
  input: number[];
}

export interface FuzzProgress {
  execs: number;
  execsPerSec: number;
  coverage: number;
  blocks: number;
  corpus: number;
  crashes: number;
}

export interface FuzzResult extends FuzzProgress {
  crashList: FuzzCrash[];
  timeline: { execs: number; ms: number; coverage: number }[];
  corpusInputs: number[][];
  coveredBlocks: number[];
}

/** One job: `execs` executions from `seed`, in this thread. */
export function fuzzJob(driver: Uint8Array, model: string, execs: number, seed: number, seedCorpus: Uint8Array[], progress?: (s: FuzzProgress) => void): FuzzResult {
  const ex = new Executor(driver, model);
  const r = new Rng(seed);
  const covered = new Uint8Array(ex.blocks);
  let coveredCount = 0;
  const corpus: Uint8Array[] = [];
  const crashes = new Map<string, FuzzCrash>();
  const timeline: FuzzResult['timeline'] = [];
  const t0 = performance.now();
  const note = (input: Uint8Array, res: ExecResult): boolean => {
    let fresh = false;
    for (const b of res.blocks) {
      if (!covered[b]) {
        covered[b] = 1;
        coveredCount++;
        fresh = true;
      }
    }
    if (res.crash && !crashes.has(crashKey(res.crash))) {
      crashes.set(crashKey(res.crash), { ...res.crash, input: Array.from(input) });
    }
    return fresh;
  };
  const snapshot = (n: number): FuzzProgress => ({
    execs: n,
    execsPerSec: Math.round(n / Math.max(1e-3, (performance.now() - t0) / 1000)),
    coverage: coveredCount,
    blocks: ex.blocks,
    corpus: corpus.length,
    crashes: crashes.size,
  });
  // Default seeds: nothing, and one request of each op with a small argument.
  const seeds = seedCorpus.length ? seedCorpus : [new Uint8Array(), ...Array.from({ length: 8 }, (_, op) => Uint8Array.of(0, op, 5, 0, 0, 0))];
  let n = 0;
  for (const s of seeds) {
    if (n >= execs) break;
    n++;
    const res = ex.run(s);
    if ((note(s, res) && !res.crash) || !corpus.length) corpus.push(s);
  }
  for (; n < execs; n++) {
    const parent = corpus[r.below(corpus.length)];
    const input = mutate(parent, r, corpus, ex.dictionary);
    const res = ex.run(input);
    // New coverage joins the corpus; a crashing input does not (it is kept as a reproducer instead).
    if (note(input, res) && !res.crash) {
      corpus.push(input);
      timeline.push({ execs: n, ms: performance.now() - t0, coverage: coveredCount });
    }
    if (n % 1000 === 0) progress?.(snapshot(n));
  }
  ex.close();
  timeline.push({ execs: n, ms: performance.now() - t0, coverage: coveredCount });
  return {
    ...snapshot(n),
    crashList: [...crashes.values()],
    timeline,
    corpusInputs: corpus.map((c) => Array.from(c)),
    coveredBlocks: [...covered.keys()].filter((k) => covered[k]),
  };
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const corpusDir = o.outDir && join(o.outDir, 'corpus');
  const crashDir = o.outDir && join(o.outDir, 'crashes');
  const seedCorpus: Uint8Array[] = [];
  if (corpusDir && existsSync(corpusDir)) for (const f of readdirSync(corpusDir).sort()) seedCorpus.push(new Uint8Array(readFileSync(join(corpusDir, f))));
  let result: FuzzResult;
  if (o.jobs <= 1) {
    result = fuzzJob(o.driver, o.model, o.execs, o.seed, seedCorpus, o.onProgress);
  } else {
    const per = Math.ceil(o.execs / o.jobs);
    const t0 = performance.now();
    const parts = await Promise.all(Array.from({ length: o.jobs }, (_, k) => new Promise<FuzzResult>((resolve, reject) => {
      const w = new Worker(join(packageRoot(), 'dist', 'fuzz-worker.js'), {
        workerData: { driver: o.driver, model: o.model, execs: per, seed: (o.seed + k * 0x9e3779b9) >>> 0, seedCorpus },
      });
      w.once('message', (m) => {
        resolve(m as FuzzResult);
        void w.terminate();
      });
      w.once('error', reject);
    })));
    const blocks = new Set(parts.flatMap((p) => p.coveredBlocks));
    const crashes = new Map<string, FuzzCrash>();
    for (const p of parts) for (const c of p.crashList) if (!crashes.has(`${c.kind}@${c.location}`)) crashes.set(`${c.kind}@${c.location}`, c);
    const ms = performance.now() - t0;
    const execs = parts.reduce((s, p) => s + p.execs, 0);
    result = {
      execs,
      execsPerSec: Math.round(execs / (ms / 1000)),
      coverage: blocks.size,
      blocks: parts[0].blocks,
      corpus: parts.reduce((s, p) => s + p.corpus, 0),
      crashes: crashes.size,
      crashList: [...crashes.values()],
      timeline: parts[0].timeline.map((t) => ({ ...t, execs: t.execs * o.jobs })),
      corpusInputs: parts.flatMap((p) => p.corpusInputs),
      coveredBlocks: [...blocks].sort((a, b) => a - b),
    };
  }
  if (corpusDir && crashDir) {
    mkdirSync(corpusDir, { recursive: true });
    mkdirSync(crashDir, { recursive: true });
    for (const c of result.corpusInputs) {
      const bytes = Uint8Array.from(c);
      writeFileSync(join(corpusDir, createHash('sha1').update(bytes).digest('hex').slice(0, 16)), bytes);
    }
    for (const c of result.crashList) {
      const name = `${c.kind}-${createHash('sha1').update(`${c.kind}@${c.location}`).digest('hex').slice(0, 10)}.bin`;
      c.reproducer = join(crashDir, name);
      writeFileSync(c.reproducer, Uint8Array.from(c.input));
      writeFileSync(`${c.reproducer}.json`, `${JSON.stringify({ kind: c.kind, location: c.location, message: c.message, model: o.model }, null, 2)}\n`);
    }
  }
  return result;
}

/** Coverage over time as SVG: blocks covered against executions. */
export function coveragePlot(r: FuzzResult, title: string): string {
  const W = 640, H = 320, L = 60, B = 40;
  const maxX = Math.max(1, r.execs), maxY = Math.max(1, r.blocks);
  const pts = [{ execs: 0, coverage: 0 }, ...r.timeline].map((t) => `${(L + (t.execs / maxX) * (W - L - 20)).toFixed(1)},${(H - B - (t.coverage / maxY) * (H - B - 30)).toFixed(1)}`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="16" text-anchor="middle">${title}: ${r.coverage}/${r.blocks} blocks after ${r.execs} executions</text>
<line x1="${L}" y1="${H - B}" x2="${W - 20}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="30" x2="${L}" y2="${H - B}" stroke="black"/>
<text x="${W - 20}" y="${H - B + 16}" text-anchor="end">${r.execs} execs</text><text x="${L - 6}" y="34" text-anchor="end">${r.blocks}</text>
<text x="${L - 6}" y="${H - B}" text-anchor="end">0</text>
<polyline fill="none" stroke="#2c7a3f" stroke-width="2" points="${pts.join(' ')}"/>
</svg>
`;
}

/** Execs/s of one job on the edu driver, for `npm run bench`. */
export function measureFuzz(driver: Uint8Array, execs: number): number {
  return fuzzJob(driver, 'edu', execs, 1, []).execsPerSec;
}
