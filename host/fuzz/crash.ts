// What a crash is to the fuzzer: a fault kind and the site it happened at, the key it is deduplicated by.

import { classify, type FaultKind, LoadError, type MemoryUse, wasmStack } from '../faults.ts';
import { GROW_NAME } from '../sandbox/memory-grow.ts';

export type CrashKind = FaultKind | 'load-refused';

export interface Crash {
  kind: CrashKind;
  /** Function and code offset (in the instrumented module) of the innermost driver frame. */
  location: string;
  message: string;
}

/**
 * Where an error was thrown: the innermost driver frame, "function offset" (or "host"). A refused
 * memory.grow traps in the host's checked grow (sandbox/memory-grow.ts): its caller is the site.
 */
export function stackLocation(err: unknown): string {
  const frames = wasmStack(err);
  const frame = (frames[0]?.startsWith(GROW_NAME) ? frames[1] : frames[0]) ?? 'host';
  return frame.replace(/\(wasm:\/\/wasm\/[0-9a-f]+:/, '(').replace(/^(\S+) \((.*)\)$/, '$1 $2');
}

/**
 * The crash an execution's error is: a refused load, a hang (`hangSite`: the loop that ran out of
 * `fuel`), or a fault, classified as the sandbox does.
 */
export function crashOf(err: unknown, hangSite: string | undefined, fuel: number, memoryUse?: MemoryUse): Crash {
  if (err instanceof LoadError) return { kind: 'load-refused', location: 'load', message: err.message };
  if (hangSite !== undefined)
    return {
      kind: 'deadline',
      location: hangSite,
      message: `ran out of fuel (${fuel} loop iterations in one call): a hang`,
    };
  const { kind, message } = classify(err, memoryUse);
  return { kind, location: stackLocation(err), message };
}

export function crashKey(c: Crash): string {
  return `${c.kind}@${c.location}`;
}
