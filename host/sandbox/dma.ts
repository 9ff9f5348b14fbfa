// WIT interface `dma`: dma_window_count, dma_window_addr, dma_window_size, dma_window_bus.
//
// The device's DMA windows are mapped MAP_FIXED into the driver's own memory, inside the area the
// driver exports (dma_area / dma_area_size), one after the other. The DMA engine firewall that checks
// what a driver programs into the device is dma-firewall.ts, called from the register slow path.

import { hostImports } from '../abi.ts';
import { FaultError, LoadError } from '../faults.ts';
import type { FixedMapping } from '../native.ts';
import type { HostContext } from './host-context.ts';
import { driverWindowSize } from './ring-hook.ts';

export interface DmaWindow {
  addr: number;
  size: number;
  bus: bigint;
  mapping: FixedMapping;
}

/** Map every DMA window of the device into the driver's dma_area (appends to `windows`). Throws LoadError. */
export function mapWindows(ctx: HostContext, exports: Record<string, any>, windows: DmaWindow[]): void {
  const { label, session, native, memory } = ctx;
  const dma = session.spec.dma;
  if (dma.length === 0) return;
  const page = native.pageSize();
  const area = exports.dma_area() >>> 0;
  const areaSize = exports.dma_area_size() >>> 0;
  if (area % page || areaSize % page || area + areaSize > memory.buffer.byteLength) {
    throw new LoadError(`${label}: dma_area ${area}+${areaSize} must be page-aligned and inside its memory`);
  }
  let at = area;
  for (const [i, spec] of dma.entries()) {
    // With the descriptor firewall on, the last window's last pages hold the host's real rings.
    const w = { ...spec, size: driverWindowSize(session.spec, ctx.grant, i, page) };
    if (w.size % page)
      throw new LoadError(`${label}: DMA window ${w.name} size ${w.size} is not a multiple of the page size`);
    if (at + w.size > area + areaSize) {
      throw new LoadError(
        `${label}: DMA window ${w.name} (${w.size} bytes) does not fit in dma_area (${areaSize} bytes)`,
      );
    }
    const src = session.openDmaSource(w);
    try {
      const mapping = native.mapIntoBuffer(memory.buffer, at, w.size, src.fd, src.offset, src.path);
      windows.push({ addr: at, size: w.size, bus: w.bus, mapping });
    } finally {
      if (src.owned) native.close(src.fd);
    }
    at += w.size;
  }
}

/** The dma imports over `windows` (filled by mapWindows once the module is instantiated). */
export function dmaImports(label: string, windows: readonly DmaWindow[]) {
  const windowIndex = (w: number): DmaWindow => {
    const win = windows[w];
    if (!win)
      throw new FaultError('bad-region', `${label}: DMA window ${w}: no such window (granted: ${windows.length})`);
    return win;
  };
  return hostImports('dma', {
    dma_window_count: () => windows.length,
    dma_window_addr: (w: number) => windowIndex(w).addr,
    dma_window_size: (w: number) => windowIndex(w).size,
    dma_window_bus: (w: number) => BigInt.asIntN(64, windowIndex(w).bus),
  });
}
