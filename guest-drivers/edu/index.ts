// Driver for QEMU's "edu" educational PCI device (1234:11e8), following QEMU's docs/specs/edu.rst.
//
// BAR0 (1 MiB) registers, all 32-bit below 0x80; the DMA registers take 32- or 64-bit accesses.
// Interrupts: the kernel stub acknowledges edu in its handler (status 0x24 written back to 0x64);
// under uio_pci_generic nobody does, so `interrupt` acknowledges whatever status is still set.
//
// Requests (op, little-endian u32 arguments → response):
//   OP_IDENTIFY   ()                      → id, liveness check result (1 ok)
//   OP_FACTORIAL  (n)                     → n! (32-bit, as the device computes it), via the interrupt path
//   OP_RAISE      (count, value)          → interrupts observed for `count` raises of `value`
//   OP_DMA        (bytes...)              → the same bytes after window → device buffer → window
//   OP_LIVENESS   (v)                     → ~v as the device returns it
//   OP_STATS      ()                      → interrupts seen, factorials computed, DMA transfers

import {
  Region, DmaWindow, Args, Out, StateReader, irq, logInfo, logWarn, logError, hex,
  WAIT_INTERRUPT, WAIT_CANCELLED,
} from "../sdk";
export { wasmdrv_abi_version, io_buffer, io_buffer_size, dma_area, dma_area_size } from "../sdk";

// --- edu.rst: register map (BAR0) -----------------------------------------------------------------
const REG_ID: u32 = 0x00;          // RO: 0xRRrr00edu, major.minor version and 0xed
const REG_LIVENESS: u32 = 0x04;    // RW: reads back the bitwise inverse of what was written
const REG_FACTORIAL: u32 = 0x08;   // RW: write n to start, read n! when STATUS_COMPUTING clears
const REG_STATUS: u32 = 0x20;      // RW: bit 0 computing (RO), bit 7 raise interrupt after factorial
const REG_IRQ_STATUS: u32 = 0x24;  // RO: pending interrupt bits
const REG_IRQ_RAISE: u32 = 0x60;   // WO: raise interrupt bits (status |= value)
const REG_IRQ_ACK: u32 = 0x64;     // WO: acknowledge interrupt bits (status &= ~value)
const REG_DMA_SRC: u32 = 0x80;     // RW 64: DMA source address
const REG_DMA_DST: u32 = 0x88;     // RW 64: DMA destination address
const REG_DMA_COUNT: u32 = 0x90;   // RW 64: DMA transfer count in bytes
const REG_DMA_CMD: u32 = 0x98;     // RW 64: DMA command

const STATUS_COMPUTING: u32 = 0x01;
const STATUS_IRQ_FACT: u32 = 0x80;

const IRQ_FACT: u32 = 0x00000001;  // the factorial finished
const IRQ_DMA: u32 = 0x00000100;   // a DMA transfer finished

const DMA_CMD_START: u64 = 0x1;
const DMA_CMD_TO_RAM: u64 = 0x2;   // direction: device buffer → RAM (clear: RAM → device buffer)
const DMA_CMD_IRQ: u64 = 0x4;      // raise IRQ_DMA when done

const DEVICE_BUFFER: u64 = 0x40000; // the device's 4 KiB DMA buffer, in its own address space
const DEVICE_BUFFER_SIZE: u32 = 4096;

const ID_MAGIC_MASK: u32 = 0x000000ff;
const ID_MAGIC: u32 = 0xed;

// Timeouts. The factorial takes microseconds; QEMU completes a DMA 100 ms after it starts.
const FACTORIAL_TIMEOUT_US: u32 = 1_000_000;
const DMA_TIMEOUT_US: u32 = 2_000_000;
const RAISE_TIMEOUT_US: u32 = 1_000_000;

