// The one access check of a simulated device, as QEMU's memory core checks `MemoryRegionOps.valid`
// before it calls a device's read or write: every register and port access a session hands to a
// model passes here first, and the rules the model declares (`SimRegion.valid`, host/sim/model.ts)
// decide. A refused access never reaches the model: it is reported as a guest error (QEMU's
// LOG_GUEST_ERROR) and a read answers all-ones, a write is dropped — what the models did themselves
// before, each with its own test. The sandbox has already checked bounds and natural alignment
// (host/sandbox/registers.ts, `accessFits`); these rules are the device's own.
//
// A wrapper model (faulty, fuzz) describes the regions of the model it wraps, so the inner model's
// rules apply to the wrapper's accesses too; the wrapper's own calls into its inner model (faulty's
// look at ring registers) are trusted host code and not checked.

import { ALL_ONES, type AccessRule, type SimDescription, type SimModel, type SimRegion, type Width } from './model.ts';

/** A rule compiled for the hot path: `widths` has bit `w` set for each accepted width w (1, 2, 4, 8). */
interface Rule {
  from: number;
  to: number;
  widths: number;
  unaligned: boolean;
}

const WIDTHS: Width[] = [1, 2, 4, 8];

function compile(region: SimRegion): Rule[] {
  return region.valid.map((r: AccessRule) => ({
    from: r.from ?? 0,
    to: r.to ?? region.size,
    widths: WIDTHS.filter((w) => w >= r.min && w <= r.max).reduce((m, w) => m | w, 0),
    unaligned: r.unaligned ?? false,
  }));
}

/** The rule that decides an access at `off`: the first that covers it. */
function ruleAt(rules: Rule[], off: number): Rule | undefined {
  for (const r of rules) if (off >= r.from && off < r.to) return r;
  return undefined;
}

// The hot path (the fuzzer reads registers millions of times): a plain loop, no allocation.
function accepts(rules: Rule[] | undefined, off: number, width: number): boolean {
  if (rules === undefined) return false;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i];
    if (off >= r.from && off < r.to) return (r.widths & width) !== 0 && (r.unaligned || (off & (width - 1)) === 0);
  }
  return false;
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** "4-byte", "4- or 8-byte", "1-, 2- or 4-byte". */
function sizes(widths: number): string {
  const list = WIDTHS.filter((w) => widths & w);
  if (list.length === 1) return `${list[0]}-byte`;
  return `${list
    .slice(0, -1)
    .map((w) => `${w}-`)
    .join(', ')} or ${list[list.length - 1]}-byte`;
}

/** Why the rules refuse an access, for the guest error. */
function why(
  region: SimRegion | undefined,
  rules: Rule[] | undefined,
  kind: string,
  index: number,
  off: number,
  width: number,
): string {
  if (!region || !rules) return `no ${kind} ${index}`;
  const r = ruleAt(rules, off);
  if (!r) return `${region.name} takes no access there`;
  const whole = r.from === 0 && r.to >= region.size;
  const span = whole
    ? ''
    : r.from === 0
      ? ` below ${hex(r.to)}`
      : r.to >= region.size
        ? ` from ${hex(r.from)} on`
        : ` at ${hex(r.from)}-${hex(r.to - 1)}`;
  if (!(r.widths & width)) return `registers${span} take ${sizes(r.widths)} accesses`;
  return `registers${span} take naturally aligned accesses`;
}

/** A model behind its declared access rules: what a session calls instead of the model's own read/write/in/out. */
export class SimAccess {
  private readonly regions: Rule[][];
  private readonly ports: Rule[][];

  constructor(
    private readonly desc: SimDescription,
    private readonly model: SimModel,
    private readonly guestError: (message: string) => void,
  ) {
    this.regions = desc.regions.map(compile);
    this.ports = desc.ports.map(compile);
  }

  read(region: number, offset: number, width: Width): number | bigint {
    if (accepts(this.regions[region], offset, width)) return this.model.read(region, offset, width);
    this.refuse('region', region, 'read', offset, width);
    return ALL_ONES[width];
  }

  write(region: number, offset: number, width: Width, value: number | bigint): void {
    if (accepts(this.regions[region], offset, width)) this.model.write(region, offset, width, value);
    else this.refuse('region', region, 'write', offset, width);
  }

  portIn(port: number, offset: number, width: 1 | 2 | 4): number {
    if (accepts(this.ports[port], offset, width)) return this.model.portIn!(port, offset, width);
    this.refuse('port range', port, 'in', offset, width);
    return ALL_ONES[width] as number;
  }

  portOut(port: number, offset: number, width: 1 | 2 | 4, value: number): void {
    if (accepts(this.ports[port], offset, width)) this.model.portOut!(port, offset, width, value);
    else this.refuse('port range', port, 'out', offset, width);
  }

  /** The guest error of a refused access: "<model>: <width>-byte <op> at <offset>: <why>". */
  private refuse(kind: 'region' | 'port range', index: number, op: string, offset: number, width: number): void {
    const port = kind === 'port range';
    const region = (port ? this.desc.ports : this.desc.regions)[index];
    const rules = (port ? this.ports : this.regions)[index];
    const at = port ? `+${offset}` : hex(offset);
    this.guestError(
      `${this.desc.model}: ${width}-byte ${op} at ${at}: ${why(region, rules, kind, index, offset, width)}`,
    );
  }
}
