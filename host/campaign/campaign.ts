// The fault-injection campaign (npm run fault-campaign): inject N faults — mutated driver binaries and
// misbehaving devices — and count what the host lived through.
//
//   faults              trials that injected a fault
//   hostCrashes         campaign workers that died of an error in host code (must be 0)
//   outsideGrantWrites  canary pages around every DMA window that changed (must be 0)
//   outsideDmaBytes     bytes the device's DMA reached outside its window, from the device's own
//                       record of every transfer (sim/dma-record.ts; must be 0: every trial runs
//                       under the shipped edu manifest's grant, DMA firewall included)
//   dmaTransfers        transfers that record saw (so a 0 above is not a record that saw nothing)
//   driverFaults        faults the sandbox detected, by kind (plus load and probe refusals)
//   recovered           faulted trials after which a fresh driver reset the device and served again
//   benign              injected faults that changed nothing observable

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadNative, packageRoot, type Mapping } from '../native.ts';
import { DriverShared } from '../sandbox/shared.ts';
import { CANARY, DMA_WINDOW, EDU_STATE_BYTES, trialKind, type TrialResult } from './trial.ts';

export interface CampaignOptions {
  faults: number;
  seed: number;
  jobs: number;
  /** A trial running longer than this is a hang: its worker is killed. Default 250 ms. */
  trialDeadlineMs: number;
  driver?: string;
  onProgress?: (s: CampaignStats) => void;
}

export interface CampaignStats {
  faults: number;
  hostCrashes: number;
  outsideGrantWrites: number;
  outsideDmaBytes: number;
  dmaTransfers: number;
  driverFaults: Record<string, number>;
  recovered: number;
  /** Faulted trials after which the device did not come back (the first 100): replay with their index. */
  unrecovered: { index: number; kind: string; outcome: string; why?: string }[];
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
  dmaFd: number;
  irqFd: number;
  cancelFd: number;
  canaries: Mapping;
  done: boolean;
  killing: boolean;
}

const PATTERN = 0xa5;

