// What every host-function file (registers.ts, ports.ts, interrupts.ts, dma.ts, services.ts) is
// given by the instance that links it: one driver instance's device session, shared area, grant and
// memory. The instance (instance.ts) owns these; the interface files only read them.

import type { Grant } from '../grant.ts';
import type { Native } from '../native.ts';
import type { DeviceSession } from './session.ts';
import type { RingGuard } from './ring-hook.ts';
import type { DriverShared } from './shared.ts';

export interface HostContext {
  readonly label: string;
  readonly session: DeviceSession;
  readonly shared: DriverShared;
  readonly grant: Grant;
  /** The driver's linear memory (env.memory). */
  readonly memory: WebAssembly.Memory;
  readonly native: Native;
  /** eventfd: readable once the host wants the driver stopped; every wait watches it. */
  readonly cancelFd: number;
  /**
   * The descriptor firewall (ring-hook.ts), set by the instance once the DMA windows are mapped; unset
   * when the grant declares no rings or an IOMMU confines the device. Registers route ring registers to
   * it; interrupts copy write-backs into the shadow rings before the driver sees an interrupt.
   */
  readonly rings: { guard?: RingGuard };
}

/** "region 0 offset 0x10 width 4": how every access fault names the access. */
export const where = (kind: string, r: number, off: number, width: number) =>
  `${kind} ${r} offset 0x${(off >>> 0).toString(16)} width ${width}`;
