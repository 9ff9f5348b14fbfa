// The simulated backend: a device model (host/sim/) with its shared state, an eventfd for its
// interrupt line and memfd-backed DMA windows, described as a DeviceSpec like any real device.

import { loadNative } from '../native.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { simModelClass, simModels } from '../sim/registry.ts';
import { readDmaRecord, simStateBytes, type DmaRecordSnapshot } from '../sim/dma-record.ts';

export interface SimDevice {
  spec: DeviceSpec;
  /** Release the eventfd and memfds (after every driver on it has stopped). Idempotent. */
  close(): void;
}

export function openSimDevice(model: string, options: Record<string, unknown> = {}): SimDevice {
  const native = loadNative();
  const cls = simModelClass(model);
  const desc = cls.describe(options);
  const fds: number[] = [];
  try {
    const state = new SharedArrayBuffer(simStateBytes(desc));
    const eventfd = desc.irq ? native.eventfdCreate(0) : -1;
    if (eventfd >= 0) fds.push(eventfd);
    const kickFd = desc.external ? native.eventfdCreate(0) : -1;
    if (kickFd >= 0) fds.push(kickFd);
    const dma = desc.dma.map((w) => {
      const fd = native.memfdCreate(`wasmdrv-sim-${model}-${w.name}`, w.size);
      fds.push(fd);
      return { name: w.name, size: w.size, bus: w.bus, source: { kind: 'fd' as const, fd, offset: 0 } };
    });
    const spec: DeviceSpec = {
      id: `sim:${model}`,
      name: `simulated ${model}`,
      pci: desc.pci,
      regions: desc.regions.map((r, index) => {
        if (!r.memory) return { name: r.name, size: r.size, source: { kind: 'sim' as const, index } };
        const fd = native.memfdCreate(`wasmdrv-sim-${model}-${r.name}`, r.size);
        fds.push(fd);
        return { name: r.name, size: r.size, source: { kind: 'fd' as const, fd, offset: 0 } };
      }),
      ports: desc.ports.map((p, index) => ({
        name: p.name,
        base: Number(options.base ?? 0x2f8),
        size: p.size,
        source: { kind: 'sim', index },
      })),
      dma,
      irq: eventfd < 0 ? null : desc.irq?.mode === 'eventfd' ? { kind: 'eventfd', eventfd } : { kind: 'sim', eventfd },
      sim: { model, options, state, kickFd },
    };
    let closed = false;
    return {
      spec,
      close() {
        if (closed) return;
        closed = true;
        for (const fd of fds) native.close(fd);
      },
    };
  } catch (err) {
    for (const fd of fds) native.close(fd);
    throw err;
  }
}

/** Models only the fuzzer can drive: they read their device behaviour from a fuzz input it supplies. */
const FUZZER_ONLY = new Set(['fuzz']);

/** The models a user can name with --device sim:MODEL (`wasmdrv devices` lists these). */
export function listSimModels(): { id: string; summary: string }[] {
  return simModels()
    .filter((m) => !FUZZER_ONLY.has(m.name))
    .map((m) => ({ id: `sim:${m.name}`, summary: m.summary }));
}

/**
 * What a simulated device's DMA did so far (sim/dma-record.ts): every transfer, and the bytes it
 * reached outside its DMA windows. Undefined for a device that is not simulated.
 */
export function simDmaRecord(spec: DeviceSpec): DmaRecordSnapshot | undefined {
  if (!spec.sim) return undefined;
  return readDmaRecord(spec, simModelClass(spec.sim.model).describe(spec.sim.options));
}
