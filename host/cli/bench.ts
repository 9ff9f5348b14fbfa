// wasmdrv bench [--quick] [--json] [--plot] [--only SECTIONS] [--out DIR] — see host/bench/bench.ts.
import type { Command } from 'commander';
import { BENCH_SECTIONS, runBench, type BenchSection } from '../bench/bench.ts';
import { action, UsageError } from './common.ts';
import { progressBar, progressWanted } from './progress.ts';

export function register(program: Command): void {
  program
    .command('bench')
    .summary('measure register, DMA, interrupt and lifecycle costs against baselines from the same run')
    .option('--quick', 'fewer iterations (a smoke run)')
    .option('--json', 'results as one JSON object')
    .option('--plot', 'write the interrupt latency plot (DIR/irq-cdf.svg)')
    .option('--out <dir>', 'where results.json (quick.json, partial.json) and the plot go', 'bench-results')
    .option('--only <sections>', `comma-separated sections (${BENCH_SECTIONS.join(', ')})`)
    .action(
      action(async (o: { quick?: boolean; json?: boolean; plot?: boolean; only?: string; out: string }) => {
        let only: BenchSection[] | undefined;
        if (o.only !== undefined) {
          only = o.only.split(',').map((s) => s.trim()) as BenchSection[];
          const bad = only.filter((s) => !BENCH_SECTIONS.includes(s));
          if (bad.length)
            throw new UsageError(
              `--only: unknown section ${bad.map((b) => JSON.stringify(b)).join(', ')} (sections: ${BENCH_SECTIONS.join(', ')})`,
            );
        }
        // A bar over the sections on a terminal only (progress.ts); the report's lines print above it.
        const bar = progressBar('bench', (only ?? BENCH_SECTIONS).length, 'section {section}', o);
        const onTerminal = progressWanted(o);
        try {
          await runBench({
            quick: !!o.quick,
            json: !!o.json,
            plot: !!o.plot,
            only,
            out: o.out,
            onSection: (section, done) => bar.update(done, { section }),
            log: onTerminal ? (line) => bar.log(line) : undefined,
          }).finally(() => bar.stop());
        } catch (err) {
          // --json promises one object on the last line, whatever happened
          if (o.json) {
            console.log(JSON.stringify({ error: (err as Error).message }));
            return 1;
          }
          throw err;
        }
        return 0;
      }),
    );
}