export async function runCampaign(o: CampaignOptions): Promise<CampaignStats> {
  const native = loadNative();
  const eduBytes = new Uint8Array(readFileSync(o.driver ?? join(packageRoot(), 'build', 'drivers', 'edu.wasm')));
  const started = Date.now();
  const st: CampaignStats = {
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
  const count = (k: string) => (st.driverFaults[k] = (st.driverFaults[k] ?? 0) + 1);
  let reported = 0;
  // Progress every 1% of the campaign (at least every 200 trials): a short one shows movement too.
  const every = Math.max(1, Math.min(200, Math.ceil(o.faults / 100)));

  const jobs: Job[] = Array.from({ length: Math.max(1, o.jobs) }, (_, index) => {
    const size = CANARY + DMA_WINDOW + CANARY;
    const dmaFd = native.memfdCreate(`wasmdrv-campaign-dma${index}`, size);
    const canaries = native.mapFd(dmaFd, size, 0, 'campaign DMA memfd');
    const bytes = new Uint8Array(canaries.buffer());
    bytes.subarray(0, CANARY).fill(PATTERN);
    bytes.subarray(CANARY + DMA_WINDOW).fill(PATTERN);
    const heartbeatBuf = new SharedArrayBuffer(16);
    return {
      index,
      heartbeat: new Float64Array(heartbeatBuf),
      heartbeatBuf,
      state: new SharedArrayBuffer(EDU_STATE_BYTES),
      shared: DriverShared.create(64),
      dmaFd,
      irqFd: native.eventfdCreate(0),
      cancelFd: native.eventfdCreate(0),
      canaries,
      done: false,
      killing: false,
    };
  });

  const checkCanaries = (job: Job) => {
    const b = new Uint8Array(job.canaries.buffer());
    const dirty = (from: number, to: number) => b.subarray(from, to).some((x) => x !== PATTERN);
    if (dirty(0, CANARY) || dirty(CANARY + DMA_WINDOW, b.length)) {
      st.outsideGrantWrites++;
      b.subarray(0, CANARY).fill(PATTERN);
      b.subarray(CANARY + DMA_WINDOW).fill(PATTERN);
    }
  };

  const record = (r: TrialResult) => {
    reported++;
    st.dmaTransfers += r.dmaTransfers;
    st.outsideDmaBytes += r.outsideDmaBytes;
    if (!r.injected) {
      st.notInjected++;
      return;
    }
    st.faults++;
    if (r.kind === 'mutant') st.mutants++;
    else st.devices++;
    if (r.outcome) {
      st.faulted++;
      count(r.outcome);
      if (r.recovered) st.recovered++;
      else if (st.unrecovered.length < 100)
        st.unrecovered.push({ index: r.index, kind: r.kind, outcome: r.outcome, why: r.whyNotRecovered });
    } else {
      st.benign++;
    }
  };

  await new Promise<void>((resolveAll) => {
    const finishIfDone = () => {
      if (jobs.every((j) => j.done)) resolveAll();
    };
    const spawn = (job: Job, first: number, recoverFirst: boolean, after?: { index: number; outcome: string }) => {
      // After a killed (hung) trial a worker always runs, even with no trials left: its first act is the
      // recovery check for the trial that hung.
      if (first >= o.faults && !recoverFirst) {
        job.done = true;
        finishIfDone();
        return;
      }
      job.heartbeat[0] = first;
      job.heartbeat[1] = 0;
      const w = new Worker(join(packageRoot(), 'dist', 'campaign-worker.js'), {
        workerData: {
          eduBytes,
          state: job.state,
          dmaFd: job.dmaFd,
          irqFd: job.irqFd,
          cancelFd: job.cancelFd,
          heartbeat: job.heartbeatBuf,
          shared: job.shared,
          seed: o.seed,
          first,
          stride: jobs.length,
          end: o.faults,
          recoverFirst,
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
            checkCanaries(job);
            if (reported % every === 0) o.onProgress?.(snapshot());
          } else if (m.t === 'recovery') {
            // after a killed (hung) or crashed trial: did a fresh driver bring the device back?
            st.dmaTransfers += m.dmaTransfers ?? 0;
            st.outsideDmaBytes += m.outsideDmaBytes ?? 0;
            if (m.recovered) st.recovered++;
            else if (after && st.unrecovered.length < 100)
              st.unrecovered.push({
                index: after.index,
                kind: trialKind(o.seed, after.index),
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
          st.hostCrashes++;
          st.faults++;
        }
        spawn(job, at + jobs.length, true, { index: at, outcome: job.killing ? 'deadline' : 'host-crash' });
      });
    };

    // A hung trial (a mutant looping forever) is a `deadline` fault: kill the worker, carry on.
    const watchdog = setInterval(() => {
      for (const job of jobs) {
        const since = job.heartbeat[1];
        if (job.done || job.killing || !since || Date.now() - since < o.trialDeadlineMs) continue;
        job.killing = true;
        st.faults++;
        st.faulted++;
        if (trialKind(o.seed, job.heartbeat[0]) === 'device') st.devices++;
        else st.mutants++;
        count('deadline');
        reported++;
        native.eventfdWrite(job.cancelFd, 1);
        void job.worker!.terminate().then(() => native.eventfdRead(job.cancelFd));
      }
    }, 10);
    for (const job of jobs) spawn(job, job.index, false);
    const done = resolveAll;
    resolveAll = () => {
      clearInterval(watchdog);
      done();
    };
  });

  for (const job of jobs) {
    checkCanaries(job);
    job.canaries.close();
    native.close(job.dmaFd);
    native.close(job.irqFd);
    native.close(job.cancelFd);
  }
  return snapshot();

  function snapshot(): CampaignStats {
    st.elapsedMs = Date.now() - started;
    st.faultsPerSec = Math.round((st.faults / Math.max(1, st.elapsedMs)) * 1000);
    return { ...st, driverFaults: { ...st.driverFaults } };
  }
}
