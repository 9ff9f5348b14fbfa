// The driver manifest: who the driver is, what it drives, and exactly what it may touch.
// Validated with a JSON schema (ajv); turned into the sandbox's Grant and Limits.

import { Ajv, type ErrorObject } from 'ajv';
import type { DeviceSpec } from '../device-spec.ts';
import type { ImportGroup } from '../abi.ts';
import {
  compileEngine,
  type DmaEngineSpec,
  type DmaRegisterSpec,
  type Grant,
  type Limits,
  type RegionPolicy,
} from '../grant.ts';
import { RINGS_SCHEMA, ringLayouts, type RingDecl } from './rings.ts';

export interface Manifest {
  name: string;
  version: string;
  license: string;
  abi: number;
  description?: string;
  match: { pci?: { vendor: string; device: string; class?: string }; uio?: string; sim?: string }[];
  regions?: {
    index: number;
    name?: string;
    size: string;
    access: 'r' | 'rw';
    writable?: { offset: string; width: 1 | 2 | 4 | 8; mask?: string }[];
    dmaEngines?: ManifestDmaEngine[];
  }[];
  ports?: { index: number; size: number; access: 'r' | 'rw' }[];
  dma?: { windows: number; minSize?: string };
  /** Descriptor rings (host/package/rings.ts), for the descriptor firewall. */
  rings?: RingDecl[];
  interrupts?: boolean;
  /** For `wasmdrv fuzz`: request ops it never makes (bench-only ops that run for wall-clock time). */
  fuzz?: { skipRequests?: number[] };
  limits?: Partial<Limits>;
}

/** A DMA engine's register: one 4/8-byte register, or a low/high pair of 4-byte registers. */
export type ManifestDmaRegister = { offset: string; width: 4 | 8 } | { low: string; high: string };

/** A register-programmed DMA engine (host/sandbox/dma-firewall.ts has the model and its rules). */
export interface ManifestDmaEngine {
  name?: string;
  source: ManifestDmaRegister;
  destination: ManifestDmaRegister;
  length: ManifestDmaRegister;
  trigger: { offset: string; width: 4 | 8; bit: number };
  direction?: { offset: string; width: 4 | 8; bit: number; deviceToRam: 0 | 1 };
  ramSide?: 'source' | 'destination' | 'both';
  deviceRanges?: [string, string][];
  addressBits?: number;
  narrowWrites?: 'refuse' | 'merge';
  readBack?: boolean;
}

const hex = { type: 'string', pattern: '^(0x[0-9a-fA-F]+|[0-9]+)$' };
const dmaRegister = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['offset', 'width'],
      properties: { offset: hex, width: { enum: [4, 8] } },
    },
    { type: 'object', additionalProperties: false, required: ['low', 'high'], properties: { low: hex, high: hex } },
  ],
};
const dmaBit = { type: 'integer', minimum: 0, maximum: 63 };
const dmaEngine = {
  type: 'object',
  additionalProperties: false,
  required: ['source', 'destination', 'length', 'trigger'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,32}$' },
    source: dmaRegister,
    destination: dmaRegister,
    length: dmaRegister,
    trigger: {
      type: 'object',
      additionalProperties: false,
      required: ['offset', 'width', 'bit'],
      properties: { offset: hex, width: { enum: [4, 8] }, bit: dmaBit },
    },
    direction: {
      type: 'object',
      additionalProperties: false,
      required: ['offset', 'width', 'bit', 'deviceToRam'],
      properties: { offset: hex, width: { enum: [4, 8] }, bit: dmaBit, deviceToRam: { enum: [0, 1] } },
    },
    ramSide: { enum: ['source', 'destination', 'both'] },
    deviceRanges: { type: 'array', items: { type: 'array', items: hex, minItems: 2, maxItems: 2 } },
    addressBits: { type: 'integer', minimum: 1, maximum: 64 },
    narrowWrites: { enum: ['refuse', 'merge'] },
    readBack: { type: 'boolean' },
  },
};
export const MANIFEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'version', 'license', 'abi', 'match'],
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+([-+][0-9A-Za-z.-]+)?$' },
    license: { type: 'string', minLength: 1 },
    abi: { type: 'integer', minimum: 1 },
    description: { type: 'string' },
    match: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        properties: {
          pci: {
            type: 'object',
            additionalProperties: false,
            required: ['vendor', 'device'],
            properties: { vendor: hex, device: hex, class: hex },
          },
          uio: { type: 'string' },
          sim: { type: 'string' },
        },
      },
    },
    regions: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['index', 'size', 'access'],
        properties: {
          index: { type: 'integer', minimum: 0 },
          name: { type: 'string' },
          size: hex,
          access: { enum: ['r', 'rw'] },
          writable: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['offset', 'width'],
              properties: { offset: hex, width: { enum: [1, 2, 4, 8] }, mask: hex },
            },
          },
          dmaEngines: { type: 'array', items: dmaEngine },
        },
      },
    },
    ports: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['index', 'size', 'access'],
        properties: {
          index: { type: 'integer', minimum: 0 },
          size: { type: 'integer', minimum: 1 },
          access: { enum: ['r', 'rw'] },
        },
      },
    },
    dma: {
      type: 'object',
      additionalProperties: false,
      required: ['windows'],
      properties: { windows: { type: 'integer', minimum: 0 }, minSize: hex },
    },
    rings: RINGS_SCHEMA,
    interrupts: { type: 'boolean' },
    fuzz: {
      type: 'object',
      additionalProperties: false,
      properties: {
        skipRequests: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 15 }, uniqueItems: true },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        memoryPages: { type: 'integer', minimum: 1, maximum: 65536 },
        deadlineMs: { type: 'integer', minimum: 1 },
        logPerSec: { type: 'integer', minimum: 1 },
        logBurst: { type: 'integer', minimum: 1 },
        irqPerSec: { type: 'integer', minimum: 1 },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true });
