// Where the descriptor firewall (ring-firewall.ts) meets a driver instance: when it is on, the memory
// it owns, the windows the driver sees, and one firewall per region that declares rings.
//
// On whenever the grant declares rings and the device's DMA is not confined by an IOMMU (UIO, the
// simulator, VFIO in no-IOMMU mode); off under VFIO with an IOMMU, which confines the DMA itself.
// The real rings live in the last pages of the device's last DMA window: the host maps that window
// for itself and the driver is given the window without them, so no driver store reaches a real
// ring and no descriptor can name one (they are outside every window the driver is granted).

import type { Native } from '../native.ts';
import type { DeviceSpec } from '../device-spec.ts';
import type { RingLayout } from '../grant.ts';
import type { DeviceSession } from './session.ts';
import {
  RingFirewall,
  carveRealRings,
  openStateBlock,
  ringReserveBytes,
  type DataWindow,
  type RingState,
} from './ring-firewall.ts';
import { STATE_BYTES, declaredRings } from './ring-state.ts';

/** Every firewall's RingState, by region: what a reload or rollback hands to the next instance. */
export type RingsState = Record<number, RingState[]>;

/** The part of a grant this needs: per region, the rings it declares. */
export interface RingGrant {
  regions?: Record<number, { rings?: RingLayout[] }>;
}

const declared = declaredRings;

/** The first page(s) of `wasmdrv-gate.rings` hold the state block; the real rings follow (ring-state.ts). */
export const ringsMemoryStateBytes = (page: number) => Math.ceil(STATE_BYTES / page) * page;

/** Is the descriptor firewall on for this device under this grant? */
export function ringFirewallOn(spec: DeviceSpec, grant: RingGrant): boolean {
  return spec.dmaConfinement !== 'iommu' && declared(grant).length > 0 && spec.dma.length > 0;
}

/** Bytes the host keeps from the end of the device's last DMA window for its real rings (0 when off). */
export function ringReserve(spec: DeviceSpec, grant: RingGrant, page: number): number {
  if (!ringFirewallOn(spec, grant)) return 0;
  return declared(grant).reduce((n, d) => n + ringReserveBytes(d.rings, page), 0);
}

/** The size of DMA window `i` as the driver gets it (the last one without the host's ring pages). */
export function driverWindowSize(spec: DeviceSpec, grant: RingGrant, i: number, page: number): number {
  const w = spec.dma[i];
  if (i !== spec.dma.length - 1) return w.size;
  const reserve = ringReserve(spec, grant, page);
  if (reserve && reserve >= w.size)
    throw new Error(
      `DMA window ${w.name} (${w.size} bytes) is too small to keep ${reserve} bytes for the descriptor firewall's rings`,
    );
  return w.size - reserve;
}

/** The driver's windows as the firewall checks them: bus address, size, and where they are in its memory. */
export interface MappedWindow {
  addr: number;
  size: number;
  bus: bigint;
}

export class RingGuard {
  /** The firewall of each region (undefined: the region declares no rings, or the firewall is off). */
  readonly byRegion: (RingFirewall | undefined)[] = [];
  private readonly mapping?: { close(): void };
  private readonly all: RingFirewall[] = [];

