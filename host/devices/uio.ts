// The UIO backend: discover /sys/class/uio/uioN and describe it as a DeviceSpec.
//
//   /sys/class/uio/uioN/{name,version}
//   /sys/class/uio/uioN/maps/mapI/{name,addr,size,offset}   map I is mmap offset I × page size on /dev/uioN
//   /sys/class/uio/uioN/portio/portI/{name,start,size,porttype}
//   /sys/class/uio/uioN/device -> the parent (a PCI device: vendor, device, class (read by pci.ts), resourceN, config)
//
// Maps whose name starts with "dma" are DMA windows (the kernel stub's coherent buffer): their `addr`
// is the bus address the device uses. A device bound to uio_pci_generic has no maps: its BARs come
// from the PCI resource files, and its interrupt is re-armed through the command register.

import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { DeviceSpec, DmaSpec, IrqSpec, PortSpec, RegionSpec } from '../device-spec.ts';
import { readPciFunction } from './pci.ts';

export interface UioRoots {
  /** Default "/sys". Tests point this at a fake tree. */
  sysfs?: string;
  /** Default "/dev". */
  dev?: string;
  /** Default: the system page size (4096). */
  pageSize?: number;
}

export interface UioInfo {
  id: string;
  name: string;
  version: string;
  devNode: string;
  maps: { index: number; name: string; addr: bigint; size: number; offset: number }[];
  ports: { index: number; name: string; start: number; size: number; type: string }[];
  pci?: {
    slot: string;
    vendor: number;
    device: number;
    class: number;
    path: string;
    resources: { index: number; start: bigint; size: number; flags: number }[];
  };
}

function read(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

function readOpt(path: string): string | undefined {
  try {
    return read(path);
  } catch {
    return undefined;
  }
}

function indexed(dir: string, prefix: string): { index: number; path: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((e) => e.startsWith(prefix) && /^\d+$/.test(e.slice(prefix.length)))
    .map((e) => ({ index: Number(e.slice(prefix.length)), path: join(dir, e) }))
    .sort((a, b) => a.index - b.index);
}

export function discoverUio(roots: UioRoots = {}): UioInfo[] {
  const sysfs = roots.sysfs ?? '/sys';
  const dev = roots.dev ?? '/dev';
  const classDir = join(sysfs, 'class', 'uio');
  if (!existsSync(classDir)) return [];
  return readdirSync(classDir)
    .filter((e) => /^uio\d+$/.test(e))
    .sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)))
    .map((id) => describeUio(id, join(classDir, id), dev));
}

function describeUio(id: string, dir: string, dev: string): UioInfo {
  const info: UioInfo = {
    id,
    name: readOpt(join(dir, 'name')) ?? '',
    version: readOpt(join(dir, 'version')) ?? '',
    devNode: join(dev, id),
    maps: indexed(join(dir, 'maps'), 'map').map(({ index, path }) => ({
      index,
      name: readOpt(join(path, 'name')) ?? `map${index}`,
      addr: BigInt(readOpt(join(path, 'addr')) ?? '0'),
      size: Number(BigInt(readOpt(join(path, 'size')) ?? '0')),
      offset: Number(BigInt(readOpt(join(path, 'offset')) ?? '0')),
    })),
    ports: indexed(join(dir, 'portio'), 'port').map(({ index, path }) => ({
      index,
      name: readOpt(join(path, 'name')) ?? `port${index}`,
      start: Number(BigInt(readOpt(join(path, 'start')) ?? '0')),
      size: Number(BigInt(readOpt(join(path, 'size')) ?? '0')),
      type: readOpt(join(path, 'porttype')) ?? '',
    })),
  };
  const devDir = join(dir, 'device');
  const parent = readPciFunction(devDir);
  if (parent.vendor !== undefined && parent.device !== undefined) {
    const pciDir = realpathSync(devDir);
    const slot = basename(pciDir);
    const resources = (readOpt(join(devDir, 'resource')) ?? '')
      .split('\n')
      .map((line, index) => {
        const [start, end, flags] = line
          .trim()
          .split(/\s+/)
          .map((x) => BigInt(x || '0'));
        return {
          index,
          start: start ?? 0n,
          size: end && end >= (start ?? 0n) && end !== 0n ? Number(end - start + 1n) : 0,
          flags: Number(flags ?? 0n),
        };
      })
      .filter((r) => r.size > 0 && r.index < 6);
    info.pci = {
      slot,
      vendor: parent.vendor,
      device: parent.device,
      class: parent.class ?? 0,
      path: pciDir,
      resources,
    };
  }
  return info;
}

const IORESOURCE_IO = 0x100;

/** Describe a UIO device for the sandbox. `rearm` overrides how the line is re-enabled after each event. */
export function uioDeviceSpec(
  info: UioInfo,
  opts: { pageSize?: number; rearm?: 'none' | 'irqcontrol' } = {},
): DeviceSpec {
  const page = opts.pageSize ?? 4096;
  const regions: RegionSpec[] = [];
  const dma: DmaSpec[] = [];
  const ports: PortSpec[] = info.ports.map((p) => ({
    name: p.name,
    base: p.start,
    size: p.size,
    source: { kind: 'io' },
  }));
  let irq: IrqSpec;
  if (info.name === 'uio_pci_generic') {
    if (!info.pci) throw new Error(`${info.id}: uio_pci_generic device without a PCI parent`);
    for (const r of info.pci.resources) {
      if (r.flags & IORESOURCE_IO) {
        ports.push({ name: `bar${r.index}`, base: Number(r.start), size: r.size, source: { kind: 'io' } });
      } else {
        regions.push({
          name: `bar${r.index}`,
          size: r.size,
          phys: r.start,
          source: { kind: 'file', path: join(info.pci.path, `resource${r.index}`), offset: 0 },
        });
      }
    }
    irq = { kind: 'uio-pci-generic', path: info.devNode, config: join(info.pci.path, 'config') };
  } else {
    for (const m of info.maps) {
      const source = { kind: 'file' as const, path: info.devNode, offset: m.index * page };
      if (/^dma/i.test(m.name)) dma.push({ name: m.name, size: m.size, bus: m.addr, source });
      else regions.push({ name: m.name, size: m.size, phys: m.addr, source });
    }
    irq = { kind: 'uio', path: info.devNode, rearm: opts.rearm ?? 'none' };
  }
  return {
    id: info.id,
    name: info.name,
    uioName: info.name,
    pci: info.pci
      ? { vendor: info.pci.vendor, device: info.pci.device, class: info.pci.class, slot: info.pci.slot }
      : undefined,
    regions,
    ports,
    dma,
    irq,
  };
}
