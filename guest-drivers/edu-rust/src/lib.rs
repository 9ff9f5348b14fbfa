//! Driver for QEMU's "edu" educational PCI device (1234:11e8), in Rust against the wasmdrv crate.
//! It answers exactly what the AssemblyScript driver (guest-drivers/edu/index.ts) answers; see that
//! file and QEMU's docs/specs/edu.rst for the register map. Same manifest (guest-drivers/edu/manifest.json).
//!
//! Requests (op, little-endian u32 arguments -> response):
//!   1 identify () -> id, liveness ok     2 factorial (n) -> n!, through the interrupt path
//!   3 raise (count, value) -> seen       4 DMA round trip (bytes...) -> the same bytes
//!   5 liveness (v) -> !v                 6 stats () -> interrupts, factorials, DMA transfers
#![no_std]

use wasmdrv::{irq, wlog, Args, DmaWindow, Out, Region, StateReader};

// edu.rst: register map (BAR0)
const BAR0: Region = Region(0);
const REG_ID: u32 = 0x00; // RO: 0xRRrr00ed
const REG_LIVENESS: u32 = 0x04; // RW: reads back the bitwise inverse
const REG_FACTORIAL: u32 = 0x08; // RW: write n, read n! when STATUS_COMPUTING clears
const REG_STATUS: u32 = 0x20; // RW: bit 0 computing (RO), bit 7 raise interrupt after factorial
const REG_IRQ_STATUS: u32 = 0x24; // RO: pending interrupt bits
const REG_IRQ_RAISE: u32 = 0x60; // WO: status |= value
const REG_IRQ_ACK: u32 = 0x64; // WO: status &= !value
const REG_DMA_SRC: u32 = 0x80; // RW 64
const REG_DMA_DST: u32 = 0x88; // RW 64
const REG_DMA_COUNT: u32 = 0x90; // RW 64
const REG_DMA_CMD: u32 = 0x98; // RW 64

const STATUS_COMPUTING: u32 = 0x01;
const STATUS_IRQ_FACT: u32 = 0x80;
const IRQ_FACT: u32 = 0x0000_0001;
const IRQ_DMA: u32 = 0x0000_0100;
const DMA_CMD_START: u64 = 0x1;
const DMA_CMD_TO_RAM: u64 = 0x2; // device buffer -> RAM (clear: RAM -> device buffer)
const DMA_CMD_IRQ: u64 = 0x4;
const DEVICE_BUFFER: u64 = 0x40000;
const DEVICE_BUFFER_SIZE: u32 = 4096;
const ID_MAGIC_MASK: u32 = 0xff;
const ID_MAGIC: u32 = 0xed;

const FACTORIAL_TIMEOUT_US: u32 = 1_000_000;
const DMA_TIMEOUT_US: u32 = 2_000_000;
const RAISE_TIMEOUT_US: u32 = 1_000_000;

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

/// The driver's state. A driver is single-threaded: the host calls one export at a time.
struct Stats { device_id: u32, interrupts: u32, factorials: u32, dma: u32 }
static mut S: Stats = Stats { device_id: 0, interrupts: 0, factorials: 0, dma: 0 };
fn st() -> &'static mut Stats { unsafe { &mut *core::ptr::addr_of_mut!(S) } }

/// Acknowledge what is pending (needed under uio_pci_generic; a no-op after the kernel stub acked).
fn ack_pending() -> u32 {
    let pending = BAR0.read32(REG_IRQ_STATUS);
    if pending != 0 { BAR0.write32(REG_IRQ_ACK, pending) }
    pending
}

/// Wait for one interrupt inside a handler: Ok, or ERR_TIMEOUT / ERR_CANCELLED.
fn wait_interrupt(timeout_us: u32) -> Result<(), i32> {
    match irq::wait(timeout_us) {
        irq::CANCELLED => Err(ERR_CANCELLED),
        irq::INTERRUPT => {
            st().interrupts += 1;
            ack_pending();
            Ok(())
        }
        _ => Err(ERR_TIMEOUT),
    }
}

fn liveness_ok() -> bool {
    let pattern: u32 = 0x5a5a_a5a5;
    BAR0.write32(REG_LIVENESS, pattern);
    BAR0.read32(REG_LIVENESS) == !pattern
}

/// n! through the interrupt path: arm "raise interrupt after factorial", start, wait, read.
fn factorial(n: u32) -> Result<u32, i32> {
    BAR0.set_bits32(REG_STATUS, STATUS_IRQ_FACT);
    BAR0.write32(REG_FACTORIAL, n);
    wait_interrupt(FACTORIAL_TIMEOUT_US)?;
    if !BAR0.wait_bits32(REG_STATUS, STATUS_COMPUTING, 0, FACTORIAL_TIMEOUT_US) { return Err(ERR_TIMEOUT) }
    st().factorials += 1;
    Ok(BAR0.read32(REG_FACTORIAL))
}

fn raise(count: u32, value: u32) -> Result<u32, i32> {
    let mut seen = 0;
    for _ in 0..count {
        BAR0.write32(REG_IRQ_RAISE, value);
        match wait_interrupt(RAISE_TIMEOUT_US) {
            Ok(()) => seen += 1,
            Err(ERR_CANCELLED) => return Err(ERR_CANCELLED),
            Err(_) => {}
        }
    }
    Ok(seen)
}