const validate = ajv.compile(MANIFEST_SCHEMA);

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

function describeError(e: ErrorObject): string {
  const field = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '(top level)';
  if (e.keyword === 'additionalProperties')
    return `${field}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  return `${field}: ${e.message}`;
}

/** Parse and validate manifest JSON; errors name the field. */
export function parseManifest(text: string, where: string): Manifest {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(`${where}: manifest is not JSON: ${(err as Error).message}`);
  }
  // The superseded per-register check: it looked at one address, not the transfer (issue 15).
  const regions = (m as { regions?: unknown }).regions;
  if (Array.isArray(regions)) {
    regions.forEach((r, i) => {
      if (r && typeof r === 'object' && Object.hasOwn(r, 'dmaAddress')) {
        throw new ManifestError(
          `${where}: invalid manifest: regions.${i}.dmaAddress is no longer accepted: it checked one address register, ` +
            `not the transfer; declare the DMA engine in regions.${i}.dmaEngines (docs/packages.md)`,
        );
      }
    });
  }
  if (!validate(m))
    throw new ManifestError(`${where}: invalid manifest: ${(validate.errors ?? []).map(describeError).join('; ')}`);
  try {
    ringLayouts(m as Manifest, where);
  } catch (err) {
    throw new ManifestError((err as Error).message);
  }
  return m as Manifest;
}

const big = (s: string) => BigInt(s);
const num = (s: string) => Number(BigInt(s));

/** Does this manifest claim the device? */
export function matches(m: Manifest, dev: DeviceSpec): boolean {
  return m.match.some(
    (x) =>
      (x.pci !== undefined &&
        dev.pci !== undefined &&
        num(x.pci.vendor) === dev.pci.vendor &&
        num(x.pci.device) === dev.pci.device &&
        (x.pci.class === undefined || num(x.pci.class) === dev.pci.class)) ||
      (x.uio !== undefined && dev.uioName === x.uio) ||
      (x.sim !== undefined &&
        dev.sim !== undefined &&
        (dev.sim.model === x.sim || (dev.sim.model === 'faulty' && (dev.sim.options.inner ?? 'edu') === x.sim))),
  );
}

/**
 * The least-privilege grant a manifest asks for, checked against the device: asking for a region,
 * port range or DMA window the device does not have, or for more bytes than it has, is refused.
 */
export function grantFor(m: Manifest, dev: DeviceSpec, where: string): { grant: Grant; limits: Partial<Limits> } {
  const refuse = (why: string) => {
    throw new ManifestError(`${where}: the manifest asks for more than device ${dev.id} has: ${why}`);
  };
  const imports: ImportGroup[] = ['services'];
  const regions: Record<number, RegionPolicy> = {};
  const rings = ringLayouts(m, where);
  // Regions the manifest does not list are not granted at all.
  for (let i = 0; i < dev.regions.length; i++) regions[i] = { read: false, write: false, size: 0 };
  for (const r of m.regions ?? []) {
    const have = dev.regions[r.index];
    if (!have) refuse(`region ${r.index} (the device has ${dev.regions.length})`);
    const size = num(r.size);
    if (size > have.size)
      refuse(`region ${r.index} size 0x${size.toString(16)} (the device's is 0x${have.size.toString(16)})`);
    regions[r.index] = {
      read: true,
      write: r.access === 'rw',
      size,
      writable: r.writable?.map((w) => ({
        offset: num(w.offset),
        width: w.width,
        mask: w.mask === undefined ? undefined : big(w.mask),
      })),
      dmaEngines: r.dmaEngines?.map((e, k) => {
        const spec = engineSpec(e);
        try {
          compileEngine(spec, k, size);
        } catch (err) {
          throw new ManifestError(`${where}: regions.${r.index}.dmaEngines.${k}: ${(err as Error).message}`);
        }
        return spec;
      }),
      ...(rings.some((x) => x.region === r.index) ? { rings: rings.filter((x) => x.region === r.index) } : {}),
    };
  }
  if (m.regions?.length) imports.push('registers');
  const ports: Record<number, { read: boolean; write: boolean }> = {};
  for (let i = 0; i < dev.ports.length; i++) ports[i] = { read: false, write: false };
  for (const p of m.ports ?? []) {
    const have = dev.ports[p.index];
    if (!have) refuse(`port region ${p.index} (the device has ${dev.ports.length})`);
    if (p.size > have.size) refuse(`port region ${p.index} size ${p.size} (the device's is ${have.size})`);
    ports[p.index] = { read: true, write: p.access === 'rw' };
  }
  if (m.ports?.length) imports.push('ports');
  if (m.dma && m.dma.windows > 0) {
    if (m.dma.windows > dev.dma.length) refuse(`${m.dma.windows} DMA window(s) (the device has ${dev.dma.length})`);
    const min = m.dma.minSize ? num(m.dma.minSize) : 0;
    for (let w = 0; w < m.dma.windows; w++)
      if (dev.dma[w].size < min) refuse(`a DMA window of ${min} bytes (window ${w} has ${dev.dma[w].size})`);
    imports.push('dma');
  }
  if (m.interrupts) {
    if (!dev.irq) refuse('interrupts (the device has no interrupt line)');
    imports.push('irq');
  }
  return { grant: { imports, regions, ports, dmaWindows: m.dma?.windows ?? 0 }, limits: m.limits ?? {} };
}

