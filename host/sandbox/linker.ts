// The linker (after wasmtime's Linker / InstancePre): check a driver module against the ABI and the
// grant, compile it, and hand back a PreparedDriver that any number of instances are made from.
//
// The check is strict (STYLE.md): only ABI imports, only the groups the grant allows, exact
// signatures, and the memory import the host creates. A worker prepares its driver once and reuses it
// for every restart; reload prepares the new bytes; the fuzzer and the campaign may prepare once per
// run and instantiate per trial.

import {
  ABI_VERSION,
  ABI_VERSION_GLOBAL,
  IMPORTS,
  IMPORT_MODULE,
  MEMORY_IMPORT,
  OPTIONAL_EXPORTS,
  REQUIRED_EXPORTS,
  importGroup,
  type FuncSig,
  type ImportGroup,
} from '../abi.ts';
import { LoadError } from '../faults.ts';
import { DEFAULT_LIMITS, grantedImports, type Grant, type Limits } from '../grant.ts';
import { formatType, readWasm, type FuncType, type WasmInfo } from '../wasm/read.ts';
import { checkedGrow } from './memory-grow.ts';
import type { DeviceSession } from './session.ts';

/** What the linker needs to know of a device: how many regions, ports, DMA windows, and an interrupt. */
export interface DeviceShape {
  regions: unknown[];
  ports: unknown[];
  dmaCount: number;
  hasIrq: boolean;
}

export function shapeOf(session: DeviceSession): DeviceShape {
  return {
    regions: session.regions,
    ports: session.ports,
    dmaCount: session.spec.dma.length,
    hasIrq: !!session.irq,
  };
}

function sameSig(t: FuncType, s: FuncSig): boolean {
  return (
    t.params.length === s.params.length &&
    t.results.length === s.results.length &&
    t.params.every((p, i) => p === s.params[i]) &&
    t.results.every((r, i) => r === s.results[i])
  );
}

function sigText(s: FuncSig): string {
  return `(${s.params.join(', ')}) -> (${s.results.join(', ')})`;
}

