// wasmdrv fault-campaign --faults N [--seed S] [--jobs J] [--json]
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { runCampaign, type CampaignStats } from '../campaign/campaign.ts';

export async function cmdFaultCampaign(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      faults: { type: 'string', default: '1000' },
      seed: { type: 'string', default: '1' },
      jobs: { type: 'string' },
      deadline: { type: 'string', default: '250' },
      json: { type: 'boolean' },
    },
  });
  const num = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} wants a whole number, not "${v}"`);
    return n;
  };
  const faults = num('faults', values.faults);
  const line = (s: CampaignStats) =>
    `${s.faults} faults (${s.mutants} mutants, ${s.devices} devices) · detected ${s.faulted} · recovered ${s.recovered} · benign ${s.benign} · host crashes ${s.hostCrashes} · outside-grant writes ${s.outsideGrantWrites} · outside-window DMA bytes ${s.outsideDmaBytes} (of ${s.dmaTransfers} transfers) · ${s.faultsPerSec}/s`;
  const result = await runCampaign({
    faults,
    seed: num('seed', values.seed),
    jobs: values.jobs ? num('jobs', values.jobs) : Math.max(1, Math.min(4, availableParallelism())),
    trialDeadlineMs: num('deadline', values.deadline),
    onProgress: (s) => {
      if (process.stderr.isTTY) {
        if (!values.json) process.stderr.write(`\r${line(s)}`);
      } else if ((s.faults + s.notInjected) % 5000 < 200) {
        process.stderr.write(`${line(s)}\n`);
      }
    },
  });
  if (!values.json && process.stderr.isTTY) process.stderr.write('\n');
  console.log(line(result));
  const kinds = Object.entries(result.driverFaults).sort((a, b) => b[1] - a[1]);
  for (const [k, n] of kinds) console.log(`  ${k.padEnd(24)} ${n}`);
  for (const u of result.unrecovered) console.log(`not recovered: trial ${u.index} (${u.kind}, ${u.outcome}): ${u.why ?? '?'}`);
  if (values.json) console.log(JSON.stringify(result));
  return result.hostCrashes === 0 && result.outsideGrantWrites === 0 && result.outsideDmaBytes === 0 ? 0 : 1;
}