function register(r: ManifestDmaRegister): DmaRegisterSpec {
  return 'low' in r ? { low: num(r.low), high: num(r.high) } : { offset: num(r.offset), width: r.width };
}

/** A manifest's engine as the firewall takes it (numbers and bigints). */
export function engineSpec(e: ManifestDmaEngine): DmaEngineSpec {
  return {
    name: e.name,
    source: register(e.source),
    destination: register(e.destination),
    length: register(e.length),
    trigger: { offset: num(e.trigger.offset), width: e.trigger.width, bit: e.trigger.bit },
    direction: e.direction && {
      offset: num(e.direction.offset),
      width: e.direction.width,
      bit: e.direction.bit,
      deviceToRam: e.direction.deviceToRam,
    },
    ramSide: e.ramSide,
    deviceRanges: e.deviceRanges?.map(([lo, hi]) => [big(lo), big(hi)] as [bigint, bigint]),
    addressBits: e.addressBits,
    narrowWrites: e.narrowWrites,
    readBack: e.readBack,
  };
}

const regText = (r: ManifestDmaRegister) => ('low' in r ? `${r.low}/${r.high}` : r.offset);

/** The grant in plain words, for `wasmdrv inspect`. */
export function describeGrant(m: Manifest): string[] {
  const out: string[] = [];
  for (const r of m.regions ?? []) {
    const end = num(r.size) - 1;
    out.push(
      `may ${r.access === 'rw' ? 'read and write' : 'read'} ${r.name ?? `region ${r.index}`} bytes 0x00–0x${end.toString(16)}` +
        (r.writable
          ? `, writing only ${r.writable.map((w) => `0x${num(w.offset).toString(16)}/${w.width * 8}${w.mask ? ` (mask ${w.mask})` : ''}`).join(', ')}`
          : ''),
    );
    (r.dmaEngines ?? []).forEach((e, k) =>
      out.push(
        `may start DMA on engine ${e.name ?? `dma${k}`} (source ${regText(e.source)}, destination ${regText(e.destination)}, length ${regText(e.length)}, ` +
          `started by bit ${e.trigger.bit} of ${e.trigger.offset}) only for whole transfers inside one DMA window on the RAM side` +
          `${e.deviceRanges ? ` and inside device addresses ${e.deviceRanges.map(([a, b]) => `${a}–${b}`).join(', ')} on the device side` : ''}`,
      ),
    );
  }
  for (const p of m.ports ?? [])
    out.push(`may ${p.access === 'rw' ? 'read and write' : 'read'} ${p.size} I/O ports of port region ${p.index}`);
  if (m.dma?.windows)
    out.push(
      `may start DMA into its ${m.dma.windows} window(s)${m.dma.minSize ? ` of at least ${num(m.dma.minSize)} bytes` : ''}`,
    );
  if (m.interrupts) out.push('may wait for interrupts');
  out.push('may log (rate-limited) and read the clock');
  return out;
}
