// The register gate compiled into the driver (Wasm multi-memory, Node >= 24).
//
// At load the host rewrites the driver's module with binaryen.js:
//
//   memory 0            the driver's own memory (env.memory), the only one it was allowed to have
//   memory 1            wasmdrv-gate.shared: the driver's shared area (stats, flight recorder; shared.ts)
//   memory 2..          wasmdrv-gate.region<i>: memory-backed region i, a memfd/UIO map mapped
//                       MAP_SHARED|MAP_FIXED over the start of a WebAssembly.Memory the host made
//
// and `wasmdrv.clock_ns`, if imported, becomes a call of wasmdrv-gate.clock (clockImport) and a load of
// what it wrote (no BigInt per clock read);
//
// and each `wasmdrv.reg_read*` / `reg_write*` import the driver calls becomes a function of the
// driver's own module that checks region, bounds (granted size), natural alignment and the grant, then
// does one access of the width (reads: an atomic load, which V8 never merges, splits, hoists or
// drops; writes: a plain store, which it never drops or merges either), counts and records it in the
// shared area exactly as DriverShared.record does. Everything else (a failing check, a region with a
// write policy, a simulated region) calls the original JavaScript import, which checks again and
// raises the typed fault: the fast path is a faster route to the same answer, never a second policy.
//
// Why the driver cannot reach the added memories: the module as submitted must declare exactly one
// memory, imported as env.memory (checkModule; checkSingleMemory, below, again before the rewrite), and V8 validated it in that form. A
// validated module's instructions, data segments and exports can only name memory 0. The host's
// memories are appended after it (indices 1..n) and only code the host generates names them.

import { LoadError } from '../faults.ts';
import { MEMORY_IMPORT } from '../abi.ts';
import { grantedSize, regionHasCheckedWrites, regionPolicy, ringRegisterSpans, type Grant } from '../grant.ts';
import { readWasm, type WasmInfo } from '../wasm/read.ts';
import { fastRings, type FastRing } from './ring-state.ts';
import type { HostContext } from './host-context.ts';
import { STAT } from './shared.ts';

export const GATE_MODULE = 'wasmdrv-gate';

/**
 * The descriptor firewall's Wasm doorbell (ring-fast.ts) is on by default again since stop 19;
 * `WASMDRV_RING_FAST=0` turns it off (every doorbell then takes the JavaScript firewall: the same checks,
 * the same faults, ~40x the CPU per frame; docs/benchmarks.md). It was opt-in from stop 16 to 19, after
 * the QEMU e1000 scenario's process died at hot reloads with it on (docs/design.md, "The doorbell fast
 * path": the one core caught points at V8 while the gate compile ran, now in its own process, and the
 * doorbell's locked store, a stop-the-world under TCG, is gone).
 */
export function ringFastPathOn(): boolean {
  return process.env.WASMDRV_RING_FAST !== '0';
}

export interface InlineRegion {
  /** Region index in the driver's view. */
  index: number;
  /** Bytes the driver may touch from offset 0 (the grant's size). */
  size: number;
  read: boolean;
  /** Reads in these byte spans go to JavaScript (the descriptor firewall's ring registers, when it is on). */
  slowReads: [number, number][];
  /** Writes served inline (false when the grant has any write policy: those go to JavaScript). */
  write: boolean;
}

export interface InlineLayout {
  regions: InlineRegion[];
  /** Recorder entries (a power of two). */
  ringEntries: number;
  /** Count and record the reads served inline (false: 'record-writes'). */
  recordReads: boolean;
  /**
   * The rings whose doorbell (tail write) and head read are served in Wasm, with the descriptor firewall
   * on (ring-state.ts, ring-fast.ts): their state block and real rings are the memory wasmdrv-gate.rings.
   */
  rings?: FastRing[];
}

/**
 * The module as submitted declares exactly one memory, imported as env.memory, and nothing else:
 * no memory of its own (section 5), no second memory import. Throws LoadError naming what it found.
 * (checkModule has the same rules since issue 15; the rewriter checks again, on its own.)
 */
