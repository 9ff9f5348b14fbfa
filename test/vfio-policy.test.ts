// DMA confinement as policy: a package whose device's DMA nothing confines is refused unless the
// operator allows it by name; the supervisor runs the backend's device recovery before a restart;
// an IOMMU fault the host sees on the device is handled like the driver's own fault.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Host, LoadError, loadPackage, type DeviceHandle, type Driver } from '../host/index.ts';
import { dmaConfinement, manifestConfinement } from '../host/devices/confinement.ts';
import { appendSection, MANIFEST_SECTION } from '../host/package/sign.ts';
import { driverPath, root, u32, words } from './helpers.ts';

const eduManifest = JSON.parse(readFileSync(join(root, 'guest-drivers', 'edu', 'manifest.json'), 'utf8'));
const pack = (manifest: object, driver = 'edu') =>
  appendSection(
    new Uint8Array(readFileSync(driverPath(driver))),
    MANIFEST_SECTION,
    new TextEncoder().encode(JSON.stringify(manifest)),
  );
const noFirewall = {
  ...eduManifest,
  regions: eduManifest.regions.map((r: Record<string, unknown>) => ({ ...r, dmaEngines: undefined })),
};

let host: Host;
afterEach(() => host?.close());

/** A simulated edu whose spec claims the given confinement (what a VFIO no-IOMMU device reports). */
function device(h: Host, id: string, extra: Partial<DeviceHandle> = {}, confinement?: 'none' | 'iommu'): DeviceHandle {
  const sim = h.openDevice(id);
  return { ...sim, spec: { ...sim.spec, dmaConfinement: confinement }, ...extra };
}

describe('DMA confinement', () => {
  it('per device kind and manifest', () => {
    const pciUio = {
      id: 'uio0',
      name: 'uio_pci_generic',
      pci: { vendor: 0x1234, device: 0x11e8 },
      regions: [],
      ports: [],
      dma: [],
      irq: null,
    };
    expect(dmaConfinement(pciUio, eduManifest)).toBe('register-firewall');
    expect(dmaConfinement(pciUio, noFirewall)).toBe('none');
    expect(dmaConfinement({ ...pciUio, pci: undefined }, noFirewall)).toBe('no-dma');
    expect(dmaConfinement({ ...pciUio, dmaConfinement: 'iommu' }, noFirewall)).toBe('iommu');
    expect(manifestConfinement(noFirewall)).toEqual({ vfio: 'iommu', uio: 'none', sim: 'simulated' });
  });

  it('a package on a device with unconfined DMA is refused, naming the fix, and loads when allowed by name', async () => {
    host = new Host();
    const dev = device(host, 'sim:edu:p1', {}, 'none');
    const err = await loadPackage(host, pack(eduManifest), dev, { allowUnsigned: ['edu'] }).catch((e) => e);
    expect(err).toBeInstanceOf(LoadError);
    expect(err.message).toBe(
      'package: edu would drive sim:edu:p1 with unconfined DMA (VFIO runs in no-IOMMU mode): refused; bind the device to vfio-pci on a machine with an IOMMU, or allow it by name with --allow-unconfined-dma edu',
    );
    expect(host.drivers).toHaveLength(0);
    const other = await loadPackage(host, pack(eduManifest), dev, {
      allowUnsigned: ['edu'],
      allowUnconfinedDma: ['uart16550'],
    }).catch((e) => e);
    expect(other).toBeInstanceOf(LoadError);
    const drv = await loadPackage(host, pack(eduManifest), dev, {
      allowUnsigned: ['edu'],
      allowUnconfinedDma: ['edu'],
    });
    expect(words(await drv.request(2, u32(5)))).toEqual([120]);
  });

  it('an IOMMU-confined device takes a package whose manifest declares no DMA registers', async () => {
    host = new Host();
    const drv = await loadPackage(host, pack(noFirewall), device(host, 'sim:edu:p2', {}, 'iommu'), {
      allowUnsigned: ['edu'],
    });
    expect(words(await drv.request(2, u32(6)))).toEqual([720]);
  });
});