fn dma_transfer(ram: u64, device: u64, len: u32, to_ram: bool) -> Result<(), i32> {
    BAR0.write64(REG_DMA_SRC, if to_ram { device } else { ram });
    BAR0.write64(REG_DMA_DST, if to_ram { ram } else { device });
    BAR0.write64(REG_DMA_COUNT, len as u64);
    BAR0.write64(REG_DMA_CMD, DMA_CMD_START | DMA_CMD_IRQ | if to_ram { DMA_CMD_TO_RAM } else { 0 });
    wait_interrupt(DMA_TIMEOUT_US)?;
    if BAR0.read64(REG_DMA_CMD) & DMA_CMD_START != 0 { return Err(ERR_TIMEOUT) }
    st().dma += 1;
    Ok(())
}

/// Host -> device -> host through the window and the device buffer; answers what came back.
fn dma_round_trip(args: Args) -> Result<i32, i32> {
    if DmaWindow::count() < 1 { return Err(ERR_NO_DMA) }
    let w = DmaWindow::get(0);
    let len = args.len;
    if len > DEVICE_BUFFER_SIZE || len * 2 > w.size { return Err(ERR_TOO_LARGE) }
    let win = w.bytes();
    win[..len as usize].copy_from_slice(&args.bytes()[..len as usize]);
    dma_transfer(w.bus_at(0), DEVICE_BUFFER, len, false)?;
    win.fill(0);
    dma_transfer(w.bus_at(len), DEVICE_BUFFER, len, true)?;
    Ok(Out::new().bytes_from(win[len as usize..].as_ptr(), len).end())
}

#[no_mangle]
pub extern "C" fn probe() -> i32 {
    let id = BAR0.read32(REG_ID);
    st().device_id = id;
    if id & ID_MAGIC_MASK != ID_MAGIC {
        wlog!(error, "edu: unexpected id {:#x} (want 0x..ed)", id);
        return -1;
    }
    if !liveness_ok() {
        wlog!(error, "edu: liveness check failed");
        return -2;
    }
    ack_pending();
    wlog!(info, "edu: found device id {:#x} (version {}.{}), liveness ok (Rust)", id, id >> 24, (id >> 16) & 0xff);
    0
}

#[no_mangle]
pub extern "C" fn remove() {
    BAR0.clear_bits32(REG_STATUS, STATUS_IRQ_FACT);
    ack_pending();
}

/// edu has no reset register: quiesce what a previous instance may have left running.
#[no_mangle]
pub extern "C" fn reset() {
    BAR0.clear_bits32(REG_STATUS, STATUS_IRQ_FACT);
    BAR0.wait_bits32(REG_STATUS, STATUS_COMPUTING, 0, FACTORIAL_TIMEOUT_US);
    ack_pending();
}

#[no_mangle]
pub extern "C" fn interrupt(count: u32) {
    st().interrupts += 1;
    let pending = ack_pending();
    if pending & !(IRQ_FACT | IRQ_DMA) != 0 { wlog!(info, "edu: interrupt {} status {:#x}", count, pending) }
}

fn serve(op: u32, args: Args) -> Result<i32, i32> {
    match op {
        OP_IDENTIFY => Ok(Out::new().u32(BAR0.read32(REG_ID)).u32(liveness_ok() as u32).end()),
        OP_FACTORIAL => Ok(Out::new().u32(factorial(args.u32(0))?).end()),
        OP_RAISE => {
            let value = if args.u32(1) != 0 { args.u32(1) } else { 0x1000 };
            Ok(Out::new().u32(raise(args.u32(0), value)?).end())
        }
        OP_DMA => dma_round_trip(args),
        OP_LIVENESS => {
            BAR0.write32(REG_LIVENESS, args.u32(0));
            Ok(Out::new().u32(BAR0.read32(REG_LIVENESS)).end())
        }
        OP_STATS => { let s = st(); Ok(Out::new().u32(s.interrupts).u32(s.factorials).u32(s.dma).end()) }
        _ => {
            wlog!(warn, "edu: unknown request op {}", op);
            Err(ERR_UNKNOWN_OP)
        }
    }
}

#[no_mangle]
pub extern "C" fn request(op: u32, len: u32) -> i32 {
    match serve(op, Args::new(len)) { Ok(n) | Err(n) => n }
}

/// Hot reload: versioned state, the same layout as the AssemblyScript driver's.
#[no_mangle]
pub extern "C" fn state_save() -> i32 {
    let s = st();
    Out::new().u32(STATE_VERSION).u32(s.device_id).u32(s.interrupts).u32(s.factorials).u32(s.dma).end()
}

#[no_mangle]
pub extern "C" fn state_restore(len: u32) -> i32 {
    let mut r = StateReader::new(len);
    if r.u32() != STATE_VERSION || len < 20 { return -1 }
    let s = st();
    s.device_id = r.u32();
    s.interrupts = r.u32();
    s.factorials = r.u32();
    s.dma = r.u32();
    0
}
