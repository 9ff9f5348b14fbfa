// The VFIO backend: a PCI device bound to vfio-pci, its DMA confined by the IOMMU.
//
// Who owns what. The host process (the main thread) opens /dev/vfio/vfio (the container), the
// group node and the device fd, creates the DMA windows (memfds), maps each window into its own
// address space and into the IOMMU (VFIO_IOMMU_MAP_DMA with that mapping's address, at an IOVA the
// host picks), and creates the interrupt eventfd. All of that lives as long as the device handle:
// across driver restarts and hot reloads. fds are process-wide, so the DeviceSpec handed to a
// driver's worker carries fd numbers only: the worker mmaps the BARs through the device fd at the
// region's offset and maps the window memfds into the driver's linear memory for itself (mappings
// are per thread in this design, see session.ts). The driver never sees an fd, an ioctl or an IOVA
// it did not get from dma_window_bus().
//
// Kernel 6.1 has only the container/group API (iommufd came in 6.2, the vfio cdev in 6.6).
//
// The checks made before any of that, from sysfs and /proc, are in vfio-plan.ts.

import { join } from 'node:path';
import type { DeviceSpec, DmaConfinement, DmaSpec, IrqSpec, RegionSpec } from '../device-spec.ts';
import { loadNative, type Mapping, type NativeError } from '../native.ts';
import { watchIommuFaults } from './iommu-faults.ts';
import { hasIpcLock, memlockLimit, pciDevice, planVfio, VfioError, type VfioRoots } from './vfio-plan.ts';

// include/uapi/linux/vfio.h
export const VFIO = {
  API_VERSION: 0,
  TYPE1v2_IOMMU: 3,
  NOIOMMU_IOMMU: 8,
  GROUP_VIABLE: 1,
  GROUP_CONTAINER_SET: 2,
  DEVICE_FLAGS_RESET: 1,
  REGION_READ: 1,
  REGION_WRITE: 2,
  REGION_MMAP: 4,
  IRQ_EVENTFD: 1,
  IRQ_MASKABLE: 2,
  IRQ_AUTOMASKED: 4,
  ACTION_MASK: 8,
  ACTION_UNMASK: 16,
  ACTION_TRIGGER: 32,
  DMA_READ: 1,
  DMA_WRITE: 2,
  /** vfio-pci fixed indices. */
  CONFIG_REGION: 7,
  INTX: 0,
  MSI: 1,
  MSIX: 2,
} as const;

const PCI_COMMAND = 0x04;
const CMD_MEMORY = 1 << 1;
const CMD_BUS_MASTER = 1 << 2;
const CMD_INTX_DISABLE = 1 << 10;

export interface VfioOpenOptions {
  roots?: VfioRoots;
  /** Interrupt delivery: 'auto' (default) tries MSI-X, then MSI, then INTx. */
  irq?: 'auto' | 'msix' | 'msi' | 'intx' | 'none';
  /** DMA windows to create (default one of 64 KiB, which is what the SDK's dma_area holds). */
  dma?: { name: string; size: number }[];
  /** First IOVA the host hands out (default 0x100000); windows follow, each with a one-page guard gap. */
  iovaBase?: bigint;
}

/** What recover() did, for the supervisor's log. */
export interface RecoveryReport {
  /** 'function-reset' (VFIO_DEVICE_RESET worked) or 'bus-master-cycle' (the device has no reset). */
  reset: 'function-reset' | 'bus-master-cycle';
  detail: string;
  dmaRemapped: number;
}

interface Window {
  name: string;
  size: number;
  iova: bigint;
  fd: number;
  mapping: Mapping;
  buffer: ArrayBuffer;
  mapped: boolean;
}

export interface VfioDevice {
  readonly spec: DeviceSpec;
  readonly confinement: DmaConfinement;
  /** The interrupt mechanism in use: 'msix', 'msi', 'intx' or 'none'. */
  readonly irqMode: string;
  /** Whether VFIO_DEVICE_GET_INFO reported a reset method. */
  readonly canReset: boolean;
  /**
   * After a crash, before the restart: quiesce (bus master off, interrupts off), reset the device
   * (VFIO_DEVICE_RESET; without one, the bus-master cycle stands in and the driver's own reset export
   * runs at restart), unmap every DMA window from the IOMMU, zero it, map it again, re-enable.
   */
  recover(): RecoveryReport;
  /**
   * Watch the kernel log for IOMMU faults naming this device (DMAR / AMD-Vi), calling `onFault` with
   * the line; needs a readable /dev/kmsg (root or CAP_SYSLOG). Returns false when the log is unreadable.
   */
  watchFaults(onFault: (line: string) => void): boolean;
  /** Idempotent: interrupts off, DMA unmapped, fds closed, the group left. */
  close(): void;
}