  constructor(
    label: string,
    session: DeviceSession,
    grant: RingGrant,
    windows: MappedWindow[],
    memory: WebAssembly.Memory,
    native: Native,
    /** The previous instance's rings (a reload or rollback): taken over when they still hold, else started afresh. */
    takeover?: RingsState,
    /** Told why a takeover was refused (the rings were started afresh instead). */
    onRefused?: (why: string) => void,
    /**
     * The memory `wasmdrv-gate.rings` the gate link made (the register gate compiled in, with rings it
     * serves): its first page is the state block the Wasm doorbell shares, the real rings are mapped after it.
     */
    ringsMemory?: WebAssembly.Memory,
  ) {
    const spec = session.spec;
    if (!ringFirewallOn(spec, grant)) return;
    const page = native.pageSize();
    const last = spec.dma[spec.dma.length - 1];
    const reserve = ringReserve(spec, grant, page);
    let bytes: Uint8Array;
    let block: Uint8Array;
    // With the rings memory: the last DMA window is mapped whole right after the state block (gate-link.ts).
    const windowAt = ringsMemory ? ringsMemoryStateBytes(page) : undefined;
    if (ringsMemory) {
      block = new Uint8Array(ringsMemory.buffer, 0, STATE_BYTES);
      bytes = new Uint8Array(ringsMemory.buffer, windowAt! + last.size - reserve, reserve);
    } else {
      block = new Uint8Array(STATE_BYTES);
      const src = session.openDmaSource(last);
      try {
        const m = native.mapFd(src.fd, last.size, src.offset, src.path ?? `${label}: DMA window ${last.name}`);
        this.mapping = m;
        bytes = new Uint8Array(m.buffer(), last.size - reserve, reserve);
      } finally {
        if (src.owned) native.close(src.fd);
      }
    }
    let cache: { buf: ArrayBufferLike; views: Uint8Array[] } | undefined;
    const view = (i: number) => {
      if (cache?.buf !== memory.buffer)
        cache = {
          buf: memory.buffer,
          views: windows.map((w) => new Uint8Array(memory.buffer, w.addr, w.size)),
        };
      return cache.views[i];
    };
    const data: DataWindow[] = windows.map((w, i) => ({ bus: w.bus, size: w.size, at: w.addr, bytes: () => view(i) }));
    let at = 0;
    for (const { region, rings, firstSlot } of declared(grant)) {
      const size = ringReserveBytes(rings, page);
      const real = carveRealRings(
        rings,
        last.bus + BigInt(last.size - reserve + at),
        bytes.subarray(at, at + size),
        page,
      );
      if (windowAt !== undefined) for (const r of real) r.at = windowAt + Number(r.bus - last.bus);
      at += size;
      const reg = session.regions[region];
      const device =
        reg.sim >= 0
          ? {
              read32: (o: number) => Number(session.readSim(reg.sim, o, 4)) >>> 0,
              write32: (o: number, v: number) => session.writeSim(reg.sim, o, 4, v >>> 0),
            }
          : {
              read32: (o: number) => reg.u32![o >>> 2],
              write32: (o: number, v: number) => {
                reg.u32![o >>> 2] = v >>> 0;
              },
            };
      const fw = new RingFirewall(`${label}: region ${region}`, rings, real, data, device, { bytes: block, firstSlot });
      const saved = takeover?.[region];
      const refused = saved ? fw.adopt(saved) : 'no saved state';
      if (refused) {
        if (saved) onRefused?.(`${label}: region ${region}: rings started afresh: ${refused}`);
        fw.start();
      }
      this.byRegion[region] = fw;
      this.all.push(fw);
    }
    // Only now may the generated doorbell run: every ring is started or adopted.
    if (ringsMemory) openStateBlock(block, data);
  }

  get on(): boolean {
    return this.all.length > 0;
  }

  /** Descriptors checked and copied so far. */
  get checked(): number {
    return this.all.reduce((n, f) => n + f.checked, 0);
  }

  /** Doorbells and head reads the Wasm path served (the register gate compiled in). */
  get fast(): { doorbells: number; heads: number } {
    const f = this.all.map((x) => x.fast);
    return { doorbells: f.reduce((n, x) => n + x.doorbells, 0), heads: f.reduce((n, x) => n + x.heads, 0) };
  }

  /** Copy the device's write-backs into the driver's shadow rings (before an interrupt or a request). */
  sync(): void {
    for (const f of this.all) f.sync();
  }

  /** Program every ring afresh, as before the driver ran (after host writes that bypassed the firewall). */
  restart(): void {
    for (const f of this.all) f.start();
  }

  /** The host's side of the rings, for the next instance. */
  state(): RingsState {
    const out: RingsState = {};
    this.byRegion.forEach((f, region) => {
      if (f) out[region] = f.state();
    });
    return out;
  }

  close(): void {
    this.mapping?.close();
  }
}
