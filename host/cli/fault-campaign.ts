// wasmdrv fault-campaign --faults N [--targets edu,uart16550,e1000] [--seed S] [--jobs J] [--json]
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { runCampaign, type CampaignStats } from '../campaign/campaign.ts';
import { type TargetName, TARGET_NAMES, parseTargets } from '../campaign/targets.ts';
import { action, UsageError, wholeNumber } from './common.ts';
import { progressBar } from './progress.ts';

interface CampaignOptions {
  faults: number;
  seed: number;
  jobs?: number;
  deadline: number;
  targets: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('fault-campaign')
    .summary('inject faults into drivers and devices and count what the host survives')
    .description(
      'Inject N faults (mutated driver binaries, misbehaving devices — on the e1000 with descriptor faults) on the targets edu, uart16550 and e1000, and count host crashes, writes outside granted memory, DMA outside the windows, detected driver faults by kind, and recoveries, in all and per target. Exit 1 on any host crash or outside-grant write or DMA.',
    )
    .option('--faults <n>', 'how many faults to inject', wholeNumber(0), 1000)
    .option(
      '--targets <list>',
      `comma-separated targets the trials pick from (${TARGET_NAMES.join(', ')})`,
      TARGET_NAMES.join(','),
    )
    .option('--seed <s>', 'random seed', wholeNumber(0), 1)
    .option('--jobs <j>', 'parallel workers (default: up to 4, one per CPU)', wholeNumber(1))
    .option('--deadline <ms>', 'per-trial deadline in milliseconds', wholeNumber(1), 250)
    .option('--json', 'the result as one JSON line after the summary')
    .action(action(campaign));
}

async function campaign(o: CampaignOptions): Promise<number> {
  let targets: TargetName[];
  try {
    targets = parseTargets(o.targets);
  } catch (err) {
    throw new UsageError(`--targets: ${(err as Error).message}`);
  }
  const line = (s: CampaignStats) =>
    `${s.faults} faults (${s.mutants} mutants, ${s.devices} devices) · detected ${s.faulted} · recovered ${s.recovered} · benign ${s.benign} · host crashes ${s.hostCrashes} · outside-grant writes ${s.outsideGrantWrites} · outside-window DMA bytes ${s.outsideDmaBytes} (of ${s.dmaTransfers} transfers) · ${s.faultsPerSec}/s`;
  // A bar on a terminal only (progress.ts): piped, --json or under CI the output is the summary alone.
  const bar = progressBar('fault campaign', o.faults, 'detected {faulted} · host crashes {crashes} · {rate}/s', o);
  const result = await runCampaign({
    faults: o.faults,
    seed: o.seed,
    jobs: o.jobs ?? Math.max(1, Math.min(4, availableParallelism())),
    trialDeadlineMs: o.deadline,
    targets,
    onProgress: (s) =>
      bar.update(s.faults + s.notInjected, { faulted: s.faulted, crashes: s.hostCrashes, rate: s.faultsPerSec }),
  }).finally(() => bar.stop());
  console.log(line(result));
  const kinds = Object.entries(result.driverFaults).sort((a, b) => b[1] - a[1]);
  for (const [k, n] of kinds) console.log(`  ${k.padEnd(24)} ${n}`);
  for (const name of result.targetNames) {
    const t = result.targets[name]!;
    const top = Object.entries(t.driverFaults)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    console.log(
      `${name}: ${t.faults} faults (${t.mutants} mutants, ${t.devices} devices) · detected ${t.faulted} · recovered ${t.recovered} · host crashes ${t.hostCrashes} · outside-grant writes ${t.outsideGrantWrites} · outside-window DMA bytes ${t.outsideDmaBytes} (of ${t.dmaTransfers} transfers)${top ? ` · ${top}` : ''}`,
    );
  }
  for (const u of result.unrecovered)
    console.log(`not recovered: trial ${u.index} (${u.target}, ${u.kind}, ${u.outcome}): ${u.why ?? '?'}`);
  if (o.json) console.log(JSON.stringify(result));
  return result.hostCrashes === 0 && result.outsideGrantWrites === 0 && result.outsideDmaBytes === 0 ? 0 : 1;
}
