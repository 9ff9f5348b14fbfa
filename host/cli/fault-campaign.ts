// wasmdrv fault-campaign --faults N [--seed S] [--jobs J] [--json]
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { runCampaign, type CampaignStats } from '../campaign/campaign.ts';
import { action, wholeNumber } from './common.ts';

interface CampaignOptions {
  faults: number;
  seed: number;
  jobs?: number;
  deadline: number;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('fault-campaign')
    .summary('inject faults into drivers and devices and count what the host survives')
    .description(
      'Inject N faults (mutated driver binaries, misbehaving devices) and count host crashes, writes outside granted memory, detected driver faults by kind, and recoveries. Exit 1 on any host crash or outside-grant write.',
    )
    .option('--faults <n>', 'how many faults to inject', wholeNumber(0), 1000)
    .option('--seed <s>', 'random seed', wholeNumber(0), 1)
    .option('--jobs <j>', 'parallel workers (default: up to 4, one per CPU)', wholeNumber(1))
    .option('--deadline <ms>', 'per-trial deadline in milliseconds', wholeNumber(1), 250)
    .option('--json', 'the result as one JSON line after the summary')
    .action(action(campaign));
}

async function campaign(o: CampaignOptions): Promise<number> {
  const line = (s: CampaignStats) =>
    `${s.faults} faults (${s.mutants} mutants, ${s.devices} devices) · detected ${s.faulted} · recovered ${s.recovered} · benign ${s.benign} · host crashes ${s.hostCrashes} · outside-grant writes ${s.outsideGrantWrites} · outside-window DMA bytes ${s.outsideDmaBytes} (of ${s.dmaTransfers} transfers) · ${s.faultsPerSec}/s`;
  const result = await runCampaign({
    faults: o.faults,
    seed: o.seed,
    jobs: o.jobs ?? Math.max(1, Math.min(4, availableParallelism())),
    trialDeadlineMs: o.deadline,
    onProgress: (s) => {
      if (process.stderr.isTTY) {
        if (!o.json) process.stderr.write(`\r${line(s)}`);
      } else if ((s.faults + s.notInjected) % 5000 < 200) {
        process.stderr.write(`${line(s)}\n`);
      }
    },
  });
  if (!o.json && process.stderr.isTTY) process.stderr.write('\n');
  console.log(line(result));
  const kinds = Object.entries(result.driverFaults).sort((a, b) => b[1] - a[1]);
  for (const [k, n] of kinds) console.log(`  ${k.padEnd(24)} ${n}`);
  for (const u of result.unrecovered)
    console.log(`not recovered: trial ${u.index} (${u.kind}, ${u.outcome}): ${u.why ?? '?'}`);
  if (o.json) console.log(JSON.stringify(result));
  return result.hostCrashes === 0 && result.outsideGrantWrites === 0 && result.outsideDmaBytes === 0 ? 0 : 1;
}
