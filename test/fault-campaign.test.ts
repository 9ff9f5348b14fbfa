// A small fault-injection campaign over its three targets (edu, uart16550, e1000): mutated drivers and
// misbehaving devices, descriptor faults on the e1000. The host must not crash, nothing may be written
// or DMAed outside granted memory, the sandbox must detect several kinds, and the devices come back.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCampaign } from '../host/campaign/campaign.ts';
import { CANARY, TARGETS, type TargetName, driverFile, targetSpec } from '../host/campaign/targets.ts';
import { makeEnv, recoveryFailure, dmaRecordOf } from '../host/campaign/trial.ts';
import { FaultError } from '../host/faults.ts';
import { loadNative } from '../host/native.ts';
import { decodeFrames, encodeFrames } from '../host/net/e1000.ts';
import { DriverInstance } from '../host/sandbox/instance.ts';
import { DeviceSession } from '../host/sandbox/session.ts';
import { DriverShared } from '../host/sandbox/shared.ts';
import { e1000Inject } from '../host/sim/e1000.ts';
import { root } from './helpers.ts';

const DESCRIPTOR_KINDS = /^dma-descriptor-/;

describe('fault-injection campaign', () => {
  it('1,000 faults over edu, uart16550 and e1000: no host crash, no write or DMA outside a grant, many kinds detected, every fault recovered', async () => {
    const r = await runCampaign({ faults: 1000, seed: 42, jobs: 2, trialDeadlineMs: 250 });
    expect(r.faults + r.notInjected).toBe(1000);
    expect(r.faults).toBeGreaterThan(950);
    expect(r.hostCrashes).toBe(0);
    expect(r.outsideGrantWrites).toBe(0);
    // The devices' own record of every DMA they performed: none reached outside the window, and it saw plenty.
    expect(r.outsideDmaBytes).toBe(0);
    expect(r.targetNames).toEqual(['edu', 'uart16550', 'e1000']);
    for (const name of r.targetNames) {
      const t = r.targets[name]!;
      expect(t.faults, name).toBeGreaterThan(250);
      expect(t.mutants, name).toBeGreaterThan(100);
      expect(t.devices, name).toBeGreaterThan(100);
      expect(t.faulted, name).toBeGreaterThan(20);
      expect(t.hostCrashes, name).toBe(0);
      expect(t.outsideGrantWrites, name).toBe(0);
      expect(t.outsideDmaBytes, name).toBe(0);
      expect(t.recovered, name).toBeGreaterThanOrEqual(t.faulted - (t.driverFaults.deadline ?? 0));
    }
    // The totals are the targets' sums.
    expect(r.targetNames.reduce((n, k) => n + r.targets[k]!.faults, 0)).toBe(r.faults);
    expect(r.targets.e1000!.dmaTransfers).toBeGreaterThan(2000); // frames out and in through the rings
    expect(r.targets.edu!.dmaTransfers).toBeGreaterThan(100);
    expect(r.targets.uart16550!.dmaTransfers).toBe(0); // a UART does no DMA
    // The descriptor firewall met the misbehaving e1000s and the mutants.
    expect(Object.keys(r.targets.e1000!.driverFaults).some((k) => DESCRIPTOR_KINDS.test(k))).toBe(true);
    expect(Object.keys(r.driverFaults).length).toBeGreaterThanOrEqual(8);
  }, 120_000);

  it('is reproducible from its seed, targets included', async () => {
    const a = await runCampaign({ faults: 200, seed: 9, jobs: 1, trialDeadlineMs: 1000 });
    const b = await runCampaign({ faults: 200, seed: 9, jobs: 1, trialDeadlineMs: 1000 });
    expect(b.driverFaults).toEqual(a.driverFaults);
    expect(b.benign).toBe(a.benign);
    for (const n of a.targetNames) expect(b.targets[n]!.faults, n).toBe(a.targets[n]!.faults);
    const only = await runCampaign({ faults: 60, seed: 9, jobs: 1, trialDeadlineMs: 1000, targets: ['uart16550'] });
    expect(only.targetNames).toEqual(['uart16550']);
    expect(only.targets.uart16550!.faults + only.notInjected).toBe(60);
  }, 120_000);
});