export function checkSingleMemory(bytes: Uint8Array, label: string): void {
  let info: WasmInfo;
  try {
    info = readWasm(bytes);
  } catch (err) {
    throw new LoadError(`${label}: not a valid Wasm module: ${(err as Error).message}`);
  }
  const found = [
    ...info.imports.filter((i) => i.desc.kind === 'memory').map((i) => `imported memory ${i.module}.${i.name}`),
    ...Array.from({ length: info.definedMemories }, () => 'a memory of its own (memory section)'),
  ];
  const want = `imported memory ${MEMORY_IMPORT.module}.${MEMORY_IMPORT.name}`;
  if (found.length === 1 && found[0] === want) return;
  if (found.length === 0) return; // no memory at all: checkModule names the missing env.memory
  throw new LoadError(
    `${label}: a driver has exactly one memory, imported as ${MEMORY_IMPORT.module}.${MEMORY_IMPORT.name}; this module has ${found.length}: ${found.join(', ')}`,
  );
}

let multiMemory: boolean | undefined;

/** Does this engine accept a module with two memories (Node >= 24)? Node 20 does not. */
export function engineHasMultiMemory(): boolean {
  if (multiMemory === undefined) {
    // (module (import "a" "m" (memory 0)) (import "a" "n" (memory 0)))
    const two = Uint8Array.from([
      0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 2, 0x0f, 2, 1, 0x61, 1, 0x6d, 2, 0, 0, 1, 0x61, 1, 0x6e, 2, 0, 0,
    ]);
    multiMemory = WebAssembly.validate(two);
  }
  return multiMemory;
}

/** Memory import names of the host's memories (module GATE_MODULE). */
export const SHARED_IMPORT = 'shared';
export const regionImport = (index: number) => `region${index}`;
export { RINGS_IMPORT } from './ring-state.ts';

/**
 * wasmdrv-gate.clock, for the rewritten `wasmdrv.clock_ns`: it writes what services.ts's clock_ns would
 * return into stats[STAT.clockNs] of the shared area, and the generated clock_ns loads it from memory 1.
 * An i64 returned by a JavaScript import is a BigInt, made on every call (a polling driver reads the
 * clock on every turn, the bench driver on every wake-up); this way nothing is allocated.
 */
export const CLOCK_IMPORT = 'clock';
export function clockImport(ctx: HostContext): () => void {
  const s = ctx.session;
  const stats = ctx.shared.stats;
  const native = ctx.native;
  if (s.virtual)
    return () => {
      s.advance(s.now() + s.clockStepNs); // as services.ts: each read costs device time
      stats[STAT.clockNs] = Math.floor(s.now());
    };
  // The import is the native function itself: a closure calling monotonicInto cost a JavaScript frame
  // and that call's argument checks on every clock read (docs/benchmarks.md, "The interrupt tail").
  if (s.monotonic) return native.clockInto(stats, STAT.clockNs);
  return () => {
    stats[STAT.clockNs] = Math.floor(s.now());
  };
}

/**
 * What the inline gate serves for these regions under `grant`, or undefined when nothing (no
 * memory-backed region the grant opens). The main thread computes it from the device spec to
 * rewrite the module; the worker computes it again from its own session and uses the rewritten
 * module only when both agree.
 */
export function inlineLayout(
  regions: { size: number; memory: boolean }[],
  grant: Grant,
  ringEntries: number,
  recordReads: boolean,
  /** The descriptor firewall is on (ring-hook.ts ringFirewallOn): ring register reads must reach it. */
  ringFirewall: boolean,
): InlineLayout | undefined {
  const out: InlineRegion[] = [];
  const rings: FastRing[] = [];
  for (const [i, reg] of regions.entries()) {
    const p = regionPolicy(grant, i);
    if (!reg.memory || (!p.read && !p.write)) continue;
    // A region with any write policy (writable list, DMA engine registers) takes its writes to JavaScript.
    out.push({
      index: i,
      size: grantedSize(p, reg.size),
      read: p.read,
      slowReads: ringFirewall ? ringRegisterSpans(p) : [],
      write: !regionHasCheckedWrites(p),
    });
    if (ringFirewall && ringFastPathOn()) rings.push(...fastRings(grant, i));
  }
  return out.length ? { regions: out, ringEntries, recordReads, rings } : undefined;
}

/** The rewritten module and the layout it was made for (main thread → worker). */
export interface InlineGateBytes {
  bytes: Uint8Array;
  layout: InlineLayout;
}
