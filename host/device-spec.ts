// A device as the sandbox sees it: regions, port ranges, DMA windows and an interrupt source.
//
// A DeviceSpec is plain data (structured-cloneable) so it can cross into a driver's worker thread,
// which opens it for itself (mappings and ioperm grants are per thread). Backends (uio.ts, sim.ts, vfio.ts)
// build specs; the sandbox never knows whether a device is real or simulated beyond `source.kind`.

export type MemSource =
  /** mmap of a file: a UIO node (offset = map index × page size) or a PCI resourceN file. */
  | { kind: 'file'; path: string; offset: number }
  /** mmap of an fd owned by the host process (a memfd for simulated memory-backed regions). */
  | { kind: 'fd'; fd: number; offset: number }
  /** a register file served by the simulated model: region `index` of the model. */
  | { kind: 'sim'; index: number };

export interface RegionSpec {
  name: string;
  size: number;
  /** Physical address (for display), when known. */
  phys?: bigint;
  source: MemSource;
}

export interface PortSpec {
  name: string;
  /** First port (real hardware) — for simulated ports a nominal base. */
  base: number;
  size: number;
  source: { kind: 'io' } | { kind: 'sim'; index: number };
}

export interface DmaSpec {
  name: string;
  size: number;
  /** The bus address the device uses for byte 0. */
  bus: bigint;
  source: Exclude<MemSource, { kind: 'sim' }>;
}

export type IrqSpec =
  /** A UIO node: poll + 4-byte read for the count; `rearm` says how to re-enable after each event. */
  | { kind: 'uio'; path: string; rearm: 'none' | 'irqcontrol' }
  /** uio_pci_generic: count from the UIO node, re-arm by clearing INTx-disable in PCI config space. */
  | { kind: 'uio-pci-generic'; path: string; config: string }
  /** A simulated line: the model's state holds level/mask/count; `eventfd` wakes the waiting driver. */
  | { kind: 'sim'; eventfd: number }
  /** A bare eventfd written by another thread or process; the count accumulates what is read. */
  | { kind: 'eventfd'; eventfd: number }
  /** VFIO INTx: an eventfd the kernel signals; the line is masked on each event, unmasked by VFIO_DEVICE_SET_IRQS. */
  | { kind: 'vfio-intx'; eventfd: number; device: number };

export interface SimSpec {
  model: string;
  options: Record<string, unknown>;
  /** Device state shared by every worker that drives this device (see sim/model.ts). */
  state: SharedArrayBuffer;
  /** eventfd written by whoever feeds the device from outside (see SimDescription.external); -1 if none. */
  kickFd: number;
}

export interface DeviceSpec {
  /** What the user named: "uio0", "sim:edu", "pci:0000:00:04.0". */
  id: string;
  /** A short description for status lines. */
  name: string;
  pci?: { vendor: number; device: number; class?: number; slot?: string };
  uioName?: string;
  regions: RegionSpec[];
  ports: PortSpec[];
  dma: DmaSpec[];
  irq: IrqSpec | null;
  sim?: SimSpec;
  /** Set by backends that know how the device's DMA is confined (vfio.ts: 'iommu' or 'none'). */
  dmaConfinement?: DmaConfinement;
}

/** How a device's DMA is kept inside what the host granted. */
export type DmaConfinement =
  /** VFIO with an IOMMU: the device can reach only the IOVAs the host mapped. */
  | 'iommu'
  /** UIO: the host checks the bus addresses the driver writes into declared DMA address registers. */
  | 'register-firewall'
  /** UIO, a ring device: the host checks every descriptor the driver hands over at the doorbell (sandbox/ring-firewall.ts). */
  | 'descriptor-firewall'
  /** Nothing stops the device: VFIO no-IOMMU, or a bus-master device whose DMA registers nobody checks. */
  | 'none'
  /** The device cannot master the bus (port I/O, no PCI parent). */
  | 'no-dma'
  /** A simulated model: its DMA reaches only the windows the host gave it. */
  | 'simulated';

/** An opened device: its spec, and what the backend does on close and on recovery. */
export interface DeviceHandle {
  spec: DeviceSpec;
  close(): void;
  /** Backends that can reset the device (VFIO): run by the supervisor between a fault and the restart. */
  recover?(): string;
  /** VFIO: watch for IOMMU faults of this device; false when the kernel log is unreadable. */
  watchFaults?(onFault: (line: string) => void): boolean;
}
