// The fault campaign's targets: each a shipped driver with its manifest, the simulated device it
// drives, the DMA window it gets (between two canary pages of one memfd), the smoke sequence a trial
// runs, the check that a fresh good driver serves again, and how its device misbehaves.
//
//   edu        factorials through interrupts, a DMA round trip (the register DMA firewall)
//   uart16550  bytes out and in through ports and receive interrupts (no DMA)
//   e1000      frames out and in through RX/TX descriptor rings under the descriptor firewall (the
//              simulated e1000 is not IOMMU-confined); its misbehaving device adds descriptor faults:
//              write-backs with garbage length and status, write-backs onto descriptors never handed
//              over, head registers reading out of range (host/sim/faulty.ts)

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DeviceSpec } from '../device-spec.ts';
import type { Grant, RingLayout } from '../grant.ts';
import { packageRoot } from '../native.ts';
import { E1000_OP, decodeFrames, encodeFrames } from '../net/e1000.ts';
import { grantFor, parseManifest } from '../package/manifest.ts';
import type { DriverInstance } from '../sandbox/instance.ts';
import type { DeviceSession } from '../sandbox/session.ts';
import { simStateBytes } from '../sim/dma-record.ts';
import { e1000Capture, e1000Inject } from '../sim/e1000.ts';
import type { FaultyOptions, FaultyRing } from '../sim/faulty.ts';
import { describeSim, simDeviceSpec } from '../sim/spec.ts';
import { uartFeed, uartTake } from '../sim/uart16550.ts';

