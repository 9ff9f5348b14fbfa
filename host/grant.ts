// The grant: what one driver may touch, and the limits it runs under, as plain data.
//
// This is a base-layer file (no policy code runs here): host/package/ builds a Grant and Limits from a
// manifest, host/sandbox/ enforces them, host/driver.ts and the tools pass them along. Everything that
// *interprets* the data the same way on both sides lives here too, so it exists once: the default
// region/port policy, the layout of a grant's DMA engine registers (checked when a manifest is read
// and when an instance is linked), and the rule that decides which register writes must take the
// checked slow path (`needsSlowWrite`).

import { IMPORTS, type ImportGroup } from './abi.ts';
import { LoadError } from './faults.ts';

/** An access width in bytes (the same set as host/sim/model.ts's Width). */
export type AccessWidth = 1 | 2 | 4 | 8;

export interface Limits {
  /** Maximum linear memory in 64 KiB pages (growth beyond fails: fault `memory-limit`). Default 256 (16 MiB). */
  memoryPages: number;
  /** Deadline for one probe, request, interrupt, reset or restore call, in ms. Default 2000. */
  deadlineMs: number;
  /** Log messages per second allowed on average. Default 200. */
  logPerSec: number;
  /** Log messages allowed in a burst above the average. Default 1000. */
  logBurst: number;
  /** Interrupt events per second above which the line is masked and the driver faulted. Default 100000. */
  irqPerSec: number;
}

export const DEFAULT_LIMITS: Limits = {
  memoryPages: 256,
  deadlineMs: 2000,
  logPerSec: 200,
  logBurst: 1000,
  irqPerSec: 100_000,
};

/**
 * The most a manifest may ask for, per limit, unless the operator sets other caps (Host option
 * `limitCaps`, the daemon config's `limitCaps`). A manifest asking for more is refused at load,
 * naming the limit, the value and the cap.
 */
export const DEFAULT_LIMIT_CAPS: Limits = {
  memoryPages: 1024,
  deadlineMs: 10_000,
  logPerSec: 1000,
  logBurst: 5000,
  irqPerSec: 200_000,
};

/** Refuse limits above the caps (throws LoadError naming the limit, value and cap). */
export function checkLimitCaps(requested: Partial<Limits>, caps: Limits, where: string): void {
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const v = Object.hasOwn(requested, key) ? requested[key] : undefined;
    if (v !== undefined && v > caps[key]) {
      throw new LoadError(
        `${where}: limit ${key} ${v} is above the host's cap of ${caps[key]} (the operator sets caps with the Host option limitCaps)`,
      );
    }
  }
}

/** What a driver may touch. The default grant allows everything the device offers. */
export interface Grant {
  /** ABI import groups that may be linked. Default: all. */
  imports?: ImportGroup[];
  /** Per memory-mapped region (by index): access mode and policies. Default: read and write. */
  regions?: Record<number, RegionPolicy>;
  /** Per port region. Default: in and out. */
  ports?: Record<number, PortPolicy>;
  /** How many of the device's DMA windows (from the first) a DMA engine may use. Default: all. */
  dmaWindows?: number;
}

/** One register a `writable` list allows: a write must hit it exactly, with value & ~mask == 0. */
export interface WritableRegister {
  offset: number;
  width: AccessWidth;
  mask?: bigint;
}

export interface RegionPolicy {
  read: boolean;
  write: boolean;
  /** Bytes of the region the driver may touch, from offset 0 (default: all of it). */
  size?: number;
  /** When present, a write must hit one of these (offset, width) registers with value & ~mask == 0. */
  writable?: WritableRegister[];
  /**
   * The region's DMA engines (sandbox/dma-firewall.ts): every write touching one of their registers is merged
   * into a shadow, and the write that starts a transfer is refused (fault `dma-firewall`) unless the
   * whole transfer lies inside one granted DMA window on the RAM side and inside a declared device
   * range on the device side. Checked with or without a `writable` list.
   */
  dmaEngines?: DmaEngineSpec[];
  /**
   * The region's descriptor rings (package/rings.ts): with no IOMMU the descriptor firewall
   * (sandbox/ring-firewall.ts) owns their registers, and every tail write is checked and copied.
   */
  rings?: RingLayout[];
}

