// Descriptor rings as a driver manifest declares them (`rings`), for the descriptor firewall.
//
// A ring device (a NIC) takes buffer addresses from descriptors the driver writes into memory, so the
// register firewall alone cannot keep its DMA inside the granted windows. The manifest says, per ring,
// which registers hold its base (low/high), its length and its head and tail (the doorbell), how big
// a descriptor is, and what each field that matters means. Today the host validates the declaration
// and the register firewall pins those registers (writable masks: the bases' high halves only 0); the
// doorbell-time descriptor check (copy the driver's shadow ring into a host-owned ring after checking
// every buffer address against the windows) consumes exactly this structure.

import type { RingFieldDecl, RingLayout } from '../grant.ts';

export type { RingFieldDecl, RingFieldMeaning, RingLayout } from '../grant.ts';

export interface RingDecl {
  name: string;
  region: number;
  direction: 'device-reads' | 'device-writes';
  baseLow: string;
  baseHigh?: string;
  length: string;
  /** Whether the length register counts bytes or descriptors. */
  lengthUnit: 'bytes' | 'descriptors';
  head: string;
  tail: string;
  /** Register writes that reset the ring's registers (a chip reset): `bit` set in `register`. */
  resetBy?: { register: string; bit: number }[];
  descriptorSize: number;
  countMultiple?: number;
  maxDescriptors: number;
  fields: RingFieldDecl[];
}

const hex = { type: 'string', pattern: '^(0x[0-9a-fA-F]+|[0-9]+)$' };
export const RINGS_SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: [
      'name',
      'region',
      'direction',
      'baseLow',
      'length',
      'lengthUnit',
      'head',
      'tail',
      'descriptorSize',
      'maxDescriptors',
      'fields',
    ],
    properties: {
      name: { type: 'string', pattern: '^[a-z0-9_-]{1,32}$' },
      region: { type: 'integer', minimum: 0 },
      direction: { enum: ['device-reads', 'device-writes'] },
      baseLow: hex,
      baseHigh: hex,
      length: hex,
      head: hex,
      tail: hex,
      lengthUnit: { enum: ['bytes', 'descriptors'] },
      resetBy: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['register', 'bit'],
          properties: { register: hex, bit: { type: 'integer', minimum: 0, maximum: 31 } },
        },
      },
      descriptorSize: { type: 'integer', minimum: 1, maximum: 4096 },
      countMultiple: { type: 'integer', minimum: 1 },
      maxDescriptors: { type: 'integer', minimum: 1, maximum: 65536 },
      fields: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'offset', 'width', 'meaning'],
          properties: {
            name: { type: 'string', pattern: '^[a-z0-9_-]{1,32}$' },
            offset: { type: 'integer', minimum: 0 },
            width: { enum: [1, 2, 4, 8] },
            meaning: { enum: ['buffer-address', 'buffer-length', 'written-length', 'status', 'command'] },
            bufferBytes: { type: 'integer', minimum: 1 },
            lengthField: { type: 'string' },
            done: hex,
            mustBeClear: hex,
          },
        },
      },
    },
  },
} as const;

const num = (s: string) => Number(BigInt(s));

/**
 * Check what the schema cannot: fields inside the descriptor and not overlapping, references that
 * resolve, ring registers inside a declared region and writable under the grant. Returns the rings
 * with numbers in place of strings; throws naming the ring and field.
 */
/** The parts of a manifest the ring check reads (structural, so rings.ts does not import manifest.ts back). */
export interface RingManifest {
  rings?: RingDecl[];
  regions?: { index: number; size: string }[];
}

export function ringLayouts(m: RingManifest, where: string): RingLayout[] {
  const out: RingLayout[] = [];
  const seen = new Set<string>();
  for (const r of m.rings ?? []) {
    const bad = (why: string): never => {
      throw new Error(`${where}: ring "${r.name}": ${why}`);
    };
    if (seen.has(r.name)) bad('declared twice');
    seen.add(r.name);
    const region = m.regions?.find((x) => x.index === r.region);
    if (!region) bad(`region ${r.region} is not among the manifest's regions`);
    const size = num(region!.size);
    const regs = {
      baseLow: num(r.baseLow),
      baseHigh: r.baseHigh === undefined ? undefined : num(r.baseHigh),
      length: num(r.length),
      head: num(r.head),
      tail: num(r.tail),
    };
    for (const [k, off] of Object.entries(regs)) {
      if (off === undefined) continue;
      if (off % 4 || off + 4 > size)
        bad(`register ${k} 0x${off.toString(16)} is not a 4-byte register inside region ${r.region}`);
    }
    const resetBy = (r.resetBy ?? []).map((t) => ({ offset: num(t.register), bit: t.bit }));
    for (const t of resetBy) {
      const at = `resetBy register 0x${t.offset.toString(16)}`;
      if (t.offset % 4 || t.offset + 4 > size) bad(`${at} is not a 4-byte register inside region ${r.region}`);
      if (Object.values(regs).includes(t.offset)) bad(`${at} is one of the ring's own registers`);
    }
    const used = new Uint8Array(r.descriptorSize);
    const names = new Set(r.fields.map((f) => f.name));
    for (const f of r.fields) {
      if (f.offset + f.width > r.descriptorSize)
        bad(
          `field "${f.name}" (offset ${f.offset}, width ${f.width}) runs past the ${r.descriptorSize}-byte descriptor`,
        );
      for (let i = f.offset; i < f.offset + f.width; i++) {
        if (used[i]) bad(`field "${f.name}" overlaps another field at byte ${i}`);
        used[i] = 1;
      }
      if (f.lengthField !== undefined && !names.has(f.lengthField))
        bad(`field "${f.name}": lengthField "${f.lengthField}" is not a field of the ring`);
    }
    const addrs = r.fields.filter((f) => f.meaning === 'buffer-address');
    if (!addrs.length) bad('no buffer-address field');
    for (const a of addrs) {
      if (r.direction === 'device-writes' && a.bufferBytes === undefined)
        bad(`field "${a.name}": a device-writes buffer needs bufferBytes`);
      if (r.direction === 'device-reads' && a.lengthField === undefined)
        bad(`field "${a.name}": a device-reads buffer needs lengthField`);
    }
    out.push({
      name: r.name,
      region: r.region,
      direction: r.direction,
      registers: regs,
      ...(resetBy.length ? { resetBy } : {}),
      lengthUnit: r.lengthUnit,
      descriptorSize: r.descriptorSize,
      countMultiple: r.countMultiple ?? 1,
      maxDescriptors: r.maxDescriptors,
      fields: r.fields.map((f) => ({
        ...f,
        done: f.done === undefined ? undefined : BigInt(f.done),
        mustBeClear: f.mustBeClear === undefined ? undefined : BigInt(f.mustBeClear),
      })),
    });
  }
  return out;
}
