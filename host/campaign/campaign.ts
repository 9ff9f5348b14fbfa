// The fault-injection campaign (npm run fault-campaign): inject N faults — mutated driver binaries and
// misbehaving devices, on the targets edu, uart16550 and e1000 (targets.ts; each trial's target and
// kind come from its seeded generator) — and count what the host lived through, in all and per target.
//
//   faults              trials that injected a fault
//   hostCrashes         campaign workers that died of an error in host code (must be 0)
//   outsideGrantWrites  canary pages around every DMA window that changed (must be 0)
//   outsideDmaBytes     bytes the device's DMA reached outside its window, from the device's own
//                       record of every transfer (sim/dma-record.ts; must be 0: every trial runs
//                       under its target's shipped manifest grant: the edu's DMA firewall, the
//                       e1000's descriptor firewall)
//   dmaTransfers        transfers that record saw (so a 0 above is not a record that saw nothing)
//   driverFaults        faults the sandbox detected, by kind (plus load and probe refusals)
//   recovered           faulted trials after which a fresh driver reset the device and served again
//   benign              injected faults that changed nothing observable

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadNative, packageRoot, type Mapping } from '../native.ts';
import { DriverShared } from '../sandbox/shared.ts';
import { CANARY, TARGETS, TARGET_NAMES, type TargetName, type TargetPort, driverFile } from './targets.ts';
import { trialPlan, type TrialResult } from './trial.ts';

export interface CampaignOptions {
  faults: number;
  seed: number;
  jobs: number;
  /** A trial running longer than this is a hang: its worker is killed. Default 250 ms. */
  trialDeadlineMs: number;
  /** The edu target's driver file (default: the shipped edu driver); with it the targets default to edu alone. */
  driver?: string;
  /** Targets the trials pick from (default: all three, or edu with `driver`). */
  targets?: TargetName[];
  onProgress?: (s: CampaignStats) => void;
}

/** One target's share of a campaign. */
export interface TargetStats {
  faults: number;
  mutants: number;
  devices: number;
  notInjected: number;
  faulted: number;
  recovered: number;
  benign: number;
  hostCrashes: number;
  outsideGrantWrites: number;
  outsideDmaBytes: number;
  dmaTransfers: number;
  driverFaults: Record<string, number>;
}

export interface CampaignStats {
  targetNames: TargetName[];
  /** Per target: the same counts as the totals. */
  targets: Partial<Record<TargetName, TargetStats>>;
  faults: number;
  hostCrashes: number;
  outsideGrantWrites: number;
  outsideDmaBytes: number;
  dmaTransfers: number;
  driverFaults: Record<string, number>;
  recovered: number;
  /** Faulted trials after which the device did not come back (the first 100): replay with their index. */
  unrecovered: { index: number; target: TargetName; kind: string; outcome: string; why?: string }[];
  faulted: number;
  benign: number;
  mutants: number;
  devices: number;
  notInjected: number;
  elapsedMs: number;
  faultsPerSec: number;
}

interface Job {
  index: number;
  worker?: Worker;
  heartbeat: Float64Array;
  heartbeatBuf: SharedArrayBuffer;
  state: SharedArrayBuffer;
  shared: SharedArrayBuffer;
  ports: Partial<Record<TargetName, TargetPort>>;
  irqFd: number;
  cancelFd: number;
  kickFd: number;
  /** Per target with DMA: its memfd mapped whole (canary, window, canary). */
  canaries: Partial<Record<TargetName, Mapping>>;
  done: boolean;
  killing: boolean;
}

const PATTERN = 0xa5;