/** One e1000 on the campaign's resources, with the descriptor firewall on, for a hand-made misbehaving device. */
function e1000Rig() {
  const n = loadNative();
  const t = TARGETS.e1000;
  const dmaFd = n.memfdCreate('campaign-test-e1000', CANARY * 2 + t.window);
  const fds = { irqFd: n.eventfdCreate(0), cancelFd: n.eventfdCreate(0), kickFd: n.eventfdCreate(0) };
  const env = makeEnv(
    { e1000: new Uint8Array(readFileSync(driverFile(t))) },
    ['e1000'],
    { e1000: { dmaFd } },
    { state: new SharedArrayBuffer(t.stateBytes), ...fds },
    new DriverShared(DriverShared.create(64)),
  );
  const te = env.targets.e1000!;
  const calm = { garbageReads: 0, spuriousIrqs: 0, dropIrqs: 0, stuck: undefined };
  return {
    env,
    te,
    /** Probe the good driver on a faulty e1000 with these descriptor faults, then inject frames and receive. */
    run(faults: Record<string, number>) {
      new Uint8Array(env.state).fill(0);
      const options = { ...te.target.misbehave(() => 0, te.grant), ...calm, ...faults };
      const spec = targetSpec(te.target, te.port, env, 'faulty', options);
      const session = new DeviceSession(spec, { virtual: true });
      const inst = DriverInstance.create('t', te.bytes, session, env.shared, {
        cancelFd: env.cancelFd,
        grant: te.grant,
        hooks: { log: () => {} },
      });
      const sent = Uint8Array.from({ length: 100 }, (_, i) => (i < 6 ? [0x52, 0x54, 0, 0x12, 0x34, 0x56][i] : i));
      try {
        expect(inst.probe()).toBe(0);
        e1000Inject({ ...spec, sim: { ...spec.sim!, model: 'e1000' } }, [sent, sent, sent]);
        session.kicked();
        const got: Uint8Array[] = [];
        for (let k = 0; k < 3; k++) {
          inst.request(1, encodeFrames([sent]).payload);
          const r = inst.request(2, new Uint8Array(new Uint32Array([8, 2_000_000]).buffer));
          if (r instanceof Uint8Array) got.push(...decodeFrames(r));
        }
        return { got, sent, fault: undefined as FaultError | undefined };
      } catch (err) {
        if (!(err instanceof FaultError)) throw err;
        return { got: [], sent, fault: err };
      } finally {
        inst.close();
        session.close();
      }
    },
    close() {
      n.close(dmaFd);
      for (const fd of Object.values(fds)) n.close(fd);
    },
  };
}

describe('descriptor faults of a misbehaving e1000 (host/sim/faulty.ts)', () => {
  const check = (rig: ReturnType<typeof e1000Rig>) => {
    // A fresh good driver serves again; the device's record (the trial's and the recovery's DMA) saw
    // transfers, none of them outside the window.
    expect(recoveryFailure(rig.env, 'e1000' as TargetName)).toBeUndefined();
    const rec = dmaRecordOf(rig.env, 'e1000');
    expect(rec.dmaTransfers).toBeGreaterThan(10);
    expect(rec.outsideDmaBytes).toBe(0);
  };

  it('garbage write-backs (length, status) reach the driver through the firewall: frames are lost or wrong, nothing outside', () => {
    const rig = e1000Rig();
    try {
      const { got, sent, fault } = rig.run({ garbageWriteBacks: 1, onset: 20 });
      expect(fault).toBeUndefined();
      expect(got.filter((f) => f.length === sent.length && f.every((b, i) => b === sent[i])).length).toBeLessThan(3);
      check(rig);
    } finally {
      rig.close();
    }
  });

  it('head registers reading out of range end the driver with a typed descriptor fault naming the head', () => {
    const rig = e1000Rig();
    try {
      const { fault } = rig.run({ badHeads: 1, onset: 20 });
      expect(fault?.kind).toMatch(DESCRIPTOR_KINDS);
      expect(fault?.message).toMatch(/ring "(rx|tx)".*head/);
      check(rig);
    } finally {
      rig.close();
    }
  });

  it('write-backs onto descriptors never handed over, with lying heads: contained, nothing outside', () => {
    const rig = e1000Rig();
    try {
      rig.run({ strayWriteBacks: 1, badHeads: 0.2, garbageWriteBacks: 0.5, onset: 30 });
      check(rig);
    } finally {
      rig.close();
    }
  });
});

describe('wasmdrv fault-campaign', () => {
  const bin = join(root, 'bin', 'wasmdrv.js');
  const run = (args: string[]) => spawnSync(process.execPath, [bin, 'fault-campaign', ...args], { encoding: 'utf8' });

  it('--targets names an unknown target in one line and exits 2', () => {
    const r = run(['--faults', '1', '--targets', 'edu,nic9']);
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(/--targets: unknown target "nic9" \(known: edu, uart16550, e1000\)/);
  });

  it('--json gives the totals and per-target figures', () => {
    const r = run(['--faults', '40', '--targets', 'uart16550,e1000', '--jobs', '1', '--json']);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(j.targetNames).toEqual(['uart16550', 'e1000']);
    expect(j.targets.uart16550.faults + j.targets.e1000.faults).toBe(j.faults);
    expect(j.targets.e1000.dmaTransfers).toBeGreaterThan(0);
    expect(j.targets.edu).toBeUndefined();
    expect(r.stdout).toMatch(/^e1000: \d+ faults/m);
  });
});
