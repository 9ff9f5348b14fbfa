// `wasmdrv devices` in the manner of lspci -k: PCI ids and names, the bound kernel driver, the IOMMU
// group and the wasmdrv backends — against a sysfs tree built here, and against this machine's /sys.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatPci, listPci, parsePciIds } from '../host/devices/pci.ts';
import { root } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-pci-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sysfs = join(tmp, 'sys');

function file(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${text}\n`);
}
function pciDevice(
  addr: string,
  f: {
    vendor: string;
    device: string;
    class: string;
    revision?: string;
    driver?: string;
    group?: string;
    uio?: string;
  },
): void {
  const real = join(sysfs, 'devices', 'pci0000:00', addr);
  file(join(real, 'vendor'), f.vendor);
  file(join(real, 'device'), f.device);
  file(join(real, 'class'), f.class);
  if (f.revision) file(join(real, 'revision'), f.revision);
  if (f.driver) {
    mkdirSync(join(sysfs, 'bus', 'pci', 'drivers', f.driver), { recursive: true });
    symlinkSync(`../../../../bus/pci/drivers/${f.driver}`, join(real, 'driver'));
  }
  if (f.group) {
    mkdirSync(join(sysfs, 'kernel', 'iommu_groups', f.group), { recursive: true });
    symlinkSync(`../../../kernel/iommu_groups/${f.group}`, join(real, 'iommu_group'));
  }
  if (f.uio) mkdirSync(join(real, 'uio', f.uio), { recursive: true });
  mkdirSync(join(sysfs, 'bus', 'pci', 'devices'), { recursive: true });
  symlinkSync(`../../../devices/pci0000:00/${addr}`, join(sysfs, 'bus', 'pci', 'devices', addr));
}

// A host bridge (no driver), an edu behind the kernel stub, an e1000 in IOMMU group 7 bound to
// vfio-pci, and a virtio NIC with an IOMMU group but its own kernel driver.
pciDevice('0000:00:00.0', { vendor: '0x8086', device: '0x29c0', class: '0x060000' });
pciDevice('0000:00:03.0', {
  vendor: '0x1234',
  device: '0x11e8',
  class: '0x00ff00',
  revision: '0x10',
  driver: 'wasmdrv_uio',
  uio: 'uio0',
});
pciDevice('0000:00:04.0', {
  vendor: '0x8086',
  device: '0x100e',
  class: '0x020000',
  revision: '0x03',
  driver: 'vfio-pci',
  group: '7',
});
pciDevice('0000:00:05.0', { vendor: '0x1af4', device: '0x1041', class: '0x020000', driver: 'virtio-pci', group: '8' });
const pciIds = join(tmp, 'pci.ids');
writeFileSync(
  pciIds,
  [
    '# a cut of pci.ids in its real format',
    '1234  Technical Corp.',
    '\t11e8  QEMU PCI Test Device',
    '1af4  Red Hat, Inc.',
    '\t1041  Virtio 1.0 network device',
    '8086  Intel Corporation',
    '\t100e  82540EM Gigabit Ethernet Controller',
    '\t\t8086 001e  PRO/1000 MT Desktop Adapter',
    '\t29c0  82G33/G31/P35/P31 Express DRAM Controller',
    'C 00  Unclassified device',
    '\t00  Non-VGA unclassified device',
    'C 02  Network controller',
    '\t00  Ethernet controller',
    'C 06  Bridge',
    '\t00  Host bridge',
    '\t04  PCI bridge',
    '\t\t00  Normal decode',
    '',
  ].join('\n'),
);

describe('PCI devices from sysfs (lspci -k style)', () => {
  it('reads ids, class, driver, IOMMU group and the backends that can take each device', () => {
    const d = listPci({ sysfs, pciIds: null });
    expect(d.map((x) => x.address)).toEqual(['0000:00:00.0', '0000:00:03.0', '0000:00:04.0', '0000:00:05.0']);
    expect(d[0]).toMatchObject({
      vendor: 0x8086,
      device: 0x29c0,
      class: 0x060000,
      driver: undefined,
      iommuGroup: undefined,
      backends: {},
    });
    expect(d[1]).toMatchObject({
      vendor: 0x1234,
      device: 0x11e8,
      revision: 0x10,
      driver: 'wasmdrv_uio',
      uio: ['uio0'],
      backends: { uio: { device: 'uio0' } },
    });
    expect(d[1].backends.vfio).toBeUndefined();
    expect(d[2]).toMatchObject({
      driver: 'vfio-pci',
      iommuGroup: '7',
      backends: { vfio: { group: '7', bound: true } },
    });
    expect(d[3]).toMatchObject({
      driver: 'virtio-pci',
      iommuGroup: '8',
      backends: { vfio: { group: '8', bound: false } },
    });
    expect(d[3].backends.uio).toBeUndefined();
    expect(d[0].vendorName).toBeUndefined();
  });

  it('names vendors, devices and classes from pci.ids', () => {
    const d = listPci({ sysfs, pciIds });
    expect(d[1]).toMatchObject({
      vendorName: 'Technical Corp.',
      deviceName: 'QEMU PCI Test Device',
      className: 'Unclassified device',
    });
    expect(d[2]).toMatchObject({
      vendorName: 'Intel Corporation',
      deviceName: '82540EM Gigabit Ethernet Controller',
      className: 'Ethernet controller',
    });
    expect(d[0].className).toBe('Host bridge');
    expect(formatPci(d[2])).toEqual([
      '0000:00:04.0 Ethernet controller [0200]: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] (rev 03)',
      '\tKernel driver in use: vfio-pci',
      '\tIOMMU group: 7',
      '\twasmdrv backends: vfio (group 7)',
    ]);
    expect(formatPci(d[0]).at(-1)).toContain('none (bind it to wasmdrv_uio or uio_pci_generic');
  });

  it('keeps only the vendors asked for and falls back to the class when a subclass is unnamed', () => {
    const ids = parsePciIds(readFileSync(pciIds, 'utf8'), new Set([0x1af4]));
    expect(ids.vendor(0x1af4)).toBe('Red Hat, Inc.');
    expect(ids.vendor(0x8086)).toBeUndefined();
    expect(ids.className(0x068000)).toBe('Bridge');
    expect(ids.className(0x060400)).toBe('PCI bridge');
  });

  it('wasmdrv devices --json and the text listing show the fake tree', () => {
    const bin = join(root, 'bin', 'wasmdrv.js');
    const j = spawnSync(process.execPath, [bin, 'devices', '--json', '--sysfs', sysfs, '--pci-ids', pciIds], {
      encoding: 'utf8',
    });
    expect(j.status).toBe(0);
    const out = JSON.parse(j.stdout);
    expect(out.pci.map((x: { address: string }) => x.address)).toHaveLength(4);
    expect(out.pci[1].backends.uio.device).toBe('uio0');
    expect(out.sim.map((s: { id: string }) => s.id)).not.toContain('sim:fuzz');
    const t = spawnSync(process.execPath, [bin, 'devices', '--sysfs', sysfs, '--pci-ids', pciIds], {
      encoding: 'utf8',
    });
    expect(t.status).toBe(0);
    expect(t.stdout).toContain(
      '0000:00:03.0 Unclassified device [00ff]: Technical Corp. QEMU PCI Test Device [1234:11e8] (rev 10)',
    );
    expect(t.stdout).toContain('wasmdrv backends: uio (--device uio0)');
  });

  it("this machine's /sys: every device listed with the ids and driver sysfs shows", () => {
    const dir = '/sys/bus/pci/devices';
    const want = existsSync(dir) ? readdirSync(dir).sort() : [];
    const got = listPci();
    expect(got.map((x) => x.address)).toEqual(want);
    for (const x of got) {
      expect(x.vendor).toBe(parseInt(readFileSync(join(dir, x.address, 'vendor'), 'utf8'), 16));
      expect(x.class).toBe(parseInt(readFileSync(join(dir, x.address, 'class'), 'utf8'), 16));
      const drv = existsSync(join(dir, x.address, 'driver'))
        ? basename(readlinkSync(join(dir, x.address, 'driver')))
        : undefined;
      expect(x.driver).toBe(drv);
      expect(!!x.backends.vfio).toBe(existsSync(join(dir, x.address, 'iommu_group')));
    }
  });
});
