// The VFIO preflight: everything that can be checked from sysfs and /proc before /dev/vfio is touched
// (vfio.ts opens the device once this says it can). Which PCI functions VFIO could take, whether a
// function's IOMMU group is viable, where its group node is, and whether RLIMIT_MEMLOCK lets the DMA
// windows be pinned. Each refusal is one sentence naming the device and the fix.
//
//   /sys/bus/pci/devices/<BDF>/{vendor,device,class,driver,iommu_group}   (read by pci.ts)
//   /sys/kernel/iommu_groups/<N>/{devices/*,name}      name "vfio-noiommu" for a fake group
//   /dev/vfio/<N>  (/dev/vfio/noiommu-<N> in VFIO's unsafe no-IOMMU mode)
//   /proc/self/{limits,status}                         RLIMIT_MEMLOCK, CAP_IPC_LOCK

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeError } from '../native.ts';
import { readOpt, readPciFunction } from './pci.ts';

export interface VfioRoots {
  /** Default "/sys". Tests point this at a fake tree. */
  sysfs?: string;
  /** Default "/dev". */
  dev?: string;
  /** Default "/proc" (RLIMIT_MEMLOCK from /proc/self/limits). */
  proc?: string;
}

export class VfioError extends Error {
  /** The errno-carrying error underneath, when a syscall failed. */
  readonly cause?: NativeError;
  constructor(message: string, cause?: unknown) {
    super(message);
    this.name = 'VfioError';
    if (cause) this.cause = cause as NativeError;
  }
}

export interface PciDevice {
  slot: string;
  vendor: number;
  device: number;
  class: number;
  /** The bound kernel driver ("vfio-pci", "uio_pci_generic", "e1000"), or undefined. */
  driver?: string;
  /** IOMMU group number, or undefined when the kernel has no IOMMU for it. */
  iommuGroup?: number;
  /** True when the group is VFIO's fake no-IOMMU group. */
  noiommu: boolean;
  /** Backends that could take it ("vfio", "uio"), given how it is bound now or could be bound. */
  backends: string[];
}

export const BDF_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** Every PCI device in sysfs with its driver, IOMMU group and the backends that could take it. */
export function discoverPci(roots: VfioRoots = {}): PciDevice[] {
  const sysfs = roots.sysfs ?? '/sys';
  const dir = join(sysfs, 'bus', 'pci', 'devices');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((s) => BDF_RE.test(s))
    .sort()
    .map((slot) => pciDevice(slot, roots));
}

export function pciDevice(slot: string, roots: VfioRoots = {}): PciDevice {
  const sysfs = roots.sysfs ?? '/sys';
  const d = join(sysfs, 'bus', 'pci', 'devices', slot);
  if (!existsSync(d)) throw new VfioError(`${slot}: no such PCI device (${d} is missing)`);
  const f = readPciFunction(d, sysfs);
  const iommuGroup = f.iommuGroup !== undefined && /^\d+$/.test(f.iommuGroup) ? Number(f.iommuGroup) : undefined;
  const noiommu = iommuGroup !== undefined && f.noiommu;
  const cls = f.class ?? 0;
  const backends: string[] = [];
  // Bridges stay with the kernel; anything else can go to vfio-pci (with an IOMMU) or uio_pci_generic.
  if (cls >> 16 !== 0x06) {
    if (iommuGroup !== undefined) backends.push('vfio');
    backends.push('uio');
  }
  return {
    slot,
    vendor: f.vendor ?? 0,
    device: f.device ?? 0,
    class: cls,
    driver: f.driver,
    iommuGroup,
    noiommu,
    backends,
  };
}

/** RLIMIT_MEMLOCK soft limit in bytes (Infinity for "unlimited"), from /proc/self/limits. */
export function memlockLimit(roots: VfioRoots = {}): number {
  const text = readOpt(join(roots.proc ?? '/proc', 'self', 'limits')) ?? '';
  const m = /^Max locked memory\s+(\S+)/m.exec(text);
  if (!m) return Infinity;
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** CAP_IPC_LOCK in the effective set: the kernel does not charge pinned pages against the limit then. */
export function hasIpcLock(roots: VfioRoots): boolean {
  const text = readOpt(join(roots.proc ?? '/proc', 'self', 'status')) ?? '';
  const m = /^CapEff:\s+([0-9a-f]+)/m.exec(text);
  return !!m && (BigInt(`0x${m[1]}`) & (1n << 14n)) !== 0n;
}

export interface VfioPlan {
  slot: string;
  group: number;
  groupNode: string;
  noiommu: boolean;
}

/**
 * Check that `slot` can be opened through VFIO, before touching /dev/vfio: bound to vfio-pci, in an
 * IOMMU group whose every other member is bound to vfio-pci or to nothing (bridges excepted), a group
 * node present. Each refusal is one sentence naming the device and the fix.
 */
export function planVfio(slot: string, roots: VfioRoots = {}): VfioPlan {
  if (!BDF_RE.test(slot)) throw new VfioError(`"${slot}" is not a PCI address (want DDDD:BB:DD.F, e.g. 0000:00:03.0)`);
  const sysfs = roots.sysfs ?? '/sys';
  const dev = pciDevice(slot, roots);
  if (dev.driver !== 'vfio-pci') {
    throw new VfioError(
      `${slot} is ${dev.driver ? `bound to ${dev.driver}` : 'bound to no driver'}, not vfio-pci: run \`wasmdrv bind ${slot} --vfio\``,
    );
  }
  if (dev.iommuGroup === undefined) {
    throw new VfioError(
      `${slot} has no IOMMU group: the kernel runs without an IOMMU (boot with intel_iommu=on or amd_iommu=on, and enable VT-d/AMD-Vi in the firmware)`,
    );
  }
  const members = readdirSync(join(sysfs, 'kernel', 'iommu_groups', String(dev.iommuGroup), 'devices'))
    .filter((s) => s !== slot)
    .sort();
  for (const other of members) {
    const o = pciDevice(other, roots);
    if (o.driver && o.driver !== 'vfio-pci' && o.driver !== 'pcieport' && o.class >> 16 !== 0x06) {
      throw new VfioError(
        `IOMMU group ${dev.iommuGroup} of ${slot} is not viable: ${other} in the same group is bound to ${o.driver}; run \`wasmdrv bind ${other} --vfio\` (or unbind it) first`,
      );
    }
  }
  const devDir = join(roots.dev ?? '/dev', 'vfio');
  const groupNode = join(devDir, dev.noiommu ? `noiommu-${dev.iommuGroup}` : String(dev.iommuGroup));
  if (!existsSync(groupNode))
    throw new VfioError(`${slot}: ${groupNode} is missing (is the vfio-pci module loaded and udev done?)`);
  return { slot, group: dev.iommuGroup, groupNode, noiommu: dev.noiommu };
}
