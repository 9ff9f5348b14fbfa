// The device a fuzzed driver sees: the fuzz model (host/sim/fuzz.ts) over a real one, as a DeviceSpec.

import type { DeviceSpec } from '../device-spec.ts';
import { SIM_IRQ_BYTES } from '../sim/irq.ts';
import { simModelClass } from '../sim/registry.ts';

/** The device the fuzzed driver sees (for a package's grantFor, the fds and state may be left out). */
export function fuzzDeviceSpec(
  model: string,
  o: { dmaFd?: number; irqFd?: number; state?: SharedArrayBuffer } = {},
): DeviceSpec {
  const desc = simModelClass('fuzz').describe({ inner: model, stream: new Uint8Array() });
  const dma = desc.dma[0];
  return {
    id: 'sim:fuzz',
    name: `fuzzed ${model}`,
    pci: desc.pci,
    regions: desc.regions.map((r, index) => ({ name: r.name, size: r.size, source: { kind: 'sim', index } })),
    ports: desc.ports.map((p, index) => ({ name: p.name, base: 0x2f8, size: p.size, source: { kind: 'sim', index } })),
    dma: dma
      ? [{ name: 'dma', size: dma.size, bus: dma.bus, source: { kind: 'fd', fd: o.dmaFd ?? -1, offset: 0 } }]
      : [],
    irq: { kind: 'sim', eventfd: o.irqFd ?? -1 },
    sim: {
      model: 'fuzz',
      options: { inner: model, stream: new Uint8Array() } as unknown as Record<string, unknown>,
      state: o.state ?? new SharedArrayBuffer(SIM_IRQ_BYTES + desc.stateBytes),
      kickFd: -1,
    },
  };
}