export interface PortPolicy {
  read: boolean;
  write: boolean;
}

/** The policy of region `index` under `grant` (THE default: read and write, all of it). */
export function regionPolicy(grant: Grant, index: number): RegionPolicy {
  return grant.regions?.[index] ?? { read: true, write: true };
}

/** The policy of port region `index` under `grant` (default: in and out). */
export function portPolicy(grant: Grant, index: number): PortPolicy {
  return grant.ports?.[index] ?? { read: true, write: true };
}

/** Bytes of a region of `regionSize` bytes the driver may touch under `policy`. */
export function grantedSize(policy: RegionPolicy, regionSize: number): number {
  return Math.min(regionSize, policy.size ?? regionSize);
}

/** The ABI import groups the grant links (default: all). */
export function grantedImports(grant: Grant): ImportGroup[] {
  return grant.imports ?? (Object.keys(IMPORTS) as ImportGroup[]);
}

// --- DMA engines: the registers a grant declares, laid out and checked -------------------------------

/** A register holding an address or a length: one 4- or 8-byte register, or a low/high pair of 4-byte registers. */
export type DmaRegisterSpec = { offset: number; width: 4 | 8 } | { low: number; high: number };

/** One DMA engine, as a grant declares it (offsets in its region). */
export interface DmaEngineSpec {
  name?: string;
  source: DmaRegisterSpec;
  destination: DmaRegisterSpec;
  length: DmaRegisterSpec;
  /** The write that starts a transfer: `bit` set in the register at `offset`. */
  trigger: { offset: number; width: 4 | 8; bit: number };
  /** The direction bit; `deviceToRam` is its value when the device writes RAM (edu: bit 1, value 1). */
  direction?: { offset: number; width: 4 | 8; bit: number; deviceToRam: 0 | 1 };
  /** Without `direction`: which address is the RAM side ('both' for a RAM-to-RAM copy engine). */
  ramSide?: 'source' | 'destination' | 'both';
  /** Inclusive ranges of the device's own address space the device-side address may cover (edu's buffer: 0x40000–0x40fff). */
  deviceRanges?: [bigint, bigint][];
  /** The device's DMA address width: a RAM range must lie below 2^addressBits (edu clamps to 28 bits). */
  addressBits?: number;
  /** How a write narrower than a register lands: 'refuse' (default) or 'merge' (byte enables). */
  narrowWrites?: 'refuse' | 'merge';
  /** Read engine registers back from the device at the trigger and refuse on a difference. Default true. */
  readBack?: boolean;
}

export type Field = 'source' | 'destination' | 'length' | 'trigger' | 'direction';

/** One physical register of an engine and where its bits go in the field's value. */
export interface Cell {
  offset: number;
  width: 4 | 8;
  /** Fields this register feeds (the trigger and direction bits may share one register). */
  fields: Field[];
  /** Bit position of this register's bit 0 in an address/length field (32 for a high half). */
  shift: number;
  /** Its name in messages: "source (0x80)", "source high (0x84)". */
  label: string;
}

