//! The wasmdrv driver SDK for Rust (ABI v1, wit/wasmdrv-driver.wit): `#![no_std]`, no allocator, the
//! same calls as the AssemblyScript SDK (guest-drivers/sdk/index.ts). The raw imports are in `abi`
//! (generated from the WIT by scripts/gen-sdk-abi.mjs); drivers use the wrappers below.
//!
//! This crate defines the io buffer, the DMA area and their four exports, and a panic handler that
//! stops the driver with a `panic` fault. A driver crate (`crate-type = ["cdylib"]`,
//! target wasm32-unknown-unknown, linked with `--import-memory`) defines `probe`, `remove`,
//! `interrupt` and `request` as `#[no_mangle] pub extern "C" fn`. host/build-c-rust.ts (finishDriver) then
//! adds the `wasmdrv_abi_version` global (Rust cannot export an immutable Wasm global).
#![no_std]

pub mod abi;

use core::fmt::Write;

// --- ABI plumbing --------------------------------------------------------------------------------------

pub const IO_BUFFER_SIZE: u32 = 8192;
pub const DMA_AREA_SIZE: u32 = 65536;

#[repr(C, align(16))]
struct IoBuffer([u8; IO_BUFFER_SIZE as usize]);
#[repr(C, align(4096))]
struct DmaArea([u8; DMA_AREA_SIZE as usize]);

static mut IO: IoBuffer = IoBuffer([0; IO_BUFFER_SIZE as usize]);
static mut DMA: DmaArea = DmaArea([0; DMA_AREA_SIZE as usize]);

#[inline(always)]
fn io() -> *mut u8 {
    // SAFETY: a driver is single-threaded; the host writes the buffer only between calls.
    unsafe { IO.0.as_mut_ptr() }
}

#[no_mangle]
pub extern "C" fn io_buffer() -> u32 { io() as u32 }
#[no_mangle]
pub extern "C" fn io_buffer_size() -> u32 { IO_BUFFER_SIZE }
#[no_mangle]
pub extern "C" fn dma_area() -> u32 { unsafe { DMA.0.as_mut_ptr() as u32 } }
#[no_mangle]
pub extern "C" fn dma_area_size() -> u32 { DMA_AREA_SIZE }

#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo) -> ! {
    let mut m = Msg::new();
    let _ = write!(m, "Rust panic");
    if let Some(l) = info.location() {
        let _ = write!(m, " at {}:{}", l.file(), l.line());
    }
    fail(m.as_str())
}

/// Give up: the host stops this driver with a `panic` fault carrying `msg`. Never returns.
pub fn fail(msg: &str) -> ! {
    unsafe { abi::panic(msg.as_ptr(), msg.len()) };
    core::arch::wasm32::unreachable()
}

// --- logging and time -------------------------------------------------------------------------------------

