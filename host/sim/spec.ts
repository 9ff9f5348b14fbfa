// THE spec of a simulated device: what a model describes (host/sim/model.ts, SimDescription) as the
// DeviceSpec a session opens (host/device-spec.ts). Its three users differ only in where the device's
// resources come from, never in its shape:
//   host/devices/sim.ts    `--device sim:MODEL`: memfds and eventfds of its own, a state with a DMA record
//   host/fuzz/device.ts    the fuzz model over MODEL: the fuzzer's DMA memfd and state
//   host/campaign/targets.ts a campaign target: its window between two canary pages of one memfd
// Regions, port ranges (with the model's nominal port base), DMA windows (name, size, bus address)
// and the kind of interrupt are the model's; the caller gives the fds, the state and the names.

import type { DeviceSpec, DmaSpec, IrqSpec, MemSource } from '../device-spec.ts';
import type { SimDescription, SimDmaWindow, SimRegion } from './model.ts';
import { simModelClass } from './registry.ts';

export interface SimSpecParts {
  /** What the user named ("sim:edu"), and a short description. */
  id: string;
  name: string;
  /** The model the session builds, and its options (a wrapper such as faulty or fuzz describes the model it wraps). */
  model: string;
  options: Record<string, unknown>;
  /** The device's shared state (interrupt line, model, and a DMA record when it is long enough). */
  state: SharedArrayBuffer;
  /** The eventfd the interrupt line writes (-1: none, as in virtual time). */
  irqFd: number;
  /** The eventfd that whoever feeds the device writes, for a device fed from outside (SimDescription.external). */
  kickFd: number;
  /** Where the bytes of DMA window `index` live. */
  dmaSource(window: SimDmaWindow, index: number): DmaSpec['source'];
  /** Where the bytes of a plain-memory region live (a memfd); register files are served by the model. */
  memorySource?(region: SimRegion, index: number): MemSource;
}

/** The model's description under its options (the catalogue's, host/sim/registry.ts). */
export function describeSim(model: string, options: Record<string, unknown>): SimDescription {
  return simModelClass(model).describe(options);
}

/** The DeviceSpec of simulated device `parts.model` (see the header). Throws naming a memory region nobody backs. */
export function simDeviceSpec(parts: SimSpecParts): DeviceSpec {
  const desc = describeSim(parts.model, parts.options);
  return {
    id: parts.id,
    name: parts.name,
    pci: desc.pci,
    regions: desc.regions.map((r, index) => {
      if (!r.memory) return { name: r.name, size: r.size, source: { kind: 'sim' as const, index } };
      if (!parts.memorySource) throw new Error(`${parts.id}: region ${r.name} is plain memory and nothing backs it`);
      return { name: r.name, size: r.size, source: parts.memorySource(r, index) };
    }),
    ports: desc.ports.map((p, index) => ({ name: p.name, base: p.base, size: p.size, source: { kind: 'sim', index } })),
    dma: desc.dma.map((w, index) => ({ name: w.name, size: w.size, bus: w.bus, source: parts.dmaSource(w, index) })),
    irq: irqOf(desc, parts.irqFd),
    sim: { model: parts.model, options: parts.options, state: parts.state, kickFd: desc.external ? parts.kickFd : -1 },
  };
}

function irqOf(desc: SimDescription, eventfd: number): IrqSpec | null {
  if (!desc.irq) return null;
  return desc.irq.mode === 'eventfd' ? { kind: 'eventfd', eventfd } : { kind: 'sim', eventfd };
}
