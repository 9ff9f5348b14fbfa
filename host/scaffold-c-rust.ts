// `wasmdrv new DIR --device edu|uart16550 --lang c|rust`: the same skeletons as the AssemblyScript
// templates (scaffold.ts), in C against guest-drivers/sdk-c/wasmdrv.h and in Rust against the
// `wasmdrv` crate (guest-drivers/sdk-rust). They answer the same requests, so the same test runs.

import { packageRoot } from './native.ts';

export interface LangSource {
  /** Files of the driver proper, by path in DIR. */
  files: Record<string, string>;
  /** What README's file table says about them. */
  readme: string;
}

const header = (c: string, name: string, what: string) => `${c} ${name}: a wasmdrv driver for ${what}.
${c} Build: wasmdrv build .   (or npm run build)   ->  build/${name}.wasm   (docs/languages.md)
${c} Test:  npm test          (builds, then runs test/driver.test.ts against the simulated device)
`;

function eduC(name: string): string {
  return `${header('//', name, "QEMU's edu device (1234:11e8), after QEMU's docs/specs/edu.rst")}
#include <wasmdrv.h>

WASMDRV_DRIVER();

/* edu.rst: register map (BAR0) */
#define BAR0 0
#define REG_ID 0x00         /* RO: 0xRRrr00ed, major.minor version and 0xed */
#define REG_LIVENESS 0x04   /* RW: reads back the bitwise inverse of what was written */
#define REG_IRQ_STATUS 0x24 /* RO: pending interrupt bits */
#define REG_IRQ_ACK 0x64    /* WO: acknowledge interrupt bits */
#define ID_MAGIC_MASK 0xffu
#define ID_MAGIC 0xedu

/* requests (op -> response) */
enum { OP_IDENTIFY = 1 /* () -> id */, OP_LIVENESS = 2 /* (v) -> ~v as the device computes it */ };

static uint32_t interrupts;

/* Called once the device is mapped: check it is what we think, return 0 (or a negative errno). */
WASMDRV_EXPORT(probe) int32_t probe(void)
{
	if ((wd_read32(BAR0, REG_ID) & ID_MAGIC_MASK) != ID_MAGIC) {
		wd_log_error("not an edu device");
		return -19; /* ENODEV */
	}
	wd_log_info("${name}: edu found");
	return 0;
}

/* Called before the driver goes away: quiesce the device. */
WASMDRV_EXPORT(remove) void remove(void) {}

/* Called for each interrupt the host saw: acknowledge what the device raised. */
WASMDRV_EXPORT(interrupt) void interrupt(uint32_t count)
{
	interrupts += count;
	uint32_t pending = wd_read32(BAR0, REG_IRQ_STATUS);
	if (pending)
		wd_write32(BAR0, REG_IRQ_ACK, pending);
}

/* A client's request: arguments in the io buffer, the response written back there. */
WASMDRV_EXPORT(request) int32_t request(uint32_t op, uint32_t len)
{
	struct wd_out o = { 0 };
	if (op == OP_IDENTIFY) {
		wd_out_u32(&o, wd_read32(BAR0, REG_ID));
		return wd_out_end(&o);
	}
	if (op == OP_LIVENESS) {
		wd_write32(BAR0, REG_LIVENESS, wd_arg_u32(len, 0));
		wd_out_u32(&o, wd_read32(BAR0, REG_LIVENESS));
		return wd_out_end(&o);
	}
	return -22; /* EINVAL: unknown op */
}
`;
}