/** Check a module against the ABI and the grant without instantiating it. Throws LoadError naming the problem. */
export function checkModule(
  bytes: Uint8Array,
  session: DeviceShape,
  grant: Grant,
  limits: Limits,
  label: string,
): WasmInfo {
  let info: WasmInfo;
  try {
    info = readWasm(bytes);
  } catch (err) {
    throw new LoadError(`${label}: not a valid Wasm module: ${(err as Error).message}`);
  }
  const allowed = new Set<ImportGroup>(grantedImports(grant));
  // One memory, the host's: none of the module's own, no second import, no other memory index in the
  // code or the data (Node 20 refuses multi-memory modules, Node 24+ runs them: the check must not
  // depend on the engine). At most one table, defined by the module (AssemblyScript's table for
  // indirect calls); an imported table would be a host object the driver could reach.
  if (info.definedMemories > 0)
    throw new LoadError(
      `${label}: the module defines ${info.definedMemories} memory of its own; a driver uses only the host's ${MEMORY_IMPORT.module}.${MEMORY_IMPORT.name}`,
    );
  if (info.importedMemories > 1)
    throw new LoadError(
      `${label}: the module imports ${info.importedMemories} memories; a driver imports exactly one, ${MEMORY_IMPORT.module}.${MEMORY_IMPORT.name}`,
    );
  const tableImport = info.imports.find((i) => i.desc.kind === 'table');
  if (tableImport)
    throw new LoadError(
      `${label}: import ${tableImport.module}.${tableImport.name} is a table; the ABI gives drivers no tables`,
    );
  if (info.definedTables > 1)
    throw new LoadError(
      `${label}: the module defines ${info.definedTables} tables; a driver may define one (for indirect calls)`,
    );
  const other = info.otherMemoryUses[0];
  if (other)
    throw new LoadError(
      `${label}: ${other.what} at byte ${other.at} uses memory index ${other.memory}; a driver has only memory 0`,
    );
  let sawMemory = false;
  for (const imp of info.imports) {
    const name = `${imp.module}.${imp.name}`;
    if (imp.module === MEMORY_IMPORT.module && imp.name === MEMORY_IMPORT.name) {
      if (imp.desc.kind !== 'memory') throw new LoadError(`${label}: import ${name} must be a memory`);
      if (imp.desc.shared || imp.desc.memory64)
        throw new LoadError(`${label}: import ${name} must be a plain 32-bit unshared memory`);
      if (imp.desc.min > limits.memoryPages) {
        throw new LoadError(
          `${label}: import ${name} needs ${imp.desc.min} pages, more than the limit of ${limits.memoryPages}`,
        );
      }
      sawMemory = true;
      continue;
    }
    const group = imp.module === IMPORT_MODULE ? importGroup(imp.name) : undefined;
    if (!group) throw new LoadError(`${label}: import ${name} is not part of the wasmdrv ABI v${ABI_VERSION}`);
    if (!allowed.has(group))
      throw new LoadError(`${label}: import ${name} is not granted (the grant does not allow ${group})`);
    if (imp.desc.kind !== 'function') throw new LoadError(`${label}: import ${name} must be a function`);
    const want = (IMPORTS[group] as Record<string, FuncSig>)[imp.name];
    if (!sameSig(imp.desc.type, want)) {
      throw new LoadError(
        `${label}: import ${name} has type ${formatType(imp.desc.type)}, the ABI says ${sigText(want)}`,
      );
    }
  }
  if (!sawMemory)
    throw new LoadError(
      `${label}: the module must import its memory as ${MEMORY_IMPORT.module}.${MEMORY_IMPORT.name} (asc --importMemory)`,
    );
  const exports = new Map(info.exports.map((e) => [e.name, e]));
  for (const [name, want] of Object.entries(REQUIRED_EXPORTS)) {
    const e = exports.get(name);
    if (!e) throw new LoadError(`${label}: required export ${name} is missing`);
    if (e.desc.kind !== 'function' || !sameSig(e.desc.type, want))
      throw new LoadError(`${label}: export ${name} must be a function ${sigText(want)}`);
  }
  for (const [name, want] of Object.entries(OPTIONAL_EXPORTS)) {
    const e = exports.get(name);
    if (e && (e.desc.kind !== 'function' || !sameSig(e.desc.type, want)))
      throw new LoadError(`${label}: export ${name} must be a function ${sigText(want)}`);
  }
  const v = exports.get(ABI_VERSION_GLOBAL);
  if (!v || v.desc.kind !== 'global' || v.desc.type !== 'i32')
    throw new LoadError(`${label}: export ${ABI_VERSION_GLOBAL} (an i32 global) is missing`);
  if (session.dmaCount > 0 && (!exports.has('dma_area') || !exports.has('dma_area_size'))) {
    throw new LoadError(
      `${label}: the device has ${session.dmaCount} DMA window(s) but the module exports no dma_area/dma_area_size`,
    );
  }
  return info;
}

/** A module checked against one device shape, grant and limits, and compiled: instantiate it many times. */
export interface PreparedDriver {
  readonly label: string;
  readonly bytes: Uint8Array;
  readonly module: WebAssembly.Module;
  readonly info: WasmInfo;
  readonly grant: Grant;
  readonly limits: Limits;
}

/**
 * Check, then compile (or adopt `module`, compiled by the caller from checkedGrow of the same bytes). Throws
 * LoadError naming the problem. The check comes first: the refusal names our rule whatever the engine
 * supports (Node 20 does not compile a second memory at all, Node 24+ does).
 */
export function prepare(
  label: string,
  bytes: Uint8Array,
  shape: DeviceShape,
  grant: Grant = {},
  limits: Partial<Limits> = {},
  opts: { module?: WebAssembly.Module; checked?: WasmInfo } = {},
): PreparedDriver {
  const full = { ...DEFAULT_LIMITS, ...limits };
  const info = opts.checked ?? checkModule(bytes, shape, grant, full, label);
  let module = opts.module;
  if (!module) {
    const loadable = checkedGrow(bytes, label); // memory.grow as a checked call (memory-grow.ts)
    try {
      module = new WebAssembly.Module(loadable);
    } catch (err) {
      throw new LoadError(`${label}: does not compile: ${(err as Error).message}`);
    }
  }
  return { label, bytes, module, info, grant, limits: full };
}
