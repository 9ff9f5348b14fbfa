// PCI devices as `wasmdrv devices` shows them, in the manner of `lspci -k`: walk
// <sysfs>/bus/pci/devices, read each device's ids, class, bound kernel driver and IOMMU group, name
// them from the pci.ids database when hwdata/pciutils installed one, and say which wasmdrv backends
// can take the device.
//
//   <sysfs>/bus/pci/devices/DDDD:BB:DD.F/{vendor,device,class,revision,subsystem_vendor,subsystem_device}
//   .../driver -> .../bus/pci/drivers/NAME         the kernel driver bound (absent: none)
//   .../iommu_group -> .../kernel/iommu_groups/N   present when an IOMMU isolates the device
//   .../uio/uioN                                   the UIO device a UIO driver made for it
//
// Backends: "uio" when the device is bound to wasmdrv_uio or uio_pci_generic (it then has a uioN);
// "vfio" when it has an IOMMU group (ready once bound to vfio-pci).

import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';

/** Kernel drivers whose devices the UIO backend takes. */
export const UIO_DRIVERS = ['wasmdrv_uio', 'uio_pci_generic'];

export interface PciDevice {
  address: string;
  vendor: number;
  device: number;
  subsystemVendor?: number;
  subsystemDevice?: number;
  /** The 24-bit class code: class << 16 | subclass << 8 | prog-if. */
  class: number;
  revision?: number;
  vendorName?: string;
  deviceName?: string;
  /** The subclass name (or the class name when the subclass has none), as lspci prints it. */
  className?: string;
  /** The kernel driver bound to the device, if any. */
  driver?: string;
  iommuGroup?: string;
  /** UIO devices the bound driver created (uio0...). */
  uio: string[];
  backends: {
    uio?: { device: string };
    /** `noiommu`: the group is VFIO's fake no-IOMMU group (nothing confines the device's DMA). */
    vfio?: { group: string; bound: boolean; noiommu: boolean };
  };
}

/** Where Debian's hwdata and pciutils put the database. */
export const PCI_IDS_PATHS = ['/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids'];

export interface PciIds {
  vendor(v: number): string | undefined;
  device(v: number, d: number): string | undefined;
  /** The most specific name of a 24-bit class code: prog-if's parent subclass, else the class. */
  className(code: number): string | undefined;
}

/**
 * Parse pci.ids (its format: "vvvv  name", "\tdddd  name", "\t\tssss ssss  name" under a vendor;
 * "C cc  name", "\tss  name", "\t\tpp  name" for classes). Only the vendors asked for are kept.
 */
export function parsePciIds(text: string, vendors?: Set<number>): PciIds {
  const vendorNames = new Map<number, string>();
  const deviceNames = new Map<number, string>(); // vendor << 16 | device
  const classNames = new Map<number, string>(); // class
  const subclassNames = new Map<number, string>(); // class << 8 | subclass
  let vendor = -1;
  let cls = -1;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('C ')) {
      const m = /^C ([0-9a-f]{2})\s+(.*)$/.exec(line);
      vendor = -1;
      cls = m ? parseInt(m[1], 16) : -1;
      if (m) classNames.set(cls, m[2]);
      continue;
    }
    if (line[0] !== '\t') {
      const m = /^([0-9a-f]{4})\s+(.*)$/.exec(line);
      cls = -1;
      vendor = m ? parseInt(m[1], 16) : -1;
      if (m && (!vendors || vendors.has(vendor))) vendorNames.set(vendor, m[2]);
      continue;
    }
    if (line[1] === '\t') continue; // subsystems and prog-ifs
    const m = /^\t([0-9a-f]{2,4})\s+(.*)$/.exec(line);
    if (!m) continue;
    if (cls >= 0 && m[1].length === 2) subclassNames.set((cls << 8) | parseInt(m[1], 16), m[2]);
    else if (vendor >= 0 && m[1].length === 4 && (!vendors || vendors.has(vendor)))
      deviceNames.set(vendor * 0x10000 + parseInt(m[1], 16), m[2]);
  }
  return {
    vendor: (v) => vendorNames.get(v),
    device: (v, d) => deviceNames.get(v * 0x10000 + d),
    className: (code) => subclassNames.get(code >> 8) ?? classNames.get(code >> 16),
  };
}

export interface PciOptions {
  /** Default "/sys". Tests point this at a tree they build. */
  sysfs?: string;
  /** The pci.ids file; default the first of PCI_IDS_PATHS that exists; null for no names. */
  pciIds?: string | null;
}

