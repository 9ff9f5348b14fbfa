// wasmdrv fault-campaign --faults N [--seed S] [--jobs J] [--json]
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { runCampaign, type CampaignStats } from '../campaign/campaign.ts';
import { action, wholeNumber } from './common.ts';
import { progressBar } from './progress.ts';

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
  // A bar on a terminal only (progress.ts): piped, --json or under CI the output is the summary alone.
  const bar = progressBar('fault campaign', o.faults, 'detected {faulted} · host crashes {crashes} · {rate}/s', o);
  const result = await runCampaign({
    faults: o.faults,
    seed: o.seed,
    jobs: o.jobs ?? Math.max(1, Math.min(4, availableParallelism())),
    trialDeadlineMs: o.deadline,
    onProgress: (s) =>
      bar.update(s.faults + s.notInjected, { faulted: s.faulted, crashes: s.hostCrashes, rate: s.faultsPerSec }),
  }).finally(() => bar.stop());
  console.log(line(result));
  const kinds = Object.entries(result.driverFaults).sort((a, b) => b[1] - a[1]);
  for (const [k, n] of kinds) console.log(`  ${k.padEnd(24)} ${n}`);
  for (const u of result.unrecovered)
    console.log(`not recovered: trial ${u.index} (${u.kind}, ${u.outcome}): ${u.why ?? '?'}`);
  if (o.json) console.log(JSON.stringify(result));
  return result.hostCrashes === 0 && result.outsideGrantWrites === 0 && result.outsideDmaBytes === 0 ? 0 : 1;
}
