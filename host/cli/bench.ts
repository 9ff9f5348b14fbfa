// wasmdrv bench [--quick] [--json] [--plot] [--only SECTIONS] [--out DIR] — see host/bench/bench.ts.
import type { Command } from 'commander';
import { BENCH_SECTIONS, runBench, type BenchSection } from '../bench/bench.ts';
import { action, UsageError } from './common.ts';

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
        try {
          await runBench({ quick: !!o.quick, json: !!o.json, plot: !!o.plot, only, out: o.out });
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