describe('supervisor and the device backend', () => {
  const fast = { backoffMs: 5, maxBackoffMs: 40 };
  async function restarted(drv: Driver): Promise<void> {
    const outcome = await Promise.race([
      once(drv, 'restarted').then(() => 'restarted'),
      once(drv, 'failed').then(() => 'failed'),
    ]);
    expect(outcome, `last fault: ${drv.lastFault?.kind} ${drv.lastFault?.message}`).toBe('restarted');
  }

  it("runs the backend's recovery between the fault and the restart, and logs what it did", async () => {
    host = new Host();
    const calls: string[] = [];
    const dev = device(host, 'sim:edu:r1', { recover: () => (calls.push(`recover while ${drv.state}`), 'reset done') });
    const logs: string[] = [];
    host.on('log', (e) => logs.push(e.message));
    const drv = await host.load(driverPath('test/broken'), dev, { name: 'r1', restart: fast });
    await drv.request(6).catch(() => {});
    await restarted(drv);
    expect(calls).toEqual(['recover while restarting']);
    expect(logs).toContain('device recovery: reset done');
  });

  it('a failing recovery leaves the driver failed, its requests answered', async () => {
    host = new Host();
    const dev = device(host, 'sim:edu:r2', {
      recover: () => {
        throw new Error('VFIO_DEVICE_RESET 0000:00:03.0: EIO');
      },
    });
    const drv = await host.load(driverPath('test/broken'), dev, { name: 'r2', restart: fast });
    const failed = once(drv, 'failed');
    await drv.request(6).catch(() => {});
    await failed;
    expect(drv.state).toBe('failed');
    const err = await drv.request(0).catch((e) => e);
    expect(err.code).toBe('driver-failed');
  });

  it('an IOMMU fault reported for the device faults the driver, which is recovered and restarted', async () => {
    host = new Host();
    let recovered = 0;
    const dev = device(host, 'sim:edu:r3', { recover: () => `reset ${++recovered}` });
    const drv = await host.load(driverPath('edu'), dev, { name: 'r3', restart: fast });
    drv.deviceFault(
      'iommu-fault',
      'sim:edu:r3: the IOMMU blocked a DMA of the device: DMAR: [DMA Write NO_PASID] Request device [00:03.0] fault addr 0x900000',
    );
    expect(drv.lastFault).toMatchObject({ kind: 'iommu-fault' });
    await restarted(drv);
    expect(recovered).toBe(1);
    expect(words(await drv.request(2, u32(4)))).toEqual([24]);
  });
});

describe("the rogue-DMA fixture (the VM test's hostile driver)", () => {
  it("with an allow-all grant it aims edu's DMA anywhere; under the edu manifest's grant the register firewall stops it", async () => {
    host = new Host();
    const warnings: string[] = [];
    host.on('log', (e) => warnings.push(e.message));
    const allowAll = await host.load(driverPath('test/edu-rogue-dma'), 'sim:edu:h1', {
      name: 'h1',
      grant: { regions: { 0: { read: true, write: true } } },
      restart: false,
    });
    expect(words(await allowAll.request(0))[0] & 0xff).toBe(0xed);
    // the simulated edu reaches only its windows: a DMA elsewhere is a guest error, not a write
    expect(words(await allowAll.request(1, u32(0x900000, 0, 4096)))).toEqual([0]);
    expect(warnings.some((w) => /0x900000/.test(w))).toBe(true);
    await host.close();
    host = new Host();
    // the rogue module packaged under the edu manifest: it loads (its probe is edu's), the grant is the manifest's
    const fenced = await loadPackage(host, pack(eduManifest, 'test/edu-rogue-dma'), 'sim:edu:h2', {
      allowUnsigned: ['edu'],
      onWarning: () => {},
    });
    const err = await fenced.request(1, u32(0x900000, 0, 4096)).catch((e) => e);
    expect(err.code).toBe('driver-restarted');
    expect(fenced.lastFault?.kind).toBe('dma-firewall');
  });
});