// --- requests ----------------------------------------------------------------------------------------
const OP_IDENTIFY: u32 = 1;
const OP_FACTORIAL: u32 = 2;
const OP_RAISE: u32 = 3;
const OP_DMA: u32 = 4;
const OP_LIVENESS: u32 = 5;
const OP_STATS: u32 = 6;

const ERR_UNKNOWN_OP: i32 = -1;
const ERR_TIMEOUT: i32 = -2;
const ERR_CANCELLED: i32 = -3;
const ERR_TOO_LARGE: i32 = -4;
const ERR_NO_DMA: i32 = -5;

const STATE_VERSION: u32 = 1;

const bar0 = new Region(0);

let deviceId: u32 = 0;
let interruptsSeen: u32 = 0;
let factorialsDone: u32 = 0;
let dmaTransfers: u32 = 0;

// --- interrupt helpers -------------------------------------------------------------------------------

/** Acknowledge what is pending (needed under uio_pci_generic; a no-op after the kernel stub acked). */
function ackPending(): u32 {
  const pending = bar0.read32(REG_IRQ_STATUS);
  if (pending != 0) bar0.write32(REG_IRQ_ACK, pending);
  return pending;
}

/** Wait for one interrupt inside a handler. Returns 0, ERR_TIMEOUT or ERR_CANCELLED. */
function waitInterrupt(timeoutUs: u32): i32 {
  const r = irq.wait(timeoutUs);
  if (r == WAIT_CANCELLED) return ERR_CANCELLED;
  if (r != WAIT_INTERRUPT) return ERR_TIMEOUT;
  interruptsSeen++;
  ackPending();
  return 0;
}

// --- operations ---------------------------------------------------------------------------------------

function livenessOk(): bool {
  const pattern: u32 = 0x5a5aa5a5;
  bar0.write32(REG_LIVENESS, pattern);
  return bar0.read32(REG_LIVENESS) == ~pattern;
}

/** n! through the interrupt path: arm "raise interrupt after factorial", start, wait, read. */
function factorial(n: u32): i64 {
  bar0.setBits32(REG_STATUS, STATUS_IRQ_FACT);
  bar0.write32(REG_FACTORIAL, n);
  const r = waitInterrupt(FACTORIAL_TIMEOUT_US);
  if (r < 0) return r;
  // The interrupt means the computation finished; the status bit must agree.
  if (!bar0.waitBits32(REG_STATUS, STATUS_COMPUTING, 0, FACTORIAL_TIMEOUT_US)) return ERR_TIMEOUT;
  factorialsDone++;
  return <i64>bar0.read32(REG_FACTORIAL);
}

/** Raise `count` interrupts with `value` and count how many the host delivered to us. */
function raise(count: u32, value: u32): i32 {
  let seen: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    bar0.write32(REG_IRQ_RAISE, value);
    const r = waitInterrupt(RAISE_TIMEOUT_US);
    if (r == ERR_CANCELLED) return r;
    if (r == 0) seen++;
  }
  return <i32>seen;
}

/** One DMA transfer between the window (bus address `ram`) and the device buffer; waits for IRQ_DMA. */
function dmaTransfer(ram: u64, device: u64, len: u32, toRam: bool): i32 {
  bar0.write64(REG_DMA_SRC, toRam ? device : ram);
  bar0.write64(REG_DMA_DST, toRam ? ram : device);
  bar0.write64(REG_DMA_COUNT, <u64>len);
  bar0.write64(REG_DMA_CMD, DMA_CMD_START | DMA_CMD_IRQ | (toRam ? DMA_CMD_TO_RAM : 0));
  const r = waitInterrupt(DMA_TIMEOUT_US);
  if (r < 0) return r;
  if ((bar0.read64(REG_DMA_CMD) & DMA_CMD_START) != 0) return ERR_TIMEOUT;
  dmaTransfers++;
  return 0;
}

/**
 * Host → device → host: copy the input into the window, DMA it into the device buffer, wipe the
 * window, DMA it back into the second half of the window, and answer with what came back.
 */