export interface Engine {
  name: string;
  spec: DmaEngineSpec;
  cells: Cell[];
  /** The addresses and length, from their cells. */
  parts: Record<'source' | 'destination' | 'length', Cell[]>;
  triggerCell: Cell;
  directionCell?: Cell;
  device: [bigint, bigint][];
  limit?: bigint;
  narrow: 'refuse' | 'merge';
  readBack: boolean;
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

function registerCells(field: 'source' | 'destination' | 'length', r: DmaRegisterSpec): Cell[] {
  if ('low' in r) {
    return [
      { offset: r.low, width: 4, fields: [field], shift: 0, label: `${field} low (${hex(r.low)})` },
      { offset: r.high, width: 4, fields: [field], shift: 32, label: `${field} high (${hex(r.high)})` },
    ];
  }
  return [{ offset: r.offset, width: r.width, fields: [field], shift: 0, label: `${field} (${hex(r.offset)})` }];
}

/**
 * Check an engine declaration against the region it lives in and compile it. Throws an Error naming
 * the problem (the manifest loader and the instance turn it into their own error type).
 */
export function compileEngine(spec: DmaEngineSpec, index: number, regionSize: number): Engine {
  const name = spec.name ?? `dma${index}`;
  const bad = (why: string): never => {
    throw new Error(`DMA engine ${name}: ${why}`);
  };
  const parts = {
    source: registerCells('source', spec.source),
    destination: registerCells('destination', spec.destination),
    length: registerCells('length', spec.length),
  };
  const cells: Cell[] = [...parts.source, ...parts.destination, ...parts.length];
  const control = (field: 'trigger' | 'direction', c: { offset: number; width: 4 | 8; bit: number }): Cell => {
    if (!Number.isInteger(c.bit) || c.bit < 0 || c.bit >= c.width * 8)
      bad(`${field} bit ${c.bit} is not a bit of a ${c.width}-byte register`);
    const same = cells.find((x) => x.offset === c.offset);
    if (same) {
      if (same.width !== c.width || !(same.fields.includes('trigger') || same.fields.includes('direction'))) {
        bad(`${field} register ${hex(c.offset)} overlaps ${same.label}`);
      }
      same.fields.push(field);
      return same;
    }
    const cell: Cell = {
      offset: c.offset,
      width: c.width,
      fields: [field],
      shift: 0,
      label: `${field} (${hex(c.offset)})`,
    };
    cells.push(cell);
    return cell;
  };
  const triggerCell = control('trigger', spec.trigger);
  const directionCell = spec.direction ? control('direction', spec.direction) : undefined;
  if (spec.direction && spec.ramSide) bad('give either direction or ramSide, not both');
  if (!spec.direction && !spec.ramSide) bad('needs a direction bit or a fixed ramSide');
  const oneDeviceSide = spec.ramSide !== 'both';
  if (oneDeviceSide && !spec.deviceRanges?.length) bad('a transfer with a device side needs deviceRanges');
  for (const [lo, hi] of spec.deviceRanges ?? []) if (hi < lo) bad(`device range ${hex(lo)}–${hex(hi)} is empty`);
  if (
    spec.addressBits !== undefined &&
    (!Number.isInteger(spec.addressBits) || spec.addressBits < 1 || spec.addressBits > 64)
  )
    bad(`addressBits ${spec.addressBits} is not 1..64`);
  for (const c of cells) {
    if (!Number.isInteger(c.offset) || c.offset < 0 || c.offset % c.width)
      bad(`${c.label} is not ${c.width}-byte aligned`);
    if (c.offset + c.width > regionSize) bad(`${c.label} lies beyond the ${regionSize} granted bytes of its region`);
  }
  for (let i = 0; i < cells.length; i++) {
    for (let j = i + 1; j < cells.length; j++) {
      const a = cells[i],
        b = cells[j];
      if (a.offset < b.offset + b.width && b.offset < a.offset + a.width) bad(`${a.label} overlaps ${b.label}`);
    }
  }
  return {
    name,
    spec,
    cells,
    parts,
    triggerCell,
    directionCell,
    device: spec.deviceRanges ?? [],
    limit: spec.addressBits === undefined ? undefined : 1n << BigInt(spec.addressBits),
    narrow: spec.narrowWrites ?? 'refuse',
    readBack: spec.readBack ?? true,
  };
}

/** The byte spans [start, end) of a region that belong to its DMA engines' registers. */
export function engineSpans(engines: DmaEngineSpec[] | undefined, regionSize = Infinity): [number, number][] {
  const spans: [number, number][] = [];
  (engines ?? []).forEach((e, i) => {
    for (const c of compileEngine(e, i, regionSize).cells) spans.push([c.offset, c.offset + c.width]);
  });
  return spans.sort((a, b) => a[0] - b[0]);
}

/**
 * THE rule for every fast path that serves register writes without calling the checked JavaScript
 * implementation: true when a write of `width` bytes at `offset` must go to the slow path, because
 * the region is not writable, has a `writable` list (every write is checked against it), or the
 * write touches a byte of a DMA engine register (it must be merged into the shadow, and may be a
 * trigger). A fast path may serve a write only when this is false.
 */
export function needsSlowWrite(policy: RegionPolicy, offset: number, width: number): boolean {
  if (!policy.write || policy.writable) return true;
  // Ring registers, and the registers whose writes reset them, belong to the descriptor firewall (sandbox/ring-firewall.ts).
  for (const ring of policy.rings ?? [])
    for (const reg of [...Object.values(ring.registers), ...(ring.resetBy ?? []).map((t) => t.offset)])
      if (reg !== undefined && offset < reg + 4 && reg < offset + width) return true;
  return engineSpans(policy.dmaEngines).some(([s, e]) => offset < e && s < offset + width);
}

/**
 * Byte spans [start, end) of each ring's registers (lowest to highest, 4 bytes each): with the descriptor
 * firewall on, a read there must reach it (a head read copies write-backs; base and length read back what
 * the firewall keeps), so the fast paths send reads in these spans to the checked path.
 */
export function ringRegisterSpans(policy: RegionPolicy): [number, number][] {
  return (policy.rings ?? []).map((ring) => {
    const regs = Object.values(ring.registers).filter((r): r is number => r !== undefined);
    return [Math.min(...regs), Math.max(...regs) + 4];
  });
}

/** True when some write in the region needs the slow path (a gate that cannot test spans sends the whole region). */
export function regionHasCheckedWrites(policy: RegionPolicy): boolean {
  return !policy.write || !!policy.writable || !!policy.dmaEngines?.length || !!policy.rings?.length;
}

// Descriptor rings as the grant carries them (compiled from the manifest by package/rings.ts; enforced by
// sandbox/ring-firewall.ts when no IOMMU confines the device).

export type RingFieldMeaning =
  /** Bus address of a buffer the device reads or writes (the firewall checks it against the windows). */
  | 'buffer-address'
  /** Bytes of the buffer the device reads (TX): buffer-address + this must stay inside one window. */
  | 'buffer-length'
  /** Bytes the device wrote back (RX). */
  | 'written-length'
  /** Bits the device writes back (DD); copied back into the driver's shadow. */
  | 'status'
  /** Command bits the driver sets; `mustBeClear` bits select descriptor kinds the firewall refuses. */
  | 'command';

export interface RingFieldDecl {
  name: string;
  offset: number;
  width: 1 | 2 | 4 | 8;
  meaning: RingFieldMeaning;
  /** buffer-address, device-writes: bytes the device may write there (pinned by a register mask). */
  bufferBytes?: number;
  /** buffer-address, device-reads: the field that gives the bytes the device reads. */
  lengthField?: string;
  /** status: the "descriptor done" bit(s). */
  done?: string;
  /** command: bits that must be clear (e.g. the e1000's DEXT: only legacy descriptors). */
  mustBeClear?: string;
}

/** A write that resets a ring's registers: `bit` set in the 4-byte register at `offset` of the ring's region. */
export interface RingResetTrigger {
  offset: number;
  bit: number;
}

/** One ring of a region: its registers, descriptor geometry and the fields the firewall checks. */
export interface RingLayout {
  name: string;
  region: number;
  direction: 'device-reads' | 'device-writes';
  registers: { baseLow: number; baseHigh?: number; length: number; head: number; tail: number };
  /**
   * The register writes that reset the device's ring registers (the e1000's CTRL.RST): a 4-byte
   * write at `offset` with `bit` set. The bit is self-clearing; once it reads clear the device's ring
   * registers hold their reset values, and the descriptor firewall programs the ring afresh.
   */
  resetBy?: RingResetTrigger[];
  lengthUnit: 'bytes' | 'descriptors';
  descriptorSize: number;
  countMultiple: number;
  maxDescriptors: number;
  fields: (Omit<RingFieldDecl, 'done' | 'mustBeClear'> & { done?: bigint; mustBeClear?: bigint })[];
}
