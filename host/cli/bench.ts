// wasmdrv bench [--quick] [--json] [--plot] [--only regs,dma,irq,ring,lifecycle] — see host/bench/bench.ts.
import { parseArgs } from 'node:util';
import { BENCH_SECTIONS, runBench, type BenchSection } from '../bench/bench.ts';

export async function cmdBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean' }, json: { type: 'boolean' }, plot: { type: 'boolean' }, only: { type: 'string' } } });
  let only: BenchSection[] | undefined;
  if (values.only !== undefined) {
    only = values.only.split(',').map((s) => s.trim()) as BenchSection[];
    const bad = only.filter((s) => !BENCH_SECTIONS.includes(s));
    if (bad.length) {
      console.error(`wasmdrv bench: --only: unknown section ${bad.map((b) => JSON.stringify(b)).join(', ')} (sections: ${BENCH_SECTIONS.join(', ')})`);
      return 2;
    }
  }
  try {
    await runBench({ quick: !!values.quick, json: !!values.json, plot: !!values.plot, only });
  } catch (err) {
    // --json promises one object on the last line, whatever happened
    if (values.json) {
      console.log(JSON.stringify({ error: (err as Error).message }));
      return 1;
    }
    throw err;
  }
  return 0;
}
