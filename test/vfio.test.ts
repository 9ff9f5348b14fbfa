// The VFIO backend. This machine has no IOMMU: the real path (container, group, MAP_DMA, MSI) runs
// in the QEMU guest (scripts/vm/scenarios/vfio.mjs). Here: the addon's ioctl wrappers report errno,
// the ioctl's name and the device; the preflight reads a fake sysfs and names each fix.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNative } from '../host/native.ts';
import { iommuFaultMentions } from '../host/devices/iommu-faults.ts';
import { openVfioDevice } from '../host/devices/vfio.ts';
import { discoverPci, memlockLimit, planVfio } from '../host/devices/vfio-plan.ts';

const native = loadNative();

describe('VFIO ioctls in the addon', () => {
  it('a VFIO ioctl on a non-VFIO fd throws with errno, the ioctl name and the device', () => {
    const fd = native.open('/dev/null');
    try {
      let err: any;
      try {
        native.vfioGroupStatus(fd, '0000:00:03.0');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Error);
      expect(err.syscall).toBe('ioctl');
      expect(err.ioctl).toBe('VFIO_GROUP_GET_STATUS');
      expect(err.path).toBe('0000:00:03.0');
      expect(err.errno).toBeGreaterThan(0);
      expect(err.message).toMatch(/^VFIO_GROUP_GET_STATUS 0000:00:03\.0: /);
      expect(() => native.vfioRegionInfo(fd, 7, '0000:00:03.0')).toThrow(
        /VFIO_DEVICE_GET_REGION_INFO 0000:00:03\.0 region 7/,
      );
      expect(() => native.vfioSetIrqs(fd, 1, 0, 32, Int32Array.of(-1), '0000:00:03.0')).toThrow(
        /VFIO_DEVICE_SET_IRQS 0000:00:03\.0 irq 1/,
      );
      expect(() => native.vfioDeviceReset(fd, 'dev')).toThrow(/VFIO_DEVICE_RESET dev/);
    } finally {
      native.close(fd);
    }
  });

  it('MAP_DMA refuses a detached or empty buffer before any ioctl', () => {
    expect(() => native.vfioMapDma(-1, new ArrayBuffer(0), 0x100000n, 3, 'x')).toThrow(
      /VFIO_IOMMU_MAP_DMA x \(empty or detached buffer\)/,
    );
  });

  it('SET_IRQS takes only MASK, UNMASK or TRIGGER', () => {
    expect(() => native.vfioSetIrqs(-1, 0, 0, 4 as 8, 1, 'x')).toThrow(/action must be MASK, UNMASK or TRIGGER/);
  });
});

