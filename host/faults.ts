// Faults: the closed set of ways a driver can fail, with fixed names. The supervisor decides from the
// kind, never from message text.

export const FAULT_KINDS = [
  /** Wasm `unreachable` executed (also AssemblyScript's own assertion failures). */
  'unreachable',
  /** A load or store outside the driver's linear memory. */
  'memory-out-of-bounds',
  /** The driver's call stack overflowed. */
  'stack-overflow',
  /** Integer division (or remainder) by zero. */
  'divide-by-zero',
  /** Any other Wasm trap (integer overflow, bad conversion, bad indirect call). */
  'trap',
  /** The driver gave up: the SDK's fail()/abort reported through `panic`. */
  'panic',
  /** A memory.grow past the driver's memory limit (the checked grow: sandbox/memory-grow.ts). */
  'memory-limit',
  /** A register or port access named a region the driver was not granted. */
  'bad-region',
  /** offset + width beyond the region's size. */
  'register-out-of-bounds',
  /** An offset not naturally aligned for its width. */
  'register-misaligned',
  /** The grant does not allow this access (read-only region, write policy). */
  'access-denied',
  /** A DMA address register was given an address outside the granted DMA window. */
  'dma-firewall',
  /** Descriptor firewall: a descriptor's buffer (or the shadow ring) lies outside every granted DMA window. */
  'dma-descriptor-outside-grant',
  /** Descriptor firewall: a tail beyond the ring, one that would wrap onto device-owned descriptors, or a head write. */
  'dma-descriptor-bad-index',
  /** Descriptor firewall: a ring length the manifest does not allow. */
  'dma-descriptor-bad-ring',
  /** Descriptor firewall: a descriptor sets command bits the manifest refuses (e.g. the e1000's DEXT). */
  'dma-descriptor-bad-command',
  /** Descriptor firewall: the DEVICE's head register lies (outside the ring, or back past the last sync / beyond the tail). */
  'device-bad-head',
  /** Descriptor firewall: the DEVICE did not finish a reset of its ring registers, or did not take the rings the host programmed after it. */
  'device-bad-reset',
  /** The driver broke the ABI contract (bad response length, bad log pointer, bad DMA area). */
  'abi-violation',
  /** A probe, request or interrupt handler overran its deadline. */
  'deadline',
  /** The driver logged faster than its rate limit. */
  'log-flood',
  /** Interrupts arrived faster than the limit: the line was masked. */
  'irq-storm',
  /** The IOMMU blocked a DMA by the device (VFIO): the driver programmed a bus address outside its windows. */
  'iommu-fault',
  /** The operator killed the driver (Driver.kill; SIGUSR1 to `wasmdrv net up`): restarted as after a crash. */
  'killed',
  /** Host code failed while acting for the driver: not the driver's fault. */
  'host-error',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export interface RecorderEntry {
  seq: number;
  op: 'read' | 'write' | 'in' | 'out' | 'irq' | 'request' | 'interrupt' | 'fault';
  region: number;
  offset: number;
  width: number;
  value: bigint;
}

export interface Fault {
  driver: string;
  kind: FaultKind;
  message: string;
  /** What the driver was doing: 'load', 'probe', 'request', 'interrupt', 'reset', 'restore', 'remove'. */
  phase: string;
  /** Wasm frames, innermost first, with function names when the module has a name section. */
  stack: string[];
  /** The last register accesses and interrupt events, oldest first. */
  recorder: RecorderEntry[];
  time: number;
}

/** Thrown by checked imports; carries its kind through the Wasm frames to the caller. */
export class FaultError extends Error {
  constructor(
    readonly kind: FaultKind,
    message: string,
  ) {
    super(message);
    this.name = 'FaultError';
  }
}

/** Raised when a driver cannot be loaded at all (bad binary, bad import, bad export). Not a fault. */
export class LoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoadError';
  }
}

/** A request that could not be served; `code` says why. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly code:
      | 'driver-error'
      | 'driver-faulted'
      | 'driver-restarted'
      | 'driver-failed'
      | 'driver-stopped'
      | 'too-large'
      | 'payload-too-large',
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

/** How full the driver's linear memory is, and the pages of a memory.grow the host refused (memory-grow.ts). */
export interface MemoryUse {
  bytes: number;
  maxBytes: number;
  /** Set (non-zero) by the checked memory.grow just before it traps: the pages asked for. */
  refusedPages?: number;
}

/** The memory-limit fault of a refused memory.grow: the pages asked for, the memory's size and its limit. */
export function memoryLimitMessage(m: MemoryUse & { refusedPages: number }): string {
  return `memory.grow of ${m.refusedPages} pages (${m.refusedPages * 65536} bytes) refused: memory is ${m.bytes} bytes, its limit ${m.maxBytes} bytes`;
}

/**
 * Classify an error thrown out of a call into the driver. `memory` is the instance's memory use: a
 * trap after the checked memory.grow (sandbox/memory-grow.ts) refused to grow is `memory-limit`.
 */
export function classify(err: unknown, memory?: MemoryUse): { kind: FaultKind; message: string } {
  if (err instanceof FaultError) return { kind: err.kind, message: err.message };
  if (err instanceof WebAssembly.RuntimeError) {
    const m = err.message;
    if (memory?.refusedPages && /unreachable/.test(m))
      return { kind: 'memory-limit', message: memoryLimitMessage({ ...memory, refusedPages: memory.refusedPages }) };
    if (/unreachable/.test(m)) return { kind: 'unreachable', message: m };
    if (/memory access out of bounds/.test(m)) return { kind: 'memory-out-of-bounds', message: m };
    if (/divide by zero|remainder by zero/.test(m)) return { kind: 'divide-by-zero', message: m };
    return { kind: 'trap', message: m };
  }
  if (err instanceof RangeError && /call stack/i.test(err.message)) {
    return { kind: 'stack-overflow', message: err.message };
  }
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return { kind: 'host-error', message };
}

/** Wasm frames from an error's stack text: "func (wasm://wasm/<hash>:wasm-function[3]:0x1a2)". */
export function wasmStack(err: unknown): string[] {
  const text = err instanceof Error ? (err.stack ?? '') : '';
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.includes('wasm://') || l.includes('wasm-function'))
    .map((l) => l.replace(/^at /, ''));
}
