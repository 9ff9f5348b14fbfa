// Simulated devices: the contract between a device model and the sandbox.
//
// A model follows QEMU's edu.c: one state object, read(offset, width) / write(offset, width, value),
// bit constants beside their fields, a bad access logged as a guest error and answered with all-ones.
// The access widths each region takes are data in its description (`valid`, as QEMU's
// MemoryRegionOps.valid), checked once before the model is called (host/sim/access.ts).
//
// A model's state lives in a SharedArrayBuffer so that the device outlives the driver: when the
// supervisor kills a hung driver's worker and starts a new one, the new worker builds a fresh model
// object over the same state, as a real device keeps its registers across a driver restart. Models
// run in the thread of the driver that touches them (like a QEMU vCPU thread running MMIO callbacks);
// deferred work (a computation, a DMA) is scheduled in device time and run by tick().

export type Width = 1 | 2 | 4 | 8;

/**
 * Which accesses a register file or port range accepts, as QEMU's `MemoryRegionOps.valid`: widths
 * from `min` to `max` bytes, naturally aligned unless `unaligned`, over offsets `from` (default 0) up
 * to `to` (default: the end). A region lists its rules, the first that covers an offset decides; an
 * offset no rule covers takes no access. The one check is host/sim/access.ts: a refused access is a
 * guest error answered with all-ones (a read) or dropped (a write), and never reaches the model.
 */
export interface AccessRule {
  min: Width;
  max: Width;
  unaligned?: boolean;
  from?: number;
  to?: number;
}

export interface SimRegion {
  name: string;
  size: number;
  /** Plain memory (a memfd the model never sees) rather than a register file served by read/write. */
  memory?: boolean;
  /** The accesses the model serves (for plain memory: what the mapping takes, never checked here). */
  valid: AccessRule[];
}

/** A port range: a region with a nominal first port (simulated ports are never real I/O ports). */
export interface SimPortRange extends SimRegion {
  base: number;
}

export interface SimDmaWindow {
  name: string;
  size: number;
  /** The bus address the device uses for byte 0 of the window. */
  bus: bigint;
}

/**
 * How the simulated interrupt reaches the event count, mirroring the two real kernel paths:
 *  - 'ack': the kernel stub's ritual: on a rising line, read `status` (region, offset); if non-zero,
 *    write it to `ack` and count one event. The driver never has to acknowledge.
 *  - 'mask': uio_pci_generic's: on a rising line (or on re-arm while the line is still high) count one
 *    event and mask the line until the host re-arms it. The driver must clear the device's cause.
 */
export type SimIrqMode =
  | { mode: 'ack'; region: number; status: number; ack: number }
  | { mode: 'mask' }
  /** The stub's ritual is device-specific (a 16550: mask IER): the model's stubAcknowledge() does it. */
  | { mode: 'model' }
  /** A bare eventfd that something outside the driver writes; the count is the sum of what it read. */
  | { mode: 'eventfd' };

export interface SimDescription {
  model: string;
  pci?: { vendor: number; device: number };
  regions: SimRegion[];
  ports: SimPortRange[];
  dma: SimDmaWindow[];
  irq: SimIrqMode | null;
  /** Bytes of model state in the shared state buffer. */
  stateBytes: number;
  /**
   * True when something outside the driver's thread feeds the device (bytes arriving on a UART):
   * the host then gives the device a "kick" eventfd that the feeder writes and the driver's thread
   * polls, so that only the driver's thread ever runs the model.
   */
  external?: boolean;
}

/** What the sandbox gives a model: time, its interrupt line, its DMA windows, a guest-error log. */
export interface SimContext {
  /** Device time in ns (monotonic; virtual under the fuzzer). */
  now(): number;
  /** Drive the interrupt line (level-triggered, like PCI INTx). */
  setIrq(level: boolean): void;
  /**
   * Read `len` bytes at bus address `bus` from the DMA windows; null unless wholly inside one window.
   * `device` is the device-side address of the transfer, for the DMA record (sim/dma-record.ts).
   * Every call is recorded, and its bytes outside the windows counted as outside accesses.
   */
  dmaRead(bus: bigint, len: number, device?: bigint): Uint8Array | null;
  /** Write bytes at bus address `bus` into the DMA windows; false unless wholly inside one window. Recorded likewise. */
  dmaWrite(bus: bigint, data: Uint8Array, device?: bigint): boolean;
  /** Report a guest error (QEMU's LOG_GUEST_ERROR): the driver did something the device rejects. */
  guestError(message: string): void;
}

/** read/write/portIn/portOut see only the accesses their region's `valid` rules allow (host/sim/access.ts). */
export interface SimModel {
  read(region: number, offset: number, width: Width): number | bigint;
  write(region: number, offset: number, width: Width, value: number | bigint): void;
  portIn?(port: number, offset: number, width: 1 | 2 | 4): number;
  portOut?(port: number, offset: number, width: 1 | 2 | 4, value: number): void;
  /** Run the deferred work due at `now`. */
  tick(now: number): void;
  /** Device time of the next deferred work, or Infinity. */
  nextEvent(): number;
  /** Back to power-on state (what a reset sequence or a fresh device gives). */
  reset(): void;
  /** For irq mode 'model': the kernel stub's handler. False when the device did not interrupt. */
  stubAcknowledge?(): boolean;
  /**
   * The level the device drives its line at, from its own state. A session re-reads it when it
   * attaches: a thread killed between a device's state change and its setIrq() leaves the stored
   * line level stale, and a stale high level would swallow the next rising edge.
   */
  irqLevel?(): boolean;
  /**
   * A NIC's received frame as the fuzzer dictates it (host/sim/fuzz.ts): `frame` into the buffer of
   * the descriptor at the device's RX head, and the descriptor written back with `writeback` when
   * given (any length or status: a device that lies), else as the device would; the head stays put
   * when `stay` (the same descriptor marked done again).
   */
  receiveRaw?(frame: Uint8Array, writeback: RawWriteback | undefined, stay: boolean): void;
  /**
   * Nothing runs on its own: tick() does nothing and nextEvent() is always Infinity (the bench device,
   * whose other side is another program). A wait then has no device work to run, and the interrupt
   * wait can be the native one, as for a real device (interrupts.ts).
   */
  readonly passive?: boolean;
}

/** The fields of a receive descriptor a device writes back (receiveRaw). */
export interface RawWriteback {
  length: number;
  status: number;
  errors: number;
}

export interface SimModelClass<O = Record<string, unknown>> {
  readonly name: string;
  readonly summary: string;
  describe(options: O): SimDescription;
  /** Build a model object over `state` (stateBytes bytes, zero on a new device). */
  create(ctx: SimContext, state: SharedArrayBuffer, stateOffset: number, options: O): SimModel;
}

/**
 * Finds a model by name: what a wrapper model (faulty, fuzz) is given to build the model it wraps,
 * so that wrappers need not import the catalogue that lists them (host/sim/registry.ts).
 */
export type ModelLookup = (name: string) => SimModelClass<any>;

export const ALL_ONES: Record<Width, number | bigint> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff, 8: 0xffffffffffffffffn };
