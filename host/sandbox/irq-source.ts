// A device's interrupt source, one per backend: a simulated line, a VFIO INTx eventfd, a plain eventfd,
// /dev/uioN (the wasmdrv stub, re-armed through irqcontrol or not) and uio_pci_generic (which sets the
// command register's INTx-disable bit on each interrupt, cleared here before the next wait). Each gives
// the wait (interrupts.ts) the same face: an fd to poll, the cumulative count, re-arm and mask.

import type { Native } from '../native.ts';
import type { DeviceSpec } from '../device-spec.ts';
import type { SimIrqLine } from '../sim/irq.ts';

export interface IrqSource {
  /** Poll this fd for POLLIN. */
  readonly fd: number;
  /** After POLLIN: the cumulative event count (UIO's u32), consuming the readiness. */
  consume(): number;
  /**
   * Bytes a plain read() of `fd` returns (4: a UIO count, 8: an eventfd counter), so the wait can
   * poll and read in one native call (native.pollRead) and hand the value to absorb(); 0 when the
   * source needs consume().
   */
  readonly readWidth: 0 | 4 | 8;
  /** The cumulative count after a value read from `fd` by pollRead. */
  absorb(value: number): number;
  /**
   * Where the cumulative count lives ([0], over a SharedArrayBuffer), for the native wait
   * (native.irqWaiter) to keep it as consume() and absorb() do; absent for a simulated line.
   */
  readonly countCell?: Float64Array;
  /** Re-enable the line before a wait, for backends that mask on each event. */
  rearm(): void;
  /** Mask the line (storm, fault). */
  mask(): void;
  readonly needsRearm: boolean;
  close(): void;
}

/** The interrupt source of `spec` (which has an irq), opened in this thread. */
export function openIrqSource(native: Native, spec: DeviceSpec, line: SimIrqLine | null): IrqSource {
  const irq = spec.irq!;
  if (irq.kind === 'sim') {
    if (!line) throw new Error(`${spec.id}: a simulated interrupt needs a simulated device`);
    return line;
  }
  if (irq.kind === 'vfio-intx') {
    // The host owns the eventfd and the device fd (host/devices/vfio.ts); VFIO masks INTx on each
    // event, and an unmask through VFIO_DEVICE_SET_IRQS re-arms it before the next wait.
    const cell = countCell();
    const INTX = 0,
      MASK = 8,
      UNMASK = 16;
    return {
      fd: irq.eventfd,
      consume: () => (cell[0] = (cell[0] + native.eventfdRead(irq.eventfd)) >>> 0),
      readWidth: 8,
      absorb: (v) => (cell[0] = (cell[0] + v) >>> 0),
      countCell: cell,
      needsRearm: true,
      rearm: () => native.vfioSetIrqs(irq.device, INTX, 0, UNMASK, 1, spec.id),
      mask: () => native.vfioSetIrqs(irq.device, INTX, 0, MASK, 1, spec.id),
      close: () => {},
    };
  }
  if (irq.kind === 'eventfd') {
    const cell = countCell();
    return {
      fd: irq.eventfd,
      consume: () => (cell[0] = (cell[0] + native.eventfdRead(irq.eventfd)) >>> 0),
      readWidth: 8,
      absorb: (v) => (cell[0] = (cell[0] + v) >>> 0),
      countCell: cell,
      needsRearm: false,
      rearm: () => {},
      mask: () => {},
      close: () => {},
    };
  }
  const fd = native.open(irq.path);
  const cell = countCell(); // [0]: the last count read
  const consume = (): number => {
    try {
      cell[0] = native.readU32(fd);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN') throw err;
    }
    return cell[0];
  };
  const absorb = (v: number) => (cell[0] = v);
  if (irq.kind === 'uio') {
    return {
      fd,
      consume,
      readWidth: 4,
      absorb,
      countCell: cell,
      needsRearm: irq.rearm === 'irqcontrol',
      rearm: () => native.writeU32(fd, 1),
      mask: () => {
        if (irq.rearm === 'irqcontrol') native.writeU32(fd, 0);
      },
      close: () => native.close(fd),
    };
  }
  // uio_pci_generic: the kernel sets INTx-disable (command register bit 10) on each interrupt.
  const cfg = native.open(irq.config);
  const INTX_DISABLE = 1 << 10;
  return {
    fd,
    consume,
    readWidth: 4,
    absorb,
    countCell: cell,
    needsRearm: true,
    rearm: () => {
      const cmd = native.pread(cfg, 0x04, 2);
      if (cmd & INTX_DISABLE) native.pwrite(cfg, 0x04, 2, cmd & ~INTX_DISABLE);
    },
    mask: () => native.pwrite(cfg, 0x04, 2, native.pread(cfg, 0x04, 2) | INTX_DISABLE),
    close: () => {
      native.close(cfg);
      native.close(fd);
    },
  };
}

/** One f64 over a SharedArrayBuffer (which cannot be detached: the native wait keeps its address). */
function countCell(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(8));
}