export async function runCampaign(o: CampaignOptions): Promise<CampaignStats> {
  const native = loadNative();
  const order = o.targets ?? (o.driver ? ['edu'] : [...TARGET_NAMES]);
  const drivers: Partial<Record<TargetName, Uint8Array>> = {};
  for (const name of order)
    drivers[name] = new Uint8Array(readFileSync(name === 'edu' && o.driver ? o.driver : driverFile(TARGETS[name])));
  const stateBytes = Math.max(...order.map((n) => TARGETS[n].stateBytes));
  const started = Date.now();
  const empty = (): TargetStats => ({
    faults: 0,
    mutants: 0,
    devices: 0,
    notInjected: 0,
    faulted: 0,
    recovered: 0,
    benign: 0,
    hostCrashes: 0,
    outsideGrantWrites: 0,
    outsideDmaBytes: 0,
    dmaTransfers: 0,
    driverFaults: {},
  });
  const st: CampaignStats = {
    targetNames: order,
    targets: Object.fromEntries(order.map((n) => [n, empty()])),
    faults: 0,
    hostCrashes: 0,
    outsideGrantWrites: 0,
    outsideDmaBytes: 0,
    dmaTransfers: 0,
    driverFaults: {},
    recovered: 0,
    unrecovered: [],
    faulted: 0,
    benign: 0,
    mutants: 0,
    devices: 0,
    notInjected: 0,
    elapsedMs: 0,
    faultsPerSec: 0,
  };
  type Counter = Exclude<keyof TargetStats, 'driverFaults'>;
  /** Add to a count, in all and for the target. */
  const add = (target: TargetName, k: Counter, n = 1) => {
    st[k] += n;
    st.targets[target]![k] += n;
  };
  const count = (target: TargetName, kind: string) => {
    st.driverFaults[kind] = (st.driverFaults[kind] ?? 0) + 1;
    const t = st.targets[target]!.driverFaults;
    t[kind] = (t[kind] ?? 0) + 1;
  };
  const plan = (index: number) => trialPlan(o.seed, index, order);
  let reported = 0;
  // Progress every 1% of the campaign (at least every 200 trials): a short one shows movement too.
  const every = Math.max(1, Math.min(200, Math.ceil(o.faults / 100)));

  const jobs: Job[] = Array.from({ length: Math.max(1, o.jobs) }, (_, index) => {
    const ports: Partial<Record<TargetName, TargetPort>> = {};
    const canaries: Partial<Record<TargetName, Mapping>> = {};
    for (const name of order) {
      const win = TARGETS[name].window;
      if (!win) {
        ports[name] = { dmaFd: -1 };
        continue;
      }
      const size = CANARY + win + CANARY;
      const dmaFd = native.memfdCreate(`wasmdrv-campaign-${name}-dma${index}`, size);
      const m = native.mapFd(dmaFd, size, 0, `campaign ${name} DMA memfd`);
      const bytes = new Uint8Array(m.buffer());
      bytes.subarray(0, CANARY).fill(PATTERN);
      bytes.subarray(CANARY + win).fill(PATTERN);
      ports[name] = { dmaFd };
      canaries[name] = m;
    }
    const heartbeatBuf = new SharedArrayBuffer(16);
    return {
      index,
      heartbeat: new Float64Array(heartbeatBuf),
      heartbeatBuf,
      state: new SharedArrayBuffer(stateBytes),
      shared: DriverShared.create(64),
      ports,
      irqFd: native.eventfdCreate(0),
      cancelFd: native.eventfdCreate(0),
      kickFd: native.eventfdCreate(0),
      canaries,
      done: false,
      killing: false,
    };
  });

  /** Canary pages that changed since the last check count against the target of the trial just run. */
  const checkCanaries = (job: Job, target: TargetName) => {
    for (const [name, m] of Object.entries(job.canaries) as [TargetName, Mapping][]) {
      const b = new Uint8Array(m.buffer());
      const win = TARGETS[name].window;
      const dirty = (from: number, to: number) => b.subarray(from, to).some((x) => x !== PATTERN);
      if (dirty(0, CANARY) || dirty(CANARY + win, b.length)) {
        add(target, 'outsideGrantWrites');
        b.subarray(0, CANARY).fill(PATTERN);
        b.subarray(CANARY + win).fill(PATTERN);
      }
    }
  };

  const record = (r: TrialResult) => {
    reported++;
    add(r.target, 'dmaTransfers', r.dmaTransfers);
    add(r.target, 'outsideDmaBytes', r.outsideDmaBytes);
    if (!r.injected) {
      add(r.target, 'notInjected');
      return;
    }
    add(r.target, 'faults');
    add(r.target, r.kind === 'mutant' ? 'mutants' : 'devices');
    if (r.outcome) {
      add(r.target, 'faulted');
      count(r.target, r.outcome);
      if (r.recovered) add(r.target, 'recovered');
      else if (st.unrecovered.length < 100)
        st.unrecovered.push({
          index: r.index,
          target: r.target,
          kind: r.kind,
          outcome: r.outcome,
          why: r.whyNotRecovered,
        });
    } else {
      add(r.target, 'benign');
    }
  };

  await new Promise<void>((resolveAll) => {
    const finishIfDone = () => {
      if (jobs.every((j) => j.done)) resolveAll();
    };
    const spawn = (job: Job, first: number, after?: { index: number; outcome: string }) => {
      // After a killed (hung) trial a worker always runs, even with no trials left: its first act is the
      // recovery check for the trial that hung.
      if (first >= o.faults && !after) {
        job.done = true;
        finishIfDone();
        return;
      }
      job.heartbeat[0] = first;
      job.heartbeat[1] = 0;
      const w = new Worker(join(packageRoot(), 'dist', 'campaign-worker.js'), {
        workerData: {
          drivers,
          order,
          ports: job.ports,
          state: job.state,
          irqFd: job.irqFd,
          cancelFd: job.cancelFd,
          kickFd: job.kickFd,
          heartbeat: job.heartbeatBuf,
          shared: job.shared,
          seed: o.seed,
          first,
          stride: jobs.length,
          end: o.faults,
          recoverFirst: after ? plan(after.index).target : undefined,
        },
        stdout: true,
        stderr: true,
      });
      job.worker = w;
      job.killing = false;
      w.on(
        'message',
        (m: {
          t: string;
          result?: TrialResult;
          recovered?: boolean;
          why?: string;
          dmaTransfers?: number;
          outsideDmaBytes?: number;
        }) => {
          if (m.t === 'trial') {
            record(m.result!);
            checkCanaries(job, m.result!.target);
            if (reported % every === 0) o.onProgress?.(snapshot());
          } else if (m.t === 'recovery') {
            // after a killed (hung) or crashed trial: did a fresh driver bring the device back?
            const target = plan(after!.index).target;
            add(target, 'dmaTransfers', m.dmaTransfers ?? 0);
            add(target, 'outsideDmaBytes', m.outsideDmaBytes ?? 0);
            checkCanaries(job, target);
            if (m.recovered) add(target, 'recovered');
            else if (after && st.unrecovered.length < 100)
              st.unrecovered.push({
                index: after.index,
                target,
                kind: plan(after.index).kind,
                outcome: after.outcome,
                why: m.why,
              });
          } else if (m.t === 'done') {
            job.done = true;
            void w.terminate();
            finishIfDone();
          }
        },
      );
      w.on('error', () => {
        /* handled at exit */
      });
      w.on('exit', () => {
        if (job.done || job.worker !== w) return;
        const at = job.heartbeat[0];
        if (!job.killing) {
          // The worker died on its own: host code failed. The trial it was running is a crash.
          const target = plan(at).target;
          add(target, 'hostCrashes');
          add(target, 'faults');
        }
        spawn(job, at + jobs.length, { index: at, outcome: job.killing ? 'deadline' : 'host-crash' });
      });
    };

    // A hung trial (a mutant looping forever) is a `deadline` fault: kill the worker, carry on.
    const watchdog = setInterval(() => {
      for (const job of jobs) {
        const since = job.heartbeat[1];
        if (job.done || job.killing || !since || Date.now() - since < o.trialDeadlineMs) continue;
        job.killing = true;
        const { kind, target } = plan(job.heartbeat[0]);
        add(target, 'faults');
        add(target, 'faulted');
        add(target, kind === 'device' ? 'devices' : 'mutants');
        count(target, 'deadline');
        reported++;
        native.eventfdWrite(job.cancelFd, 1);
        void job.worker!.terminate().then(() => native.eventfdRead(job.cancelFd));
      }
    }, 10);
    for (const job of jobs) spawn(job, job.index);
    const done = resolveAll;
    resolveAll = () => {
      clearInterval(watchdog);
      done();
    };
  });

  for (const job of jobs) {
    for (const m of Object.values(job.canaries)) m.close();
    for (const p of Object.values(job.ports)) if (p.dmaFd >= 0) native.close(p.dmaFd);
    native.close(job.irqFd);
    native.close(job.cancelFd);
    native.close(job.kickFd);
  }
  return snapshot();

  function snapshot(): CampaignStats {
    st.elapsedMs = Date.now() - started;
    st.faultsPerSec = Math.round((st.faults / Math.max(1, st.elapsedMs)) * 1000);
    const targets = Object.fromEntries(
      Object.entries(st.targets).map(([n, t]) => [n, { ...t, driverFaults: { ...t.driverFaults } }]),
    );
    return { ...st, targets, driverFaults: { ...st.driverFaults }, unrecovered: [...st.unrecovered] };
  }
}
