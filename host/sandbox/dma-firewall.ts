// The DMA register firewall: a model of each DMA engine a region's grant declares, checked at the
// write that starts a transfer.
//
// A register-programmed DMA engine (QEMU's edu: source 0x80, destination 0x88, count 0x90, command
// 0x98) is a handful of registers the device reads when the transfer starts. Checking each address
// as it is written cannot work: an address a few bytes inside the window with a long count still
// runs past it, an address means RAM or device memory only once the direction bit is known, and a
// register can be filled half by half. So the host keeps a shadow of every engine register, merges
// each write of any width into the value the device will hold, forwards address and length writes
// unchecked (the device holds them), and at the trigger write (the start bit set) checks the whole
// transfer from the shadow: the RAM side [address, address + length) wholly inside ONE granted DMA
// window, the device side wholly inside one declared device range, with exact (unbounded) arithmetic
// so no sum wraps, and a length of 0 refused. A refusal is the fault `dma-firewall`, raised before the
// trigger reaches the device.
//
// The shadow must equal what the device holds when it starts. That rests on three rules:
//  - A write to an engine register must be of a form whose effect on the device is known: the whole
//    register (8 bytes, or a 4-byte half of a low/high pair, which is a register of its own). A
//    narrower or straddling write is refused unless the engine declares `narrowWrites: 'merge'`
//    (a register file with byte enables); devices differ here (edu zero-extends a 4-byte write to
//    0x80 and ignores one to 0x84), and a shadow that guesses wrong is a hole.
//  - Every register a transfer uses must have been written by this driver instance: what an earlier
//    instance left there is unknown to the shadow.
//  - Devices may ignore writes (edu ignores its DMA registers while a transfer runs). With
//    `readBack` (the default), the host reads every engine register the trigger does not itself
//    write back from the device just before forwarding the trigger, and refuses on any difference.
//    This assumes the device never changes its own address and length registers (edu does not),
//    and that it uses the values standing at the trigger (edu freezes them while it runs).
//
// `needsSlowWrite` is the one rule for the fast register paths (the Wasm register gate): a write that
// may touch an engine register, or any write in a region with a write policy, must come here.

import { FaultError } from '../faults.ts';
import type { Width } from '../sim/model.ts';
import type { RegionPolicy } from './instance.ts';

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

/** A granted DMA window as the firewall sees it. */
export interface FirewallWindow {
  name: string;
  bus: bigint;
  size: number;
}

type Field = 'source' | 'destination' | 'length' | 'trigger' | 'direction';

/** One physical register of an engine and where its bits go in the field's value. */
interface Cell {
  offset: number;
  width: 4 | 8;
  /** Fields this register feeds (the trigger and direction bits may share one register). */
  fields: Field[];
  /** Bit position of this register's bit 0 in an address/length field (32 for a high half). */
  shift: number;
  /** Its name in messages: "source (0x80)", "source high (0x84)". */
  label: string;
}

interface Engine {
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
const mask = (width: number) => (1n << BigInt(width * 8)) - 1n;

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
  // Ring registers belong to the descriptor firewall (ring-firewall.ts).
  for (const ring of policy.rings ?? [])
    for (const reg of Object.values(ring.registers))
      if (reg !== undefined && offset < reg + 4 && reg < offset + width) return true;
  return engineSpans(policy.dmaEngines).some(([s, e]) => offset < e && s < offset + width);
}

/** True when some write in the region needs the slow path (a gate that cannot test spans sends the whole region). */
export function regionHasCheckedWrites(policy: RegionPolicy): boolean {
  return !policy.write || !!policy.writable || !!policy.dmaEngines?.length || !!policy.rings?.length;
}

/** Reads one engine register back from the device (the instance supplies the region's access). */
export type ReadRegister = (offset: number, width: Width) => bigint;

/** The firewall of one region: its engines' compiled models and shadows. */
export class RegionFirewall {
  private readonly engines: Engine[];
  /** Shadow value of each engine register, by offset, and whether this instance has written it. */
  private readonly shadow = new Map<number, bigint>();
  private readonly written = new Set<number>();

  constructor(
    private readonly label: string,
    readonly region: number,
    specs: DmaEngineSpec[],
    regionSize: number,
    private readonly windows: FirewallWindow[],
    private readonly readRegister: ReadRegister,
  ) {
    this.engines = specs.map((s, i) => compileEngine(s, i, regionSize));
  }

  /** The shadow of the register at `offset` (tests, fault reports). */
  shadowOf(offset: number): bigint | undefined {
    return this.shadow.get(offset);
  }

  /**
   * A driver write of `width` bytes at `offset`: merge it into the shadow; if it sets an engine's
   * trigger bit, check the transfer. Throws FaultError('dma-firewall') and leaves the shadow as it
   * was when the write must not reach the device. Returns normally when it may be forwarded.
   */
  write(offset: number, width: Width, value: bigint): void {
    const end = offset + width;
    const staged = new Map<number, bigint>();
    const touched: Engine[] = [];
    for (const eng of this.engines) {
      let hit = false;
      for (const c of eng.cells) {
        if (!(offset < c.offset + c.width && c.offset < end)) continue;
        hit = true;
        const covers = offset <= c.offset && end >= c.offset + c.width;
        const old = this.shadow.get(c.offset) ?? 0n;
        let next: bigint;
        if (covers) {
          next = (value >> BigInt((c.offset - offset) * 8)) & mask(c.width);
        } else if (eng.narrow === 'merge' && offset >= c.offset && end <= c.offset + c.width) {
          const shift = BigInt((offset - c.offset) * 8);
          next = (old & ~(mask(width) << shift)) | ((value & mask(width)) << shift);
        } else {
          this.refuse(
            eng,
            `a ${width}-byte write at ${hex(offset)} covers only part of the ${c.width}-byte register ${c.label}; ` +
              'how the device takes a partial write is not modelled, so it is refused',
          );
        }
        staged.set(c.offset, next!);
      }
      if (hit) touched.push(eng);
    }
    if (touched.length === 0) return;
    const view = (o: number) => (staged.has(o) ? staged.get(o)! : (this.shadow.get(o) ?? 0n));
    for (const eng of touched) {
      const t = eng.triggerCell;
      if (!staged.has(t.offset) || ((view(t.offset) >> BigInt(eng.spec.trigger.bit)) & 1n) === 0n) continue;
      this.checkTransfer(eng, view, new Set(staged.keys()));
    }
    for (const [o, v] of staged) {
      this.shadow.set(o, v);
      this.written.add(o);
    }
  }