function dmaRoundTrip(args: Args): i32 {
  if (DmaWindow.count() < 1) return ERR_NO_DMA;
  const w = DmaWindow.get(0);
  const len = args.len;
  if (len == 0) return 0; // nothing to move (QEMU 7.2's edu takes a DMA count of 0 as a hardware error)
  if (len > DEVICE_BUFFER_SIZE || len * 2 > w.size) return ERR_TOO_LARGE;
  memory.copy(w.addr, args.ptr(0), len);
  let r = dmaTransfer(w.busAt(0), DEVICE_BUFFER, len, false);
  if (r < 0) return r;
  memory.fill(w.addr, 0, w.size);
  r = dmaTransfer(w.busAt(len), DEVICE_BUFFER, len, true);
  if (r < 0) return r;
  return new Out().bytes(w.addr + len, len).end();
}

// --- the ABI exports -------------------------------------------------------------------------------------

export function probe(): i32 {
  deviceId = bar0.read32(REG_ID);
  if ((deviceId & ID_MAGIC_MASK) != ID_MAGIC) {
    logError("edu: unexpected id " + hex(deviceId) + " (want 0x..ed)");
    return -1;
  }
  if (!livenessOk()) {
    logError("edu: liveness check failed");
    return -2;
  }
  ackPending();
  logInfo("edu: found device id " + hex(deviceId) + " (version " + (deviceId >> 24).toString() + "." +
    ((deviceId >> 16) & 0xff).toString() + "), liveness ok");
  return 0;
}

export function remove(): void {
  bar0.clearBits32(REG_STATUS, STATUS_IRQ_FACT);
  ackPending();
}

export function reset(): void {
  // edu has no reset register: quiesce what a previous instance may have left running.
  bar0.clearBits32(REG_STATUS, STATUS_IRQ_FACT);
  bar0.waitBits32(REG_STATUS, STATUS_COMPUTING, 0, FACTORIAL_TIMEOUT_US);
  ackPending();
}

export function interrupt(count: u32): void {
  interruptsSeen++;
  const pending = ackPending();
  if ((pending & ~(IRQ_FACT | IRQ_DMA)) != 0) logInfo("edu: interrupt " + count.toString() + " status " + hex(pending));
}

export function request(op: u32, len: u32): i32 {
  const args = new Args(len);
  if (op == OP_IDENTIFY) {
    return new Out().u32(bar0.read32(REG_ID)).u32(livenessOk() ? 1 : 0).end();
  }
  if (op == OP_FACTORIAL) {
    const v = factorial(args.u32(0));
    if (v < 0) return <i32>v;
    return new Out().u32(<u32>v).end();
  }
  if (op == OP_RAISE) {
    const r = raise(args.u32(0), args.u32(1) != 0 ? args.u32(1) : 0x1000);
    if (r < 0) return r;
    return new Out().u32(<u32>r).end();
  }
  if (op == OP_DMA) return dmaRoundTrip(args);
  if (op == OP_LIVENESS) {
    bar0.write32(REG_LIVENESS, args.u32(0));
    return new Out().u32(bar0.read32(REG_LIVENESS)).end();
  }
  if (op == OP_STATS) return new Out().u32(interruptsSeen).u32(factorialsDone).u32(dmaTransfers).end();
  logWarn("edu: unknown request op " + op.toString());
  return ERR_UNKNOWN_OP;
}

// --- hot reload: versioned state --------------------------------------------------------------------------

export function state_save(): i32 {
  return new Out().u32(STATE_VERSION).u32(deviceId).u32(interruptsSeen).u32(factorialsDone).u32(dmaTransfers).end();
}

export function state_restore(len: u32): i32 {
  const s = new StateReader(len);
  if (s.u32() != STATE_VERSION || len < 20) return -1;
  deviceId = s.u32();
  interruptsSeen = s.u32();
  factorialsDone = s.u32();
  dmaTransfers = s.u32();
  return 0;
}
