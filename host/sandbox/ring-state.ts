// The descriptor firewall's state block and the doorbell fast path's plan (design: docs/design.md,
// "The doorbell fast path").
//
// With the register gate compiled into the driver (inline-gate.ts), a tail write and a head read of a
// ring are served by Wasm the host generates (inline-rewrite.ts, ring-fast.ts). That code and the
// JavaScript RingFirewall read and write ONE copy of each ring's state: a block of plain numbers at
// the start of the memory `wasmdrv-gate.rings`, whose next host pages are the real rings (the DMA
// pages the host keeps, mapped MAP_FIXED there). Without that memory (instance gate, JavaScript
// only) the block is an ArrayBuffer of the firewall's own, laid out the same.
//
//   0    u32  enabled: 1 once the firewalls are started or have adopted their rings (0: Wasm goes slow)
//   4    u32  number of windows in the table (0: Wasm goes slow)
//   64   the driver's DMA windows: per window u64 bus, u64 size (WINDOW_BYTES each, up to MAX_WINDOWS)
//   256  per ring (RING_BYTES each, in slot order): the RingState fields, the shadow's offset in the
//        driver's memory, the real ring's offset in this memory, and counters
//
// Every descriptor the Wasm path passes is a descriptor the JavaScript check passes; anything else it
// hands to JavaScript untouched, which decides and names the fault.

import type { Grant, RingLayout } from '../grant.ts';
import { regionPolicy } from '../grant.ts';

export const RINGS_IMPORT = 'rings';
export const STATE_BYTES = 4096;
export const ST_ENABLED = 0;
export const ST_WINDOWS = 4;
export const WINDOWS_AT = 64;
export const WINDOW_BYTES = 16;
export const MAX_WINDOWS = 12;
export const RINGS_AT = WINDOWS_AT + MAX_WINDOWS * WINDOW_BYTES;
export const RING_BYTES = 64;
export const MAX_RINGS = (STATE_BYTES - RINGS_AT) / RING_BYTES;
/** Byte offsets inside a ring's slot. */
export const R = {
  shadowLow: 0,
  shadowHigh: 4,
  count: 8,
  tail: 12,
  synced: 16,
  /** The shadow ring's byte offset in the driver's memory when it lies wholly in one window, else -1. */
  shadowAt: 20,
  /** The real ring's byte offset in `wasmdrv-gate.rings` (-1: not mapped there). */
  realAt: 24,
  /**
   * The device's head as last read (and found sound) by either path: its head only moves from here
   * towards the tail. Ahead of `synced` when a doorbell read the head without syncing.
   */
  seen: 28,
  /** f64: descriptors checked and copied (both paths). */
  checked: 32,
  /** f64: doorbells served by the Wasm path. */
  fastDoorbells: 40,
  /** f64: head reads served by the Wasm path. */
  fastHeads: 48,
} as const;

/** The rings the grant declares, region by region (numeric order), each with its slot in the block. */
export function declaredRings(grant: { regions?: Record<number, { rings?: RingLayout[] }> }): {
  region: number;
  rings: RingLayout[];
  firstSlot: number;
}[] {
  let slot = 0;
  return Object.entries(grant.regions ?? {})
    .filter(([, p]) => p.rings?.length)
    .map(([r, p]) => {
      const out = { region: Number(r), rings: p.rings!, firstSlot: slot };
      slot += p.rings!.length;
      return out;
    });
}

/** What the generated doorbell and head read of one ring need (JSON: it is part of the InlineLayout). */
export interface FastRing {
  slot: number;
  region: number;
  head: number;
  tail: number;
  /** The grant's mask on the tail register (writable list), undefined when none. */
  tailMask?: number;
  descriptorSize: number;
  /** fixedLen >= 0: the buffer's length is that constant; -1: the length field at lenOffset/lenWidth. */
  addresses: { offset: number; width: number; fixedLen: number; lenOffset: number; lenWidth: number }[];
  commands: { offset: number; width: number; mask: number }[];
  writeBacks: { offset: number; width: number }[];
}

/**
 * The rings of region `index` whose doorbell and head read may be served in Wasm, or [] when the
 * region's writes must all see JavaScript (no write grant, DMA engines, a writable list without the
 * tail) or a ring has a field the generated check does not handle (then JavaScript serves them all).
 */
export function fastRings(grant: Grant, index: number): FastRing[] {
  const p = regionPolicy(grant, index);
  const decl = declaredRings(grant).find((d) => d.region === index);
  if (!decl || !p.write || p.dmaEngines?.length) return [];
  if (decl.firstSlot + decl.rings.length > MAX_RINGS) return [];
  const out: FastRing[] = [];
  for (const [k, l] of decl.rings.entries()) {
    let tailMask: number | undefined;
    if (p.writable) {
      const w = p.writable.find((x) => x.offset === l.registers.tail && x.width === 4);
      if (!w) return [];
      if (w.mask !== undefined) tailMask = Number(w.mask & 0xffffffffn);
    }
    const byName = new Map(l.fields.map((f) => [f.name, f]));
    const addresses: FastRing['addresses'] = [];
    const commands: FastRing['commands'] = [];
    for (const f of l.fields) {
      if (f.meaning === 'buffer-address') {
        if (f.width !== 4 && f.width !== 8) return [];
        const len = f.lengthField === undefined ? undefined : byName.get(f.lengthField);
        addresses.push({
          offset: f.offset,
          width: f.width,
          fixedLen: len ? -1 : (f.bufferBytes ?? 0),
          lenOffset: len?.offset ?? 0,
          lenWidth: len?.width ?? 0,
        });
      } else if (f.meaning === 'command' && f.mustBeClear) {
        if (f.width > 4) return [];
        commands.push({ offset: f.offset, width: f.width, mask: Number(f.mustBeClear & 0xffffffffn) });
      }
    }
    out.push({
      slot: decl.firstSlot + k,
      region: index,
      head: l.registers.head,
      tail: l.registers.tail,
      tailMask,
      descriptorSize: l.descriptorSize,
      addresses,
      commands,
      writeBacks: l.fields
        .filter((f) => f.meaning === 'status' || f.meaning === 'written-length')
        .map((f) => ({ offset: f.offset, width: f.width })),
    });
  }
  return out;
}
