// Driver for a 16550A UART on an 8-port I/O range (PC16550D datasheet, section 8 "Registers").
//
// Receive is interrupt-driven: the kernel stub masks the UART (IER = 0) in its handler; `interrupt`
// drains the receive FIFO into a ring in the driver and re-enables IER. Transmit polls LSR.THRE with
// a timeout per byte.
//
// Requests:
//   OP_WRITE  (bytes...)             → u32 bytes written
//   OP_READ   (u32 max, u32 waitMs)  → up to `max` received bytes; waits up to waitMs for the first
//   OP_STATS  ()                     → u32 interrupts, u32 received, u32 transmitted, u32 overruns

import { Ports, Args, Out, StateReader, irq, logInfo, logError, WAIT_INTERRUPT, WAIT_CANCELLED } from "../sdk";
export { wasmdrv_abi_version, io_buffer, io_buffer_size, dma_area, dma_area_size } from "../sdk";

// --- PC16550D section 8.1: register offsets (DLAB = LCR bit 7) ---------------------------------------
const RBR: u32 = 0; // receiver buffer (read, DLAB 0)
const THR: u32 = 0; // transmitter holding (write, DLAB 0)
const DLL: u32 = 0; // divisor latch LSB (DLAB 1)
const IER: u32 = 1; // interrupt enable (DLAB 0)
const DLM: u32 = 1; // divisor latch MSB (DLAB 1)
const IIR: u32 = 2; // interrupt identification (read)
const FCR: u32 = 2; // FIFO control (write)
const LCR: u32 = 3; // line control
const MCR: u32 = 4; // modem control
const LSR: u32 = 5; // line status
const SCR: u32 = 7; // scratch

const IER_RDA: u8 = 0x01;         // 8.6.4: received data available interrupt
const IIR_NO_INTERRUPT: u8 = 0x01;
const FCR_ENABLE_CLEAR: u8 = 0x07; // enable FIFOs, clear RX and TX FIFOs, trigger level 1
const LCR_8N1: u8 = 0x03;
const LCR_DLAB: u8 = 0x80;
const MCR_DTR_RTS_OUT2: u8 = 0x0b; // OUT2 gates the interrupt line on PC hardware
const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
const LSR_THRE: u8 = 0x20;
const DIVISOR_115200: u8 = 1;      // 1.8432 MHz / (16 × 115200)

const TX_TIMEOUT_US: u32 = 100_000;

const OP_WRITE: u32 = 1;
const OP_READ: u32 = 2;
const OP_STATS: u32 = 3;
const STATE_VERSION: u32 = 1;

const uart = new Ports(0);

// Received bytes wait here until a read request takes them.
const RX_SIZE: u32 = 4096;
const rx = new StaticArray<u8>(RX_SIZE);
let rxHead: u32 = 0;
let rxCount: u32 = 0;
let interrupts: u32 = 0;
let received: u32 = 0;
let transmitted: u32 = 0;
let overruns: u32 = 0;

function drainReceiver(): void {
  for (let guard = 0; guard < 256; guard++) {
    const lsr = uart.in8(LSR);
    if (lsr & LSR_OE) overruns++;
    if (!(lsr & LSR_DR)) break;
    const b = uart.in8(RBR);
    received++;
    if (rxCount == RX_SIZE) { overruns++; continue; }
    rx[(rxHead + rxCount) % RX_SIZE] = b;
    rxCount++;
  }
}

function service(): void {
  interrupts++;
  // Read IIR until nothing is pending; receive is the only source we enable.
  for (let guard = 0; guard < 16; guard++) {
    if (uart.in8(IIR) & IIR_NO_INTERRUPT) break;
    drainReceiver();
  }
  drainReceiver();
  uart.out8(IER, IER_RDA); // the stub masked the UART; service done, unmask
}

export function probe(): i32 {
  uart.out8(SCR, 0x5a);
  if (uart.in8(SCR) != 0x5a) {
    logError("uart16550: scratch register does not hold a value: no UART here");
    return -1;
  }
  uart.out8(IER, 0);
  uart.out8(LCR, LCR_DLAB);
  uart.out8(DLL, DIVISOR_115200);
  uart.out8(DLM, 0);
  uart.out8(LCR, LCR_8N1);
  uart.out8(FCR, FCR_ENABLE_CLEAR);
  uart.out8(MCR, MCR_DTR_RTS_OUT2);
  drainReceiver();
  uart.out8(IER, IER_RDA);
  logInfo("uart16550: 115200 8N1, FIFOs on, receive interrupts on");
  return 0;
}

export function remove(): void {
  uart.out8(IER, 0);
  uart.out8(MCR, 0);
}

export function reset(): void {
  uart.out8(IER, 0);
  uart.out8(FCR, FCR_ENABLE_CLEAR);
}

export function interrupt(count: u32): void {
  service();
}

function writeBytes(args: Args): i32 {
  let n: u32 = 0;
  for (; n < args.len; n++) {
    if (!uart.waitBits8(LSR, LSR_THRE, LSR_THRE, TX_TIMEOUT_US)) break;
    uart.out8(THR, load<u8>(args.ptr(n)));
    transmitted++;
  }
  return new Out().u32(n).end();
}

function readBytes(args: Args): i32 {
  const max = args.u32(0) != 0 ? args.u32(0) : RX_SIZE;
  const waitUs = args.u32(1) * 1000;
  if (rxCount == 0 && waitUs > 0) {
    const r = irq.wait(waitUs);
    if (r == WAIT_CANCELLED) return -3;
    if (r == WAIT_INTERRUPT) service();
  }
  const n = min(max, rxCount);
  const out = new Out();
  for (let i: u32 = 0; i < n; i++) {
    out.bytes(changetype<usize>(rx) + rxHead, 1);
    rxHead = (rxHead + 1) % RX_SIZE;
  }
  rxCount -= n;
  return out.end();
}

export function request(op: u32, len: u32): i32 {
  const args = new Args(len);
  if (op == OP_WRITE) return writeBytes(args);
  if (op == OP_READ) return readBytes(args);
  if (op == OP_STATS) return new Out().u32(interrupts).u32(received).u32(transmitted).u32(overruns).end();
  return -1;
}

export function state_save(): i32 {
  return new Out().u32(STATE_VERSION).u32(interrupts).u32(received).u32(transmitted).u32(overruns).end();
}

export function state_restore(len: u32): i32 {
  const s = new StateReader(len);
  if (s.u32() != STATE_VERSION) return -1;
  interrupts = s.u32();
  received = s.u32();
  transmitted = s.u32();
  overruns = s.u32();
  return probe();
}