function uartC(name: string): string {
  return `${header('//', name, 'a 16550A UART, after the PC16550D datasheet')}
#include <wasmdrv.h>

WASMDRV_DRIVER();

/* PC16550D section 8.1: register offsets (DLAB = LCR bit 7) */
#define UART 0
#define IER 1 /* interrupt enable */
#define IIR 2 /* interrupt identification (read) */
#define LSR 5 /* line status */
#define SCR 7 /* scratch */
#define IIR_NO_INTERRUPT 0x01
#define SCRATCH_PATTERN 0x5a

enum { OP_SCRATCH = 1 /* (u8 v) -> v from the scratch register */, OP_STATUS = 2 /* () -> LSR, IIR */ };

static uint32_t interrupts;

WASMDRV_EXPORT(probe) int32_t probe(void)
{
	wd_out8(UART, SCR, SCRATCH_PATTERN);
	if (wd_in8(UART, SCR) != SCRATCH_PATTERN) {
		wd_log_error("no 16550 here: the scratch register does not hold its value");
		return -19; /* ENODEV */
	}
	wd_out8(UART, IER, 0); /* interrupts off until the driver needs them */
	wd_log_info("${name}: 16550 found");
	return 0;
}

WASMDRV_EXPORT(remove) void remove(void) { wd_out8(UART, IER, 0); }

WASMDRV_EXPORT(interrupt) void interrupt(uint32_t count)
{
	interrupts += count;
	/* Reading IIR identifies (and for THRE, clears) the pending source. */
	if ((wd_in8(UART, IIR) & IIR_NO_INTERRUPT) == 0)
		wd_in8(UART, LSR);
}

WASMDRV_EXPORT(request) int32_t request(uint32_t op, uint32_t len)
{
	struct wd_out o = { 0 };
	if (op == OP_SCRATCH) {
		wd_out8(UART, SCR, (uint8_t)wd_arg_u32(len, 0));
		wd_out_u32(&o, wd_in8(UART, SCR));
		return wd_out_end(&o);
	}
	if (op == OP_STATUS) {
		wd_out_u32(&o, wd_in8(UART, LSR));
		wd_out_u32(&o, wd_in8(UART, IIR));
		return wd_out_end(&o);
	}
	return -22; /* EINVAL: unknown op */
}
`;
}

function eduRust(name: string): string {
  return `${header('//!', name, "QEMU's edu device (1234:11e8), after QEMU's docs/specs/edu.rst")}#![no_std]

use wasmdrv::{wlog, Args, Out, Region};

// edu.rst: register map (BAR0)
const BAR0: Region = Region(0);
const REG_ID: u32 = 0x00; // RO: 0xRRrr00ed, major.minor version and 0xed
const REG_LIVENESS: u32 = 0x04; // RW: reads back the bitwise inverse of what was written
const REG_IRQ_STATUS: u32 = 0x24; // RO: pending interrupt bits
const REG_IRQ_ACK: u32 = 0x64; // WO: acknowledge interrupt bits
const ID_MAGIC_MASK: u32 = 0xff;
const ID_MAGIC: u32 = 0xed;

// requests (op -> response)
const OP_IDENTIFY: u32 = 1; // ()  -> id
const OP_LIVENESS: u32 = 2; // (v) -> !v as the device computes it

/// Called once the device is mapped: check it is what we think, return 0 (or a negative errno).
#[no_mangle]
pub extern "C" fn probe() -> i32 {
    let id = BAR0.read32(REG_ID);
    if id & ID_MAGIC_MASK != ID_MAGIC {
        wlog!(error, "not an edu device: id {:#x}", id);
        return -19; // ENODEV
    }
    wlog!(info, "${name}: edu id {:#x}", id);
    0
}

/// Called before the driver goes away: quiesce the device.
#[no_mangle]
pub extern "C" fn remove() {}

/// Called for each interrupt the host saw: acknowledge what the device raised.
#[no_mangle]
pub extern "C" fn interrupt(_count: u32) {
    let pending = BAR0.read32(REG_IRQ_STATUS);
    if pending != 0 { BAR0.write32(REG_IRQ_ACK, pending) }
}

/// A client's request: arguments in the io buffer, the response written back there.
#[no_mangle]
pub extern "C" fn request(op: u32, len: u32) -> i32 {
    let args = Args::new(len);
    match op {
        OP_IDENTIFY => Out::new().u32(BAR0.read32(REG_ID)).end(),
        OP_LIVENESS => {
            BAR0.write32(REG_LIVENESS, args.u32(0));
            Out::new().u32(BAR0.read32(REG_LIVENESS)).end()
        }
        _ => -22, // EINVAL: unknown op
    }
}
`;
}