  private field(eng: Engine, f: 'source' | 'destination' | 'length', view: (o: number) => bigint): bigint {
    let v = 0n;
    for (const c of eng.parts[f]) v |= view(c.offset) << BigInt(c.shift);
    return v;
  }

  private checkTransfer(eng: Engine, view: (o: number) => bigint, inThisWrite: Set<number>): void {
    // Every register the transfer depends on must hold a value this instance wrote.
    const needed = [
      ...eng.parts.source,
      ...eng.parts.destination,
      ...eng.parts.length,
      ...(eng.directionCell ? [eng.directionCell] : []),
    ];
    for (const c of needed) {
      if (!inThisWrite.has(c.offset) && !this.written.has(c.offset)) {
        this.refuse(
          eng,
          `trigger at ${hex(eng.triggerCell.offset)} with ${c.label} never written by this driver: its content is unknown`,
        );
      }
    }
    const len = this.field(eng, 'length', view);
    const src = this.field(eng, 'source', view);
    const dst = this.field(eng, 'destination', view);
    let ramSide: ('source' | 'destination')[];
    let dir: string;
    if (eng.directionCell) {
      const d = eng.spec.direction!;
      const toRam = Number((view(d.offset) >> BigInt(d.bit)) & 1n) === d.deviceToRam;
      ramSide = toRam ? ['destination'] : ['source'];
      dir = toRam ? 'device to RAM' : 'RAM to device';
    } else {
      ramSide = eng.spec.ramSide === 'both' ? ['source', 'destination'] : [eng.spec.ramSide!];
      dir =
        eng.spec.ramSide === 'both' ? 'RAM to RAM' : eng.spec.ramSide === 'source' ? 'RAM to device' : 'device to RAM';
    }
    const what = `a ${dir} transfer of ${len} bytes (length register ${eng.parts.length.map((c) => hex(c.offset)).join('/')})`;
    // Nothing to move is never a transfer to start: edu in QEMU 7.2 takes a count of 0 as a hardware error.
    if (len === 0n) this.refuse(eng, `${what}: an empty transfer is refused`);
    // The RAM side first: it is the side that reaches outside the device.
    const order =
      ramSide.length === 2 || ramSide[0] === 'source'
        ? (['source', 'destination'] as const)
        : (['destination', 'source'] as const);
    for (const side of order) {
      const addr = side === 'source' ? src : dst;
      const reg = eng.parts[side].map((c) => hex(c.offset)).join('/');
      if (ramSide.includes(side)) {
        const w = this.windows.find((win) => inside(addr, len, win.bus, win.bus + BigInt(win.size)));
        const belowLimit = eng.limit === undefined || addr + len <= eng.limit;
        if (!w || !belowLimit) {
          const windows = this.windows.length
            ? this.windows.map((x) => `${x.name} ${hex(x.bus)}–${hex(x.bus + BigInt(x.size))}`).join(', ')
            : 'none granted';
          const why = !w
            ? `is not inside one granted DMA window (${windows})`
            : `reaches past the device's ${eng.spec.addressBits}-bit DMA addresses`;
          this.refuse(
            eng,
            `${what}: RAM side ${side} ${reg} = ${hex(addr)}, bytes [${hex(addr)}, ${hex(addr + len)}) ${why}`,
          );
        }
      } else if (!eng.device.some(([lo, hi]) => inside(addr, len, lo, hi + 1n))) {
        const ranges = eng.device.map(([lo, hi]) => `${hex(lo)}–${hex(hi)}`).join(', ');
        this.refuse(
          eng,
          `${what}: device side ${side} ${reg} = ${hex(addr)}, bytes [${hex(addr)}, ${hex(addr + len)}) are not inside a device range (${ranges})`,
        );
      }
    }
    if (!eng.readBack) return;
    for (const c of eng.cells) {
      if (inThisWrite.has(c.offset)) continue;
      const have = this.readRegister(c.offset, c.width) & mask(c.width);
      const want = view(c.offset);
      if (have !== want) {
        this.refuse(
          eng,
          `trigger at ${hex(eng.triggerCell.offset)}: ${c.label} reads back ${hex(have)} from the device, not the ${hex(want)} the driver wrote ` +
            '(the device ignored a write, e.g. while a transfer was running)',
        );
      }
    }
  }

  private refuse(eng: Engine, why: string): never {
    throw new FaultError('dma-firewall', `${this.label}: region ${this.region} DMA engine ${eng.name}: ${why}`);
  }
}

/** [addr, addr + len) inside [lo, hi), exact arithmetic (len > 0: empty transfers are refused before). */
function inside(addr: bigint, len: bigint, lo: bigint, hi: bigint): boolean {
  return addr >= lo && addr + len <= hi;
}
