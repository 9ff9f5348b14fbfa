// The wasmdrv driver SDK (ABI v1, see wit/wasmdrv-driver.wit).
//
// Drivers use the checked helpers here; the raw imports in abi.ts are unchecked on the driver side
// (the host still checks every access, but a driver should never need them directly).
//
// Every driver's entry file re-exports the ABI plumbing:
//   export { wasmdrv_abi_version, io_buffer, io_buffer_size, dma_area, dma_area_size } from "../sdk";
// and defines probe, remove, interrupt and request (and optionally reset, state_save, state_restore).

import * as abi from "./abi";

// ---------------------------------------------------------------------------------------------------
// ABI plumbing
// ---------------------------------------------------------------------------------------------------

/** The ABI version this SDK implements. */
export const wasmdrv_abi_version: i32 = 1;

/** Capacity of the request/response/state buffer. */
export const IO_BUFFER_SIZE: u32 = 8192;
const IO: usize = memory.data(<i32>IO_BUFFER_SIZE, 16);

/** Size of the area the host may map DMA windows into (a multiple of 4096). */
export const DMA_AREA_SIZE: u32 = 65536;
const DMA_AREA: usize = memory.data(<i32>DMA_AREA_SIZE, 4096);

export function io_buffer(): usize { return IO; }
export function io_buffer_size(): u32 { return IO_BUFFER_SIZE; }
export function dma_area(): usize { return DMA_AREA; }
export function dma_area_size(): u32 { return DMA_AREA_SIZE; }

/** AssemblyScript's abort, routed to the host as a `panic` fault (asconfig: --use abort=...). */
export function sdkAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let text = message !== null ? message : "abort";
  if (fileName !== null) text += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  fail(text);
}

/** Give up: the host stops this driver with a `panic` fault carrying `msg`. Never returns. */
export function fail(msg: string): void {
  const bytes = String.UTF8.encode(msg);
  abi.panic(changetype<usize>(bytes), <usize>bytes.byteLength);
  unreachable();
}

// ---------------------------------------------------------------------------------------------------
// Logging and time
// ---------------------------------------------------------------------------------------------------

function logAt(level: i32, msg: string): void {
  const bytes = String.UTF8.encode(msg);
  abi.log(level, changetype<usize>(bytes), <usize>bytes.byteLength);
}
export function logDebug(msg: string): void { logAt(0, msg); }
export function logInfo(msg: string): void { logAt(1, msg); }
export function logWarn(msg: string): void { logAt(2, msg); }
export function logError(msg: string): void { logAt(3, msg); }

/** Monotonic time in nanoseconds (virtual under the fuzzer). */
export function nowNs(): u64 { return abi.clock_ns(); }

/** Sleep up to `us` microseconds; false when the host cancelled the sleep (return from the handler). */
export function sleepUs(us: u32): bool { return abi.sleep_us(us) == 0; }

/** Format a u32 as 0x-prefixed hex, for log messages. */
export function hex(v: u64): string { return "0x" + v.toString(16); }

// ---------------------------------------------------------------------------------------------------
// Registers
// ---------------------------------------------------------------------------------------------------

/**
 * A memory-mapped register region (BAR). Offsets are bytes; every access is checked by the host.
 * Unmanaged (not traced by the collector): a driver's register accesses carry no GC bookkeeping.
 */
@unmanaged
export class Region {
  constructor(public readonly index: i32) {}

  /** Size of the region in bytes. */
  get size(): u32 { return <u32>abi.region_size(this.index); }

  // Inlined: a register access in a driver is the import call and nothing else (no wrapper function,
  // no shadow-stack traffic for `this`).
  @inline read8(offset: u32): u8 { return <u8>abi.reg_read8(this.index, offset); }
  @inline read16(offset: u32): u16 { return <u16>abi.reg_read16(this.index, offset); }
  @inline read32(offset: u32): u32 { return abi.reg_read32(this.index, offset); }
  @inline read64(offset: u32): u64 { return abi.reg_read64(this.index, offset); }
  @inline write8(offset: u32, value: u8): void { abi.reg_write8(this.index, offset, value); }
  @inline write16(offset: u32, value: u16): void { abi.reg_write16(this.index, offset, value); }
  @inline write32(offset: u32, value: u32): void { abi.reg_write32(this.index, offset, value); }
  @inline write64(offset: u32, value: u64): void { abi.reg_write64(this.index, offset, value); }

  /** Read-modify-write: set `bits`. */
  setBits32(offset: u32, bits: u32): void { this.write32(offset, this.read32(offset) | bits); }
  /** Read-modify-write: clear `bits`. */
  clearBits32(offset: u32, bits: u32): void { this.write32(offset, this.read32(offset) & ~bits); }