// A fake sysfs: edu bound to vfio-pci alone in group 7; an e1000 bound to vfio-pci sharing group 9
// with a function still bound to e1000; a device bound to uio_pci_generic; one without a group.
const root = mkdtempSync(join(tmpdir(), 'wasmdrv-vfio-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const sys = join(root, 'sys');
const dev = join(root, 'dev');
function file(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${text}\n`);
}
function pci(slot: string, vendor: string, device: string, cls: string, driver?: string, group?: number): void {
  const d = join(sys, 'devices', 'pci0000:00', slot);
  file(join(d, 'vendor'), vendor);
  file(join(d, 'device'), device);
  file(join(d, 'class'), cls);
  mkdirSync(join(sys, 'bus', 'pci', 'devices'), { recursive: true });
  symlinkSync(d, join(sys, 'bus', 'pci', 'devices', slot));
  if (driver) {
    mkdirSync(join(sys, 'bus', 'pci', 'drivers', driver), { recursive: true });
    symlinkSync(join(sys, 'bus', 'pci', 'drivers', driver), join(d, 'driver'));
  }
  if (group !== undefined) {
    const g = join(sys, 'kernel', 'iommu_groups', String(group));
    mkdirSync(join(g, 'devices'), { recursive: true });
    symlinkSync(g, join(d, 'iommu_group'));
    symlinkSync(d, join(g, 'devices', slot));
  }
}
pci('0000:00:03.0', '0x1234', '0x11e8', '0x00ff00', 'vfio-pci', 7);
pci('0000:00:04.0', '0x8086', '0x100e', '0x020000', 'vfio-pci', 9);
pci('0000:00:04.1', '0x8086', '0x100e', '0x020000', 'e1000', 9);
pci('0000:00:05.0', '0x1234', '0x11e8', '0x00ff00', 'uio_pci_generic', 10);
pci('0000:00:06.0', '0x1234', '0x11e8', '0x00ff00', undefined, undefined);
pci('0000:00:00.0', '0x8086', '0x29c0', '0x060000', undefined, 0);
file(join(dev, 'vfio', '7'), '');
file(
  join(root, 'proc', 'self', 'limits'),
  'Limit                     Soft Limit           Hard Limit           Units\nMax locked memory         65536                65536                bytes\n',
);
const roots = { sysfs: sys, dev, proc: join(root, 'proc') };

describe('VFIO discovery and preflight', () => {
  it('lists PCI devices with driver, IOMMU group and possible backends', () => {
    const found = discoverPci(roots);
    expect(found.map((d) => [d.slot, d.driver, d.iommuGroup, d.backends.join('+')])).toEqual([
      ['0000:00:00.0', undefined, 0, ''],
      ['0000:00:03.0', 'vfio-pci', 7, 'vfio+uio'],
      ['0000:00:04.0', 'vfio-pci', 9, 'vfio+uio'],
      ['0000:00:04.1', 'e1000', 9, 'vfio+uio'],
      ['0000:00:05.0', 'uio_pci_generic', 10, 'vfio+uio'],
      ['0000:00:06.0', undefined, undefined, 'uio'],
    ]);
    expect(found[1]).toMatchObject({ vendor: 0x1234, device: 0x11e8, class: 0xff00, noiommu: false });
  });

  it('a device alone in its group and bound to vfio-pci is planned with its group node', () => {
    expect(planVfio('0000:00:03.0', roots)).toEqual({
      slot: '0000:00:03.0',
      group: 7,
      groupNode: join(dev, 'vfio', '7'),
      noiommu: false,
    });
  });

  it('refuses clearly, naming the fix', () => {
    expect(() => planVfio('00:03.0', roots)).toThrow(
      '"00:03.0" is not a PCI address (want DDDD:BB:DD.F, e.g. 0000:00:03.0)',
    );
    expect(() => planVfio('0000:00:09.0', roots)).toThrow(/0000:00:09\.0: no such PCI device/);
    expect(() => planVfio('0000:00:05.0', roots)).toThrow(
      '0000:00:05.0 is bound to uio_pci_generic, not vfio-pci: run `wasmdrv bind 0000:00:05.0 --vfio`',
    );
    expect(() => planVfio('0000:00:04.0', roots)).toThrow(
      'IOMMU group 9 of 0000:00:04.0 is not viable: 0000:00:04.1 in the same group is bound to e1000; run `wasmdrv bind 0000:00:04.1 --vfio` (or unbind it) first',
    );
  });

  it('a device without an IOMMU group names the kernel option', () => {
    mkdirSync(join(sys, 'bus', 'pci', 'drivers', 'vfio-pci'), { recursive: true });
    const d = join(sys, 'devices', 'pci0000:00', '0000:00:06.0');
    symlinkSync(join(sys, 'bus', 'pci', 'drivers', 'vfio-pci'), join(d, 'driver'));
    expect(() => planVfio('0000:00:06.0', roots)).toThrow(
      /has no IOMMU group: the kernel runs without an IOMMU \(boot with intel_iommu=on/,
    );
  });

  it('reads RLIMIT_MEMLOCK from /proc/self/limits', () => {
    expect(memlockLimit(roots)).toBe(65536);
    expect(memlockLimit()).toBeGreaterThan(0);
  });

  it('opening through a container that does not exist fails naming the node, with nothing left open', () => {
    expect(() => openVfioDevice('0000:00:03.0', { roots })).toThrow(
      new RegExp(`0000:00:03\\.0: open /dev/vfio/vfio: open ${join(dev, 'vfio', 'vfio')}: .*ENOENT`),
    );
  });

  it('recognises DMAR and AMD-Vi fault records for the device and only for it', () => {
    const dmar =
      '3,812,10523344,-;DMAR: [DMA Write NO_PASID] Request device [00:03.0] fault addr 0x900000 [fault reason 0x05] PTE Write access is not set';
    expect(iommuFaultMentions(dmar, '0000:00:03.0')).toBe(true);
    expect(iommuFaultMentions(dmar, '0000:00:04.0')).toBe(false);
    expect(
      iommuFaultMentions(
        '3,1,1,-;AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x000e address=0x900000 flags=0x0020] device=00:03.0',
        '0000:00:03.0',
      ),
    ).toBe(true);
    expect(iommuFaultMentions('6,2,2,-;e1000 0000:00:03.0 eth0: link up', '0000:00:03.0')).toBe(false);
  });
});

describe('wasmdrv bind', () => {
  it('writes driver_override, unbinds from the current driver and asks the kernel to probe', async () => {
    const { bindDevice } = await import('../host/cli/bind.ts');
    const bus = join(sys, 'bus', 'pci');
    // the fake "kernel" does not react: the device stays with uio_pci_generic, which bind reports
    file(join(bus, 'drivers_probe'), '');
    expect(() => bindDevice('0000:00:05.0', 'vfio-pci', roots)).toThrow(
      '0000:00:05.0: the kernel did not bind it to vfio-pci (it is bound to uio_pci_generic); see dmesg',
    );
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(join(sys, 'devices', 'pci0000:00', '0000:00:05.0', 'driver_override'), 'utf8')).toBe(
      'vfio-pci\n',
    );
    expect(readFileSync(join(bus, 'drivers', 'uio_pci_generic', 'unbind'), 'utf8')).toBe('0000:00:05.0');
    expect(readFileSync(join(bus, 'drivers_probe'), 'utf8')).toBe('0000:00:05.0');
    // --kernel clears the override (a lone newline)
    bindDevice('0000:00:05.0', '', roots);
    expect(readFileSync(join(sys, 'devices', 'pci0000:00', '0000:00:05.0', 'driver_override'), 'utf8')).toBe('\n');
  });

  it('an already bound device is left alone, with a note when its group is not viable', async () => {
    const { bindDevice } = await import('../host/cli/bind.ts');
    expect(bindDevice('0000:00:03.0', 'vfio-pci', roots)).toEqual({
      slot: '0000:00:03.0',
      before: 'vfio-pci',
      after: 'vfio-pci',
      note: undefined,
    });
    expect(bindDevice('0000:00:04.0', 'vfio-pci', roots).note).toMatch(
      /IOMMU group 9 of 0000:00:04\.0 is not viable: 0000:00:04\.1/,
    );
  });

  it('refuses bridges, unloaded modules and VFIO without an IOMMU group', async () => {
    const { bindDevice } = await import('../host/cli/bind.ts');
    expect(() => bindDevice('0000:00:00.0', 'vfio-pci', roots)).toThrow(
      '0000:00:00.0 is a bridge (class 0x60000): bridges stay with the kernel',
    );
    expect(() => bindDevice('0000:00:03.0', 'igb_uio', roots)).toThrow(
      'igb_uio is not loaded: run `modprobe igb_uio` first',
    );
    const bare = mkdtempSync(join(tmpdir(), 'wasmdrv-vfio-bare-'));
    try {
      const d = join(bare, 'bus', 'pci', 'devices', '0000:00:07.0');
      file(join(d, 'class'), '0x00ff00');
      mkdirSync(join(bare, 'bus', 'pci', 'drivers', 'vfio-pci'), { recursive: true });
      expect(() => bindDevice('0000:00:07.0', 'vfio-pci', { sysfs: bare })).toThrow(
        /has no IOMMU group: the kernel runs without an IOMMU .*; use --uio instead/,
      );
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  it('the CLI: usage errors exit 2, operation failures exit 1 with one line', async () => {
    const { spawnSync } = await import('node:child_process');
    const cli = join(__dirname, '..', 'bin', 'wasmdrv.js');
    const usage = spawnSync(process.execPath, [cli, 'bind', '0000:00:03.0'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/exactly one of --vfio, --uio, --kernel/);
    const fail = spawnSync(process.execPath, [cli, 'bind', '0000:00:05.0', '--vfio', '--sysfs', sys], {
      encoding: 'utf8',
    });
    expect(fail.status).toBe(1);
    expect(fail.stderr.trim().split('\n')).toHaveLength(1);
    expect(spawnSync(process.execPath, [cli, 'bind', '--help'], { encoding: 'utf8' }).status).toBe(0);
  });
});