function uartRust(name: string): string {
  return `${header('//!', name, 'a 16550A UART, after the PC16550D datasheet')}#![no_std]

use wasmdrv::{wlog, Args, Out, Ports};

// PC16550D section 8.1: register offsets (DLAB = LCR bit 7)
const UART: Ports = Ports(0);
const IER: u32 = 1; // interrupt enable
const IIR: u32 = 2; // interrupt identification (read)
const LSR: u32 = 5; // line status
const SCR: u32 = 7; // scratch
const IIR_NO_INTERRUPT: u8 = 0x01;
const SCRATCH_PATTERN: u8 = 0x5a;

const OP_SCRATCH: u32 = 1; // (u8 v) -> v from the scratch register
const OP_STATUS: u32 = 2; // () -> LSR, IIR

#[no_mangle]
pub extern "C" fn probe() -> i32 {
    UART.out8(SCR, SCRATCH_PATTERN);
    let back = UART.in8(SCR);
    if back != SCRATCH_PATTERN {
        wlog!(error, "no 16550 here: scratch reads {:#x}", back);
        return -19; // ENODEV
    }
    UART.out8(IER, 0); // interrupts off until the driver needs them
    wlog!(info, "${name}: 16550 found, LSR {:#x}", UART.in8(LSR));
    0
}

#[no_mangle]
pub extern "C" fn remove() { UART.out8(IER, 0) }

#[no_mangle]
pub extern "C" fn interrupt(_count: u32) {
    // Reading IIR identifies (and for THRE, clears) the pending source.
    if UART.in8(IIR) & IIR_NO_INTERRUPT == 0 { UART.in8(LSR); }
}

#[no_mangle]
pub extern "C" fn request(op: u32, len: u32) -> i32 {
    let args = Args::new(len);
    match op {
        OP_SCRATCH => {
            UART.out8(SCR, args.u32(0) as u8);
            Out::new().u32(UART.in8(SCR) as u32).end()
        }
        OP_STATUS => Out::new().u32(UART.in8(LSR) as u32).u32(UART.in8(IIR) as u32).end(),
        _ => -22, // EINVAL: unknown op
    }
}
`;
}

/** The driver's own files for `lang` on a built-in device; throws for a device it has no template for. */
export function langSource(lang: 'c' | 'rust', device: string, name: string): LangSource {
  if (device !== 'edu' && device !== 'uart16550') {
    throw new Error(
      `--lang ${lang}: templates exist for --device edu and uart16550; start from one of them (or --lang as for a manifest)`,
    );
  }
  if (lang === 'c') {
    return {
      files: { 'index.c': device === 'edu' ? eduC(name) : uartC(name) },
      readme:
        '| `index.c` | the driver in C against `wasmdrv.h` (guest-drivers/sdk-c): `probe`, `remove`, `interrupt`, `request` |',
    };
  }
  return {
    files: {
      'src/lib.rs': device === 'edu' ? eduRust(name) : uartRust(name),
      'Cargo.toml':
        `[package]\nname = "${name}"\nversion = "0.1.0"\nedition = "2021"\n\n[lib]\ncrate-type = ["cdylib"]\npath = "src/lib.rs"\n\n` +
        `[dependencies]\nwasmdrv = { path = "${packageRoot()}/guest-drivers/sdk-rust" }\n\n[profile.release]\npanic = "abort"\nopt-level = "s"\n`,
    },
    readme:
      '| `src/lib.rs`, `Cargo.toml` | the driver in Rust (`#![no_std]`) against the `wasmdrv` crate (guest-drivers/sdk-rust): `probe`, `remove`, `interrupt`, `request` |',
  };
}