export const TARGET_NAMES = ['edu', 'uart16550', 'e1000'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export const CANARY = 4096;

/** A target's per-job resources: the memfd holding its DMA window between two canary pages (-1: no DMA). */
export interface TargetPort {
  dmaFd: number;
}

export interface Target {
  name: TargetName;
  driver: string;
  manifest: string;
  model: string;
  modelOptions: Record<string, unknown>;
  /** Bytes of DMA window (0: the device does no DMA). */
  window: number;
  /** Bytes of the device's shared state (interrupt line, model, DMA record). */
  stateBytes: number;
  /** After a successful probe: the good driver's requests. Returns 'probe-refused'-style outcomes never; throws what the driver threw. */
  smoke(inst: DriverInstance, session: DeviceSession): undefined;
  /** After reset and probe on a fresh instance: undefined when the device served correctly, else why not. */
  serves(inst: DriverInstance, session: DeviceSession): string | undefined;
  /** The misbehaving device's options (sim model 'faulty'), drawn from the trial's generator. */
  misbehave(r: () => number, grant: Grant): FaultyOptions & Record<string, unknown>;
}

const le32 = (...v: number[]) => new Uint8Array(Uint32Array.from(v).buffer);
const u32At = (b: Uint8Array, i = 0) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(i * 4, true);
const p = (r: () => number, scale: number) => ((r() % 1000) / 1000) * scale;
const stuck = (r: () => number, offsets: number[], bits: number) =>
  r() % 3 === 0 ? { offset: offsets[r() % offsets.length], mask: 1 << (r() % bits), value: r() } : undefined;
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The same device state seen as the inner model (the wire helpers want the model by name). */
const asModel = (spec: DeviceSpec, model: string): DeviceSpec => ({ ...spec, sim: { ...spec.sim!, model } });

/** The outside feeds the device and kicks: the driver's thread takes the input, as the host loop does on the kick fd. */
function feed(session: DeviceSession, put: () => number): void {
  put();
  session.kicked();
}

/** A target device's DMA window (the model's; one at most: a job's memfd holds one) and state bytes. */
function device(model: string, options: Record<string, unknown>): Pick<Target, 'window' | 'stateBytes'> {
  const desc = describeSim(model, options);
  if (desc.dma.length > 1)
    throw new Error(`campaign: model ${model} has ${desc.dma.length} DMA windows; a job backs one`);
  return { window: desc.dma[0]?.size ?? 0, stateBytes: simStateBytes(desc) };
}

// --- edu -------------------------------------------------------------------------------------------

const edu: Target = {
  name: 'edu',
  driver: 'edu',
  manifest: 'edu',
  model: 'edu',
  modelOptions: {},
  ...device('edu', {}), // a 64 KiB window
  smoke(inst) {
    inst.request(1, new Uint8Array());
    inst.request(2, le32(5));
    inst.request(3, le32(3, 0x1000));
    inst.request(
      4,
      Uint8Array.from({ length: 64 }, (_, i) => i),
    );
    return undefined;
  },
  serves(inst) {
    const r = inst.request(2, le32(5));
    if (!(r instanceof Uint8Array)) return `5! answered with status ${r}`;
    const v = u32At(r);
    return v === 120 ? undefined : `5! answered ${v}`;
  },
  misbehave(r) {
    return {
      inner: 'edu',
      seed: r(),
      garbageReads: p(r, 0.3),
      spuriousIrqs: p(r, 0.2),
      dropIrqs: p(r, 0.5),
      stuck: stuck(r, [0x20, 0x24, 0x00, 0x08], 32),
    };
  },
};

// --- uart16550 -------------------------------------------------------------------------------------

const text = (s: string) => new TextEncoder().encode(s);

const uart16550: Target = {
  name: 'uart16550',
  driver: 'uart16550',
  manifest: 'uart16550',
  model: 'uart16550',
  modelOptions: {},
  ...device('uart16550', {}), // no DMA
  smoke(inst, session) {
    inst.request(1, text('hello\n'));
    feed(session, () => uartFeed(asModel(session.spec, 'uart16550'), text('abc')));
    inst.request(2, le32(16, 10));
    inst.request(3, new Uint8Array());
    return undefined;
  },
  serves(inst, session) {
    const line = asModel(session.spec, 'uart16550');
    uartTake(line);
    const w = inst.request(1, text('ok'));
    if (!(w instanceof Uint8Array) || u32At(w) !== 2)
      return `a 2-byte write answered ${w instanceof Uint8Array ? u32At(w) : w}`;
    const out = uartTake(line);
    if (!same(out, text('ok'))) return `the line carried ${out.length} bytes, not "ok"`;
    feed(session, () => uartFeed(line, text('xyz')));
    const got = inst.request(2, le32(64, 100));
    if (!(got instanceof Uint8Array)) return `a read answered status ${got}`;
    return same(got.subarray(got.length - 3), text('xyz'))
      ? undefined
      : `a read gave ${got.length} bytes, not ending in "xyz"`;
  },
  misbehave(r) {
    return {
      inner: 'uart16550',
      seed: r(),
      garbageReads: p(r, 0.3),
      spuriousIrqs: p(r, 0.2),
      dropIrqs: p(r, 0.5),
      stuck: stuck(r, [5, 2, 0, 7, 1], 8), // LSR, IIR, RBR, SCR, IER
    };
  },
};

// --- e1000 -------------------------------------------------------------------------------------------

const MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/** A frame to `to` (the NIC's MAC): 60..250 bytes (no short-frame padding), its payload numbered `n`. */
function frame(n: number, to: ArrayLike<number> = MAC, len = 60 + ((n * 37) % 190)): Uint8Array {
  const f = new Uint8Array(len);
  f.set(to, 0);
  f.set([0x02, 0, 0, 0, 0, 1], 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (let i = 14; i < len; i++) f[i] = (n + i) & 0xff;
  return f;
}

const RECV_WAIT_US = 2_000_000; // QEMU holds reception for 1 s after RCTL (virtual time: no real wait)

/** The rings the manifest declares, as the faulty device misbehaves on them. */
function faultyRings(grant: Grant): FaultyRing[] {
  const out: FaultyRing[] = [];
  for (const policy of Object.values(grant.regions ?? {}))
    for (const ring of (policy.rings ?? []) as RingLayout[])
      out.push({
        region: ring.region,
        baseLow: ring.registers.baseLow,
        baseHigh: ring.registers.baseHigh,
        length: ring.registers.length,
        lengthUnit: ring.lengthUnit,
        head: ring.registers.head,
        descriptorSize: ring.descriptorSize,
        writeBacks: ring.fields
          .filter((f) => f.meaning === 'written-length' || f.meaning === 'status')
          .map((f) => ({ offset: f.offset, width: f.width, meaning: f.meaning as 'written-length' | 'status' })),
      });
  return out;
}

const e1000: Target = {
  name: 'e1000',
  driver: 'e1000',
  manifest: 'e1000',
  model: 'e1000',
  modelOptions: {},
  ...device('e1000', {}), // 256 KiB, as the VM test's dma_size; the firewall keeps its last pages for the real rings
  smoke(inst, session) {
    inst.request(E1000_OP.send, encodeFrames([frame(1), frame(2), frame(3)]).payload);
    feed(session, () => e1000Inject(asModel(session.spec, 'e1000'), [frame(4), frame(5), frame(6)]));
    inst.request(E1000_OP.recv, le32(8, RECV_WAIT_US));
    inst.request(E1000_OP.link, new Uint8Array());
    inst.request(E1000_OP.stats, new Uint8Array());
    return undefined;
  },
  serves(inst, session) {
    const wire = asModel(session.spec, 'e1000');
    e1000Capture(wire);
    const out = [frame(10), frame(11)];
    const s = inst.request(E1000_OP.send, encodeFrames(out).payload);
    if (!(s instanceof Uint8Array) || u32At(s) !== 2)
      return `a send of 2 frames answered ${s instanceof Uint8Array ? u32At(s) : s}`;
    const sent = e1000Capture(wire);
    if (sent.length !== 2 || !sent.every((f, i) => same(f, out[i])))
      return `the wire carried ${sent.length} frames, not the 2 sent`;
    // To the MAC the driver reports: a misbehaving device may have made an earlier driver program
    // another one into RAL0 (RAH0.AV stuck clear: the MAC from a garbled EEPROM), which the device keeps.
    const m = inst.request(E1000_OP.mac, new Uint8Array());
    if (!(m instanceof Uint8Array) || m.length < 6)
      return `the MAC request answered ${m instanceof Uint8Array ? `${m.length} bytes` : m}`;
    const back = [frame(20, m.subarray(0, 6)), frame(21, m.subarray(0, 6))];
    feed(session, () => e1000Inject(wire, back));
    // Frames a faulted trial left on the wire may come first: the two injected must arrive last, in order.
    const got: Uint8Array[] = [];
    const arrived = () => got.length >= 2 && same(got[got.length - 2], back[0]) && same(got[got.length - 1], back[1]);
    for (let round = 0; round < 4 && !arrived(); round++) {
      const r = inst.request(E1000_OP.recv, le32(64, RECV_WAIT_US));
      if (!(r instanceof Uint8Array)) return `a receive answered status ${r}`;
      got.push(...decodeFrames(r));
    }
    return arrived() ? undefined : `received ${got.length} frames, not ending in the 2 injected`;
  },
  misbehave(r, grant) {
    // Descriptor faults in every misbehaving e1000: at least one of the three kinds, each at its own rate;
    // half the devices behave through the probe (~20-60 register accesses) and turn bad in the traffic.
    const which = 1 + (r() % 7);
    return {
      inner: 'e1000',
      innerOptions: {},
      seed: r(),
      onset: r() & 1 ? 0 : 20 + (r() % 40),
      garbageReads: p(r, 0.05),
      spuriousIrqs: p(r, 0.2),
      dropIrqs: p(r, 0.5),
      stuck: stuck(r, [0x0008, 0x00c0, 0x0000, 0x0014, 0x5404], 32), // STATUS, ICR, CTRL, EERD, RAH0
      rings: faultyRings(grant),
      garbageWriteBacks: which & 1 ? 0.05 + p(r, 0.6) : 0,
      strayWriteBacks: which & 2 ? 0.05 + p(r, 0.6) : 0,
      badHeads: which & 4 ? 0.05 + p(r, 0.5) : 0,
    };
  },
};

export const TARGETS: Record<TargetName, Target> = { edu, uart16550, e1000 };

/** Parse a --targets list: known names, no repeats. Throws naming the bad one. */
export function parseTargets(list: string): TargetName[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!names.length) throw new Error(`no targets in "${list}" (known: ${TARGET_NAMES.join(', ')})`);
  for (const n of names)
    if (!(TARGET_NAMES as readonly string[]).includes(n))
      throw new Error(`unknown target "${n}" (known: ${TARGET_NAMES.join(', ')})`);
  return [...new Set(names)] as TargetName[];
}

export function driverFile(t: Target): string {
  return join(packageRoot(), 'build', 'drivers', `${t.driver}.wasm`);
}

/**
 * The device a trial's driver sees: the target's model (or 'faulty' around it) over the job's state
 * and fds, its DMA window between two canary pages of the job's memfd (any write outside it is seen).
 */
export function targetSpec(
  t: Target,
  port: TargetPort,
  fds: { state: SharedArrayBuffer; irqFd: number; kickFd: number },
  model: string,
  options: Record<string, unknown>,
): DeviceSpec {
  return simDeviceSpec({
    id: `sim:campaign-${t.name}`,
    name: `campaign ${t.name}`,
    model,
    options,
    state: fds.state,
    irqFd: fds.irqFd,
    kickFd: fds.kickFd,
    dmaSource: () => ({ kind: 'fd', fd: port.dmaFd, offset: CANARY }),
  });
}

/** The grant of the target's shipped manifest on its device. */
export function targetGrant(t: Target, spec: DeviceSpec): Grant {
  const where = join(packageRoot(), 'guest-drivers', t.manifest, 'manifest.json');
  return grantFor(parseManifest(readFileSync(where, 'utf8'), where), spec, where).grant;
}