/** A sysfs attribute's text, trimmed; undefined when it cannot be read. */
export function readOpt(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The last component of a symlink's target (a driver's or an IOMMU group's name); undefined if none. */
export function linkName(path: string): string | undefined {
  try {
    return basename(readlinkSync(path));
  } catch {
    return undefined;
  }
}

const num = (s: string | undefined) =>
  s === undefined || s === '' ? undefined : Number.isNaN(parseInt(s, 16)) ? undefined : parseInt(s, 16);

/** What sysfs says of one PCI function; an attribute that cannot be read is undefined. */
export interface PciFunction {
  /** The function's sysfs directory. */
  path: string;
  vendor?: number;
  device?: number;
  subsystemVendor?: number;
  subsystemDevice?: number;
  class?: number;
  revision?: number;
  /** The kernel driver bound to it. */
  driver?: string;
  /** The IOMMU group's name (a number), when an IOMMU isolates the function. */
  iommuGroup?: string;
  /** The group is VFIO's fake no-IOMMU group (nothing confines the function's DMA). */
  noiommu: boolean;
}

/**
 * The one reader of a PCI function's sysfs directory (`wasmdrv devices`, the VFIO preflight and the
 * UIO backend's PCI parent all go through it). `sysfs` is the root holding kernel/iommu_groups.
 */
export function readPciFunction(path: string, sysfs = '/sys'): PciFunction {
  const iommuGroup = linkName(join(path, 'iommu_group'));
  return {
    path,
    vendor: num(readOpt(join(path, 'vendor'))),
    device: num(readOpt(join(path, 'device'))),
    subsystemVendor: num(readOpt(join(path, 'subsystem_vendor'))),
    subsystemDevice: num(readOpt(join(path, 'subsystem_device'))),
    class: num(readOpt(join(path, 'class'))),
    revision: num(readOpt(join(path, 'revision'))),
    driver: linkName(join(path, 'driver')),
    iommuGroup,
    noiommu:
      iommuGroup !== undefined && readOpt(join(sysfs, 'kernel', 'iommu_groups', iommuGroup, 'name')) === 'vfio-noiommu',
  };
}

/** Every PCI device under <sysfs>/bus/pci/devices, in address order; [] when there is no PCI bus. */
export function listPci(o: PciOptions = {}): PciDevice[] {
  const dir = join(o.sysfs ?? '/sys', 'bus', 'pci', 'devices');
  if (!existsSync(dir)) return [];
  const devices: PciDevice[] = readdirSync(dir)
    .sort()
    .map((address) => {
      const d = join(dir, address);
      const f = readPciFunction(d, o.sysfs);
      const { driver, iommuGroup } = f;
      const uio = existsSync(join(d, 'uio'))
        ? readdirSync(join(d, 'uio'))
            .filter((e) => /^uio\d+$/.test(e))
            .sort()
        : [];
      const dev: PciDevice = {
        address,
        vendor: f.vendor ?? 0xffff,
        device: f.device ?? 0xffff,
        subsystemVendor: f.subsystemVendor,
        subsystemDevice: f.subsystemDevice,
        class: f.class ?? 0,
        revision: f.revision,
        driver,
        iommuGroup,
        uio,
        backends: {},
      };
      if (driver && UIO_DRIVERS.includes(driver) && uio.length) dev.backends.uio = { device: uio[0] };
      if (iommuGroup !== undefined)
        dev.backends.vfio = { group: iommuGroup, bound: driver === 'vfio-pci', noiommu: f.noiommu };
      return dev;
    });
  const idsFile = o.pciIds === undefined ? PCI_IDS_PATHS.find((p) => existsSync(p)) : (o.pciIds ?? undefined);
  if (idsFile && devices.length) {
    // Parsed only when there is something to name, and only for the vendors present.
    const ids = parsePciIds(readFileSync(idsFile, 'utf8'), new Set(devices.map((x) => x.vendor)));
    for (const x of devices) {
      x.vendorName = ids.vendor(x.vendor);
      x.deviceName = ids.device(x.vendor, x.device);
      x.className = ids.className(x.class);
    }
  }
  return devices;
}

const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');

/** The lspci -k style lines for one device. */
export function formatPci(x: PciDevice): string[] {
  const cls = `${x.className ?? 'Class'} [${hex(x.class >> 8, 4)}]`;
  const name = `${x.vendorName ?? ''} ${x.deviceName ?? ''}`.trim() || 'Device';
  const lines = [
    `${x.address} ${cls}: ${name} [${hex(x.vendor, 4)}:${hex(x.device, 4)}]${x.revision ? ` (rev ${hex(x.revision, 2)})` : ''}`,
  ];
  lines.push(`\tKernel driver in use: ${x.driver ?? 'none'}`);
  lines.push(`\tIOMMU group: ${x.iommuGroup ?? 'none'}`);
  const b: string[] = [];
  if (x.backends.uio) b.push(`uio (--device ${x.backends.uio.device})`);
  if (x.backends.vfio)
    b.push(`vfio (group ${x.backends.vfio.group}${x.backends.vfio.bound ? '' : ', bind it to vfio-pci first'})`);
  lines.push(
    `\twasmdrv backends: ${b.length ? b.join(', ') : `none (bind it to ${UIO_DRIVERS.join(' or ')} for uio; vfio needs an IOMMU group)`}`,
  );
  return lines;
}