/** Open a device bound to vfio-pci (see the file comment for who owns what). Throws VfioError. */
export function openVfioDevice(slot: string, opts: VfioOpenOptions = {}): VfioDevice {
  const native = loadNative();
  const roots = opts.roots ?? {};
  const plan = planVfio(slot, roots);
  const label = slot;
  const fds: number[] = [];
  const windows: Window[] = [];
  let container = -1;
  let group = -1;
  let device = -1;
  let irqFd = -1;
  let irqIndex = -1;
  let groupJoined = false;
  const wrap = (what: string, err: unknown): never => {
    const e = err as NativeError;
    if (e?.code === 'EACCES' || e?.code === 'EPERM') {
      throw new VfioError(
        `${slot}: ${what}: permission denied on ${e.path ?? plan.groupNode} (install deploy/udev/70-wasmdrv-vfio.rules so the service user owns /dev/vfio/${plan.group}${plan.noiommu ? '; no-IOMMU mode also needs CAP_SYS_RAWIO' : ''})`,
        err,
      );
    }
    if (e?.code === 'EBUSY')
      throw new VfioError(
        `${slot}: ${what}: ${plan.groupNode} is busy: another process (a second wasmdrv, QEMU, DPDK) holds the group`,
        err,
      );
    throw new VfioError(`${slot}: ${what}: ${(err as Error).message}`, err);
  };
  const closeAll = () => {
    for (const w of windows) {
      if (w.mapped) {
        try {
          native.vfioUnmapDma(container, w.iova, w.size, label);
        } catch {
          /* the container goes away below, which unmaps everything */
        }
      }
      try {
        w.mapping.close();
      } catch {
        /* the fds must still be closed below: a group left open stays busy for the next opener */
      }
    }
    windows.length = 0;
    if (groupJoined) {
      try {
        native.vfioGroupUnsetContainer(group, label);
      } catch {
        /* closing the group fd below leaves the container too */
      }
    }
    for (const fd of fds.splice(0).reverse()) {
      try {
        native.close(fd);
      } catch {
        /* already closed */
      }
    }
  };
  try {
    try {
      container = native.open(join(roots.dev ?? '/dev', 'vfio', 'vfio'));
    } catch (err) {
      wrap('open /dev/vfio/vfio', err);
    }
    fds.push(container);
    if (native.vfioApiVersion(container, label) !== VFIO.API_VERSION)
      throw new VfioError(`${slot}: /dev/vfio/vfio speaks an unknown VFIO API version`);
    const model = plan.noiommu ? VFIO.NOIOMMU_IOMMU : VFIO.TYPE1v2_IOMMU;
    if (native.vfioCheckExtension(container, model, label) <= 0) {
      throw new VfioError(
        plan.noiommu
          ? `${slot}: the kernel's VFIO has no no-IOMMU support`
          : `${slot}: the VFIO container does not offer the type1v2 IOMMU (is vfio_iommu_type1 loaded?)`,
      );
    }
    try {
      group = native.open(plan.groupNode);
    } catch (err) {
      wrap(`open ${plan.groupNode}`, err);
    }
    fds.push(group);
    const status = native.vfioGroupStatus(group, label);
    if (!(status & VFIO.GROUP_VIABLE)) {
      throw new VfioError(
        `IOMMU group ${plan.group} of ${slot} is not viable: every device in /sys/kernel/iommu_groups/${plan.group}/devices must be bound to vfio-pci or to nothing (\`wasmdrv bind <BDF> --vfio\`)`,
      );
    }
    try {
      native.vfioGroupSetContainer(group, container, label);
    } catch (err) {
      wrap('VFIO_GROUP_SET_CONTAINER', err);
    }
    groupJoined = true;
    native.vfioSetIommu(container, model, label);
    try {
      device = native.vfioGroupDeviceFd(group, slot);
    } catch (err) {
      wrap('VFIO_GROUP_GET_DEVICE_FD', err);
    }
    fds.push(device);
    const info = native.vfioDeviceInfo(device, label);
    const config = native.vfioRegionInfo(device, VFIO.CONFIG_REGION, label);
    const pci = pciDevice(slot, roots);

    // Regions: the BARs the kernel lets us mmap (an I/O-port BAR cannot be mmapped: left out).
    const regions: RegionSpec[] = [];
    for (let i = 0; i < Math.min(6, info.numRegions); i++) {
      const r = native.vfioRegionInfo(device, i, label);
      if (r.size === 0 || !(r.flags & VFIO.REGION_MMAP)) continue;
      regions.push({ name: `bar${i}`, size: r.size, source: { kind: 'fd', fd: device, offset: r.offset } });
    }

    // DMA windows: host memory (a memfd, so the worker can map the same pages into the driver's
    // memory), mapped into the IOMMU at IOVAs we choose. No-IOMMU mode has no IOVAs: refused, since
    // the driver would need physical addresses and nothing would confine the device.
    const page = native.pageSize();
    let iova = opts.iovaBase ?? 0x100000n;
    const wanted = opts.dma ?? [{ name: 'dma', size: 0x10000 }];
    const dma: DmaSpec[] = [];
    if (wanted.length && plan.noiommu)
      throw new VfioError(
        `${slot}: VFIO no-IOMMU mode cannot give DMA windows (nothing would confine the device's DMA); use a machine with an IOMMU`,
      );
    const limit = memlockLimit(roots);
    const total = wanted.reduce((n, w) => n + w.size, 0);
    if (total > limit && !hasIpcLock(roots)) {
      throw new VfioError(
        `${slot}: RLIMIT_MEMLOCK is ${limit} bytes but the DMA windows pin ${total}: raise it (systemd LimitMEMLOCK=, or ulimit -l) or grant CAP_IPC_LOCK`,
      );
    }
    for (const w of wanted) {
      if (w.size <= 0 || w.size % page)
        throw new VfioError(`${slot}: DMA window ${w.name} size ${w.size} is not a positive multiple of the page size`);
      const fd = native.memfdCreate(`wasmdrv-vfio-${slot}-${w.name}`, w.size);
      fds.push(fd);
      const mapping = native.mapFd(fd, w.size, 0, `DMA window ${w.name} of ${slot}`);
      const win: Window = { name: w.name, size: w.size, iova, fd, mapping, buffer: mapping.buffer(), mapped: false };
      windows.push(win);
      mapWindow(win);
      dma.push({ name: w.name, size: w.size, bus: iova, source: { kind: 'fd', fd, offset: 0 } });
      iova += BigInt(w.size + page);
    }

    // Bus master on (DMA), memory decoding on; the kernel leaves both to user space.
    const cmd = native.pread(device, config.offset + PCI_COMMAND, 2);
    native.pwrite(device, config.offset + PCI_COMMAND, 2, cmd | CMD_MEMORY | CMD_BUS_MASTER);

    // Interrupts: one eventfd on vector 0 of the first index that has eventfd support.
    const order =
      opts.irq === undefined || opts.irq === 'auto' ? ['msix', 'msi', 'intx'] : opts.irq === 'none' ? [] : [opts.irq];
    let irqMode = 'none';
    let irq: IrqSpec | null = null;
    for (const mode of order) {
      const index = mode === 'msix' ? VFIO.MSIX : mode === 'msi' ? VFIO.MSI : VFIO.INTX;
      if (index >= info.numIrqs) continue;
      const ii = native.vfioIrqInfo(device, index, label);
      if (ii.count === 0 || !(ii.flags & VFIO.IRQ_EVENTFD)) continue;
      irqFd = native.eventfdCreate(0);
      fds.push(irqFd);
      native.vfioSetIrqs(device, index, 0, VFIO.ACTION_TRIGGER, Int32Array.of(irqFd), label);
      irqIndex = index;
      irqMode = mode;
      if (mode === 'intx') {
        // INTx is level-triggered: VFIO masks it on each event; the session unmasks before each wait.
        const c = native.pread(device, config.offset + PCI_COMMAND, 2);
        if (c & CMD_INTX_DISABLE) native.pwrite(device, config.offset + PCI_COMMAND, 2, c & ~CMD_INTX_DISABLE);
        irq = { kind: 'vfio-intx', eventfd: irqFd, device };
      } else {
        irq = { kind: 'eventfd', eventfd: irqFd };
      }
      break;
    }
    if (!irq && opts.irq && opts.irq !== 'auto' && opts.irq !== 'none')
      throw new VfioError(`${slot}: the device offers no ${opts.irq} interrupt with eventfd support`);

    const confinement: DmaConfinement = plan.noiommu ? 'none' : 'iommu';
    const spec: DeviceSpec = {
      id: `vfio:${slot}`,
      name: `vfio-pci ${slot} (IOMMU group ${plan.group}, ${irqMode})`,
      pci: { vendor: pci.vendor, device: pci.device, class: pci.class, slot },
      regions,
      ports: [],
      dma,
      irq,
      dmaConfinement: confinement,
    };
    let kmsg: { close(): void } | undefined;
    let closed = false;
    const canReset = (info.flags & VFIO.DEVICE_FLAGS_RESET) !== 0;

    function mapWindow(w: Window): void {
      try {
        native.vfioMapDma(container, w.buffer, w.iova, VFIO.DMA_READ | VFIO.DMA_WRITE, `${label} window ${w.name}`);
      } catch (err) {
        if ((err as NativeError).code === 'ENOMEM') {
          throw new VfioError(
            `${slot}: VFIO_IOMMU_MAP_DMA of window ${w.name} (${w.size} bytes) failed with ENOMEM: RLIMIT_MEMLOCK (${memlockLimit(roots)} bytes) is too small; raise it (systemd LimitMEMLOCK=, ulimit -l) or grant CAP_IPC_LOCK`,
            err,
          );
        }
        throw err;
      }
      w.mapped = true;
    }

    const setCommand = (set: number, clear: number) => {
      const c = native.pread(device, config.offset + PCI_COMMAND, 2);
      native.pwrite(device, config.offset + PCI_COMMAND, 2, (c | set) & ~clear);
    };

    return {
      spec,
      confinement,
      irqMode,
      canReset,
      recover(): RecoveryReport {
        // Quiesce: no DMA, no interrupts while the device and its windows change under it.
        setCommand(0, CMD_BUS_MASTER);
        if (irqIndex >= 0) native.vfioSetIrqs(device, irqIndex, 0, VFIO.ACTION_TRIGGER, 0, label);
        let reset: RecoveryReport['reset'] = 'bus-master-cycle';
        let detail =
          "the device has no reset method: bus mastering and interrupts were cycled; the driver's reset export runs at restart";
        if (canReset) {
          try {
            native.vfioDeviceReset(device, label);
            reset = 'function-reset';
            detail = 'VFIO_DEVICE_RESET';
          } catch (err) {
            detail = `VFIO_DEVICE_RESET failed (${(err as NativeError).code}): bus mastering and interrupts were cycled instead`;
          }
        }
        for (const w of windows) {
          if (w.mapped) native.vfioUnmapDma(container, w.iova, w.size, `${label} window ${w.name}`);
          w.mapped = false;
          new Uint8Array(w.buffer).fill(0);
          mapWindow(w);
        }
        if (irqIndex >= 0) native.vfioSetIrqs(device, irqIndex, 0, VFIO.ACTION_TRIGGER, Int32Array.of(irqFd), label);
        while (native.eventfdRead(irqFd) !== 0) {
          /* drop interrupts raised before the reset */
        }
        setCommand(CMD_MEMORY | CMD_BUS_MASTER, irqMode === 'intx' ? CMD_INTX_DISABLE : 0);
        return { reset, detail, dmaRemapped: windows.length };
      },
      watchFaults(onFault: (line: string) => void): boolean {
        kmsg ??= watchIommuFaults(join(roots.dev ?? '/dev', 'kmsg'), slot, onFault);
        return kmsg !== undefined;
      },
      close(): void {
        if (closed) return;
        closed = true;
        kmsg?.close();
        try {
          if (irqIndex >= 0) native.vfioSetIrqs(device, irqIndex, 0, VFIO.ACTION_TRIGGER, 0, label);
          setCommand(0, CMD_BUS_MASTER);
        } catch {
          /* closing the device fd disables it too */
        }
        closeAll();
      },
    };
  } catch (err) {
    closeAll();
    if (err instanceof VfioError) throw err;
    return wrap('open', err);
  }
}