  /**
   * Poll until (read32(offset) & mask) == expected, at most `timeoutUs` microseconds.
   * Returns true when the condition held, false on timeout (there is no wait without a timeout).
   */
  waitBits32(offset: u32, mask: u32, expected: u32, timeoutUs: u32): bool {
    const deadline = nowNs() + <u64>timeoutUs * 1000;
    while ((this.read32(offset) & mask) != expected) {
      if (nowNs() >= deadline) return (this.read32(offset) & mask) == expected;
    }
    return true;
  }
}

/** An x86 port range (a 16550 UART, for instance). Offsets are relative to the range's base. */
export class Ports {
  constructor(public readonly index: i32) {}
  get size(): u32 { return <u32>abi.port_size(this.index); }
  in8(offset: u32): u8 { return <u8>abi.io_in8(this.index, offset); }
  in16(offset: u32): u16 { return <u16>abi.io_in16(this.index, offset); }
  in32(offset: u32): u32 { return abi.io_in32(this.index, offset); }
  out8(offset: u32, value: u8): void { abi.io_out8(this.index, offset, value); }
  out16(offset: u32, value: u16): void { abi.io_out16(this.index, offset, value); }
  out32(offset: u32, value: u32): void { abi.io_out32(this.index, offset, value); }

  /** Poll until (in8(offset) & mask) == expected, at most `timeoutUs`. False on timeout. */
  waitBits8(offset: u32, mask: u8, expected: u8, timeoutUs: u32): bool {
    const deadline = nowNs() + <u64>timeoutUs * 1000;
    while ((this.in8(offset) & mask) != expected) {
      if (nowNs() >= deadline) return (this.in8(offset) & mask) == expected;
    }
    return true;
  }
}

export function regionCount(): i32 { return abi.region_count(); }
export function portCount(): i32 { return abi.port_count(); }

// ---------------------------------------------------------------------------------------------------
// Interrupts
// ---------------------------------------------------------------------------------------------------

export const WAIT_INTERRUPT: i32 = 1;
export const WAIT_TIMEOUT: i32 = 0;
export const WAIT_CANCELLED: i32 = -1;

export namespace irq {
  /** Wait for the count to advance: WAIT_INTERRUPT, WAIT_TIMEOUT or WAIT_CANCELLED. */
  export function wait(timeoutUs: u32): i32 { return abi.irq_wait(timeoutUs); }
  /** The cumulative interrupt count last observed by the host. */
  export function count(): u32 { return abi.irq_count(); }
  export function enable(): void { abi.irq_enable(); }
  export function disable(): void { abi.irq_disable(); }
}

// ---------------------------------------------------------------------------------------------------
// DMA windows
// ---------------------------------------------------------------------------------------------------

/** A DMA window: `addr` in this driver's memory, `bus` as the device sees it. */
export class DmaWindow {
  constructor(public readonly addr: usize, public readonly size: u32, public readonly bus: u64) {}

  static count(): i32 { return abi.dma_window_count(); }
  static get(index: i32): DmaWindow {
    return new DmaWindow(abi.dma_window_addr(index), abi.dma_window_size(index), abi.dma_window_bus(index));
  }

  /** Bus address of byte `offset` of the window; panics when outside it. */
  busAt(offset: u32): u64 {
    if (offset > this.size) fail("DMA offset outside the window");
    return this.bus + <u64>offset;
  }
}

// ---------------------------------------------------------------------------------------------------
// Requests and state: little-endian fields in the io buffer
// ---------------------------------------------------------------------------------------------------

/** Reads request arguments from the io buffer; an argument past the request's length reads as 0. */
export class Args {
  constructor(public readonly len: u32) {}
  u32(index: u32): u32 {
    const at = index * 4;
    return at + 4 <= this.len ? load<u32>(IO + at) : 0;
  }
  u64At(byteOffset: u32): u64 {
    return byteOffset + 8 <= this.len ? load<u64>(IO + byteOffset) : 0;
  }
  /** Address of input byte `byteOffset` in the io buffer. */
  ptr(byteOffset: u32): usize { return IO + byteOffset; }
}

/** Writes a response (or a saved state) into the io buffer; returns its length from end(). */
export class Out {
  private at: u32 = 0;
  u32(v: u32): Out { store<u32>(IO + this.at, v); this.at += 4; return this; }
  u64(v: u64): Out { store<u64>(IO + this.at, v); this.at += 8; return this; }
  bytes(src: usize, len: u32): Out {
    if (this.at + len > IO_BUFFER_SIZE) fail("response larger than the io buffer");
    memory.copy(IO + this.at, src, len);
    this.at += len;
    return this;
  }
  end(): i32 { return <i32>this.at; }
}

/** Reads fields back from a saved state in the io buffer. */
export class StateReader {
  private at: u32 = 0;
  constructor(public readonly len: u32) {}
  get remaining(): u32 { return this.len - this.at; }
  u32(): u32 { if (this.at + 4 > this.len) return 0; const v = load<u32>(IO + this.at); this.at += 4; return v; }
  u64(): u64 { if (this.at + 8 > this.len) return 0; const v = load<u64>(IO + this.at); this.at += 8; return v; }
}
