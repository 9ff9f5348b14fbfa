// The simulated backend: a device model (host/sim/) with its shared state, an eventfd for its
// interrupt line and memfd-backed DMA windows, described as a DeviceSpec like any real device.

import { loadNative } from '../native.ts';
import type { DeviceSpec } from '../device-spec.ts';
import { simModels } from '../sim/registry.ts';
import { describeSim, simDeviceSpec } from '../sim/spec.ts';
import { readDmaRecord, simStateBytes, type DmaRecordSnapshot } from '../sim/dma-record.ts';

export interface SimDevice {
  spec: DeviceSpec;
  /** Release the eventfd and memfds (after every driver on it has stopped). Idempotent. */
  close(): void;
}

export function openSimDevice(model: string, options: Record<string, unknown> = {}): SimDevice {
  const native = loadNative();
  const desc = describeSim(model, options);
  const fds: number[] = [];
  const memfd = (what: string, size: number) => {
    const fd = native.memfdCreate(`wasmdrv-sim-${model}-${what}`, size);
    fds.push(fd);
    return { kind: 'fd' as const, fd, offset: 0 };
  };
  const eventfd = (wanted: boolean) => {
    if (!wanted) return -1;
    const fd = native.eventfdCreate(0);
    fds.push(fd);
    return fd;
  };
  try {
    const spec = simDeviceSpec({
      id: `sim:${model}`,
      name: `simulated ${model}`,
      model,
      options,
      state: new SharedArrayBuffer(simStateBytes(desc)),
      irqFd: eventfd(desc.irq !== null),
      kickFd: eventfd(desc.external === true),
      dmaSource: (w) => memfd(w.name, w.size),
      memorySource: (r) => memfd(r.name, r.size),
    });
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
  return readDmaRecord(spec, describeSim(spec.sim.model, spec.sim.options));
}