/// A fixed 192-byte message buffer for `write!` (truncates; never allocates).
pub struct Msg { buf: [u8; 192], len: usize }
impl Msg {
    pub const fn new() -> Msg { Msg { buf: [0; 192], len: 0 } }
    pub fn as_str(&self) -> &str { core::str::from_utf8(&self.buf[..self.len]).unwrap_or("(message not UTF-8)") }
}
impl Write for Msg {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

pub fn log(level: u32, msg: &str) { unsafe { abi::log(level, msg.as_ptr(), msg.len()) } }
pub fn log_debug(msg: &str) { log(0, msg) }
pub fn log_info(msg: &str) { log(1, msg) }
pub fn log_warn(msg: &str) { log(2, msg) }
pub fn log_error(msg: &str) { log(3, msg) }

/// `wlog!(info, "id {:#x}", id)`: format into a `Msg` and log it at that level.
#[macro_export]
macro_rules! wlog {
    ($level:ident, $($arg:tt)*) => {{
        let mut m = $crate::Msg::new();
        let _ = core::fmt::Write::write_fmt(&mut m, format_args!($($arg)*));
        $crate::wlog!(@ $level, m.as_str());
    }};
    (@ debug, $s:expr) => { $crate::log_debug($s) };
    (@ info, $s:expr) => { $crate::log_info($s) };
    (@ warn, $s:expr) => { $crate::log_warn($s) };
    (@ error, $s:expr) => { $crate::log_error($s) };
}

/// Monotonic nanoseconds (virtual under the fuzzer).
pub fn now_ns() -> u64 { unsafe { abi::clock_ns() } }
/// Sleep up to `us` microseconds; false when the host cancelled the sleep.
pub fn sleep_us(us: u32) -> bool { unsafe { abi::sleep_us(us) == 0 } }

// --- registers: every access is checked by the host ----------------------------------------------------

/// A memory-mapped register region (BAR).
#[derive(Clone, Copy)]
pub struct Region(pub u32);
impl Region {
    pub fn size(self) -> u32 { unsafe { abi::region_size(self.0) } }
    #[inline(always)] pub fn read8(self, off: u32) -> u8 { unsafe { abi::reg_read8(self.0, off) as u8 } }
    #[inline(always)] pub fn read16(self, off: u32) -> u16 { unsafe { abi::reg_read16(self.0, off) as u16 } }
    #[inline(always)] pub fn read32(self, off: u32) -> u32 { unsafe { abi::reg_read32(self.0, off) } }
    #[inline(always)] pub fn read64(self, off: u32) -> u64 { unsafe { abi::reg_read64(self.0, off) } }
    #[inline(always)] pub fn write8(self, off: u32, v: u8) { unsafe { abi::reg_write8(self.0, off, v as u32) } }
    #[inline(always)] pub fn write16(self, off: u32, v: u16) { unsafe { abi::reg_write16(self.0, off, v as u32) } }
    #[inline(always)] pub fn write32(self, off: u32, v: u32) { unsafe { abi::reg_write32(self.0, off, v) } }
    #[inline(always)] pub fn write64(self, off: u32, v: u64) { unsafe { abi::reg_write64(self.0, off, v) } }
    pub fn set_bits32(self, off: u32, bits: u32) { self.write32(off, self.read32(off) | bits) }
    pub fn clear_bits32(self, off: u32, bits: u32) { self.write32(off, self.read32(off) & !bits) }
    /// Poll until `(read32 & mask) == expected`, at most `timeout_us`. False on timeout.
    pub fn wait_bits32(self, off: u32, mask: u32, expected: u32, timeout_us: u32) -> bool {
        let deadline = now_ns() + timeout_us as u64 * 1000;
        while self.read32(off) & mask != expected {
            if now_ns() >= deadline { return self.read32(off) & mask == expected; }
        }
        true
    }
}

/// An x86 port range.
#[derive(Clone, Copy)]
pub struct Ports(pub u32);
impl Ports {
    pub fn size(self) -> u32 { unsafe { abi::port_size(self.0) } }
    pub fn in8(self, off: u32) -> u8 { unsafe { abi::io_in8(self.0, off) as u8 } }
    pub fn in16(self, off: u32) -> u16 { unsafe { abi::io_in16(self.0, off) as u16 } }
    pub fn in32(self, off: u32) -> u32 { unsafe { abi::io_in32(self.0, off) } }
    pub fn out8(self, off: u32, v: u8) { unsafe { abi::io_out8(self.0, off, v as u32) } }
    pub fn out16(self, off: u32, v: u16) { unsafe { abi::io_out16(self.0, off, v as u32) } }
    pub fn out32(self, off: u32, v: u32) { unsafe { abi::io_out32(self.0, off, v) } }
}

// --- interrupts -----------------------------------------------------------------------------------------------

pub mod irq {
    use super::abi;
    pub const INTERRUPT: i32 = 1;
    pub const TIMEOUT: i32 = 0;
    pub const CANCELLED: i32 = -1;
    /// Wait for the count to advance: INTERRUPT, TIMEOUT or CANCELLED.
    pub fn wait(timeout_us: u32) -> i32 { unsafe { abi::irq_wait(timeout_us) } }
    pub fn count() -> u32 { unsafe { abi::irq_count() } }
    pub fn enable() { unsafe { abi::irq_enable() } }
    pub fn disable() { unsafe { abi::irq_disable() } }
}

// --- DMA windows --------------------------------------------------------------------------------------------------

/// A DMA window: `addr` in this driver's memory, `bus` as the device sees byte 0.
#[derive(Clone, Copy)]
pub struct DmaWindow { pub addr: *mut u8, pub size: u32, pub bus: u64 }
impl DmaWindow {
    pub fn count() -> u32 { unsafe { abi::dma_window_count() } }
    pub fn get(w: u32) -> DmaWindow {
        unsafe { DmaWindow { addr: abi::dma_window_addr(w) as *mut u8, size: abi::dma_window_size(w), bus: abi::dma_window_bus(w) } }
    }
    /// Bus address of byte `offset`; panics (a `panic` fault) when outside the window.
    pub fn bus_at(&self, offset: u32) -> u64 {
        if offset > self.size { fail("DMA offset outside the window") }
        self.bus + offset as u64
    }
    /// The window as a byte slice.
    pub fn bytes(&self) -> &'static mut [u8] { unsafe { core::slice::from_raw_parts_mut(self.addr, self.size as usize) } }
}

// --- requests and state: little-endian fields in the io buffer ----------------------------------------------

/// Request arguments; an argument past the request's length reads as 0.
#[derive(Clone, Copy)]
pub struct Args { pub len: u32 }
impl Args {
    pub fn new(len: u32) -> Args { Args { len } }
    pub fn u32(&self, index: u32) -> u32 {
        let at = index * 4;
        if at + 4 > self.len { return 0 }
        unsafe { (io().add(at as usize) as *const u32).read_unaligned() }
    }
    pub fn u64_at(&self, byte_offset: u32) -> u64 {
        if byte_offset + 8 > self.len { return 0 }
        unsafe { (io().add(byte_offset as usize) as *const u64).read_unaligned() }
    }
    /// The request's bytes.
    pub fn bytes(&self) -> &'static [u8] { unsafe { core::slice::from_raw_parts(io(), self.len.min(IO_BUFFER_SIZE) as usize) } }
}

/// A response (or saved state) written into the io buffer; `end()` gives its length.
pub struct Out { at: u32 }
impl Out {
    pub fn new() -> Out { Out { at: 0 } }
    pub fn u32(&mut self, v: u32) -> &mut Out { self.put(&v.to_le_bytes()) }
    pub fn u64(&mut self, v: u64) -> &mut Out { self.put(&v.to_le_bytes()) }
    /// Copies `src` (which may lie in the io buffer itself or a DMA window).
    pub fn bytes_from(&mut self, src: *const u8, len: u32) -> &mut Out {
        if self.at + len > IO_BUFFER_SIZE { fail("response larger than the io buffer") }
        unsafe { core::ptr::copy(src, io().add(self.at as usize), len as usize) };
        self.at += len;
        self
    }
    fn put(&mut self, b: &[u8]) -> &mut Out { self.bytes_from(b.as_ptr(), b.len() as u32) }
    pub fn end(&self) -> i32 { self.at as i32 }
}

/// Reads fields back from a saved state (past the end reads as 0).
pub struct StateReader { at: u32, pub len: u32 }
impl StateReader {
    pub fn new(len: u32) -> StateReader { StateReader { at: 0, len } }
    pub fn u32(&mut self) -> u32 {
        if self.at + 4 > self.len { return 0 }
        let v = unsafe { (io().add(self.at as usize) as *const u32).read_unaligned() };
        self.at += 4;
        v
    }
    pub fn u64(&mut self) -> u64 {
        if self.at + 8 > self.len { return 0 }
        let v = unsafe { (io().add(self.at as usize) as *const u64).read_unaligned() };
        self.at += 8;
        v
    }
}
