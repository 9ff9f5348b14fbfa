// wasmdrv bench [--quick] [--json] [--plot] — see host/bench/bench.ts.
import { parseArgs } from 'node:util';
import { runBench } from '../bench/bench.ts';

export async function cmdBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean' }, json: { type: 'boolean' }, plot: { type: 'boolean' } } });
  await runBench({ quick: !!values.quick, json: !!values.json, plot: !!values.plot });
  return 0;
}
