// The device a fuzzed driver sees: the fuzz model (host/sim/fuzz.ts) over a real one, as a DeviceSpec
// (the one builder, host/sim/spec.ts).

import type { DeviceSpec } from '../device-spec.ts';
import { SIM_IRQ_BYTES } from '../sim/irq.ts';
import { describeSim, simDeviceSpec } from '../sim/spec.ts';

/** The device the fuzzed driver sees (for a package's grantFor, the fds and state may be left out). */
export function fuzzDeviceSpec(
  model: string,
  o: { dmaFd?: number; irqFd?: number; state?: SharedArrayBuffer } = {},
): DeviceSpec {
  const options = { inner: model, stream: new Uint8Array() } as unknown as Record<string, unknown>;
  const desc = describeSim('fuzz', options);
  if (desc.dma.length > 1)
    throw new Error(`fuzz: model ${model} has ${desc.dma.length} DMA windows; the fuzzer backs one`);
  return simDeviceSpec({
    id: 'sim:fuzz',
    name: `fuzzed ${model}`,
    model: 'fuzz',
    options,
    state: o.state ?? new SharedArrayBuffer(SIM_IRQ_BYTES + desc.stateBytes),
    irqFd: o.irqFd ?? -1,
    kickFd: -1,
    dmaSource: () => ({ kind: 'fd', fd: o.dmaFd ?? -1, offset: 0 }),
  });
}
