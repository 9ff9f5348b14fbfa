// The AssemblyScript skeletons of `wasmdrv new` (scaffold.ts writes the folder around them): for each
// built-in device a driver that reads like its datasheet, with the manifest that grants what it touches
// and the test body its simulated device must pass; for a manifest.json, a minimal driver on its first
// region or port range. The C and Rust skeletons of the same devices are in scaffold-c-rust.ts.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ABI_VERSION } from './abi.ts';
import { SDK_PACKAGE } from './build.ts';
import { packageRoot } from './native.ts';
import { type Manifest, parseManifest } from './package/manifest.ts';

export interface Template {
  manifest: Manifest;
  source: string;
  /** The test's body: what the simulated device must answer. */
  test: string;
  sim?: string;
  /** Options the test opens the simulated device with (host/sim/<model>.ts). */
  simOptions?: Record<string, unknown>;
  /** asc options of the folder's asconfig.json (wasmdrv build merges them over the project's). */
  asc?: Record<string, unknown>;
}

const header = (name: string, what: string) => `// ${name}: a wasmdrv driver for ${what}.
// Build: wasmdrv build .   (or npm run build)   ->  build/${name}.wasm
// Test:  npm test          (builds, then runs test/driver.test.ts against the simulated device)
`;

function eduTemplate(name: string): Template {
  return {
    sim: 'edu',
    manifest: {
      name,
      version: '0.1.0',
      license: 'Apache-2.0',
      abi: ABI_VERSION,
      description: `${name}: a driver for QEMU's edu device`,
      match: [{ pci: { vendor: '0x1234', device: '0x11e8' } }, { uio: 'wasmdrv-edu' }, { sim: 'edu' }],
      regions: [
        {
          index: 0,
          name: 'BAR0',
          size: '0x100',
          access: 'rw',
          writable: [
            { offset: '0x04', width: 4 },
            { offset: '0x64', width: 4 },
          ],
        },
      ],
      interrupts: true,
      limits: { memoryPages: 64, deadlineMs: 2000 },
    } as Manifest,
    source: `${header(name, "QEMU's edu device (1234:11e8), after QEMU's docs/specs/edu.rst")}
import { Region, Args, Out, logInfo, logError, hex } from "${SDK_PACKAGE}";
export { wasmdrv_abi_version, io_buffer, io_buffer_size, dma_area, dma_area_size } from "${SDK_PACKAGE}";

// --- edu.rst: register map (BAR0) -------------------------------------------------------------------
const REG_ID: u32 = 0x00;         // RO: 0xRRrr00ed, major.minor version and 0xed
const REG_LIVENESS: u32 = 0x04;   // RW: reads back the bitwise inverse of what was written
const REG_IRQ_STATUS: u32 = 0x24; // RO: pending interrupt bits
const REG_IRQ_ACK: u32 = 0x64;    // WO: acknowledge interrupt bits

const ID_MAGIC_MASK: u32 = 0xff;
const ID_MAGIC: u32 = 0xed;

// --- requests (op -> response) -----------------------------------------------------------------------
const OP_IDENTIFY: u32 = 1; // ()  -> id
const OP_LIVENESS: u32 = 2; // (v) -> ~v as the device computes it

const bar0 = new Region(0);
let interrupts: u32 = 0;

/** Called once the device is mapped: check it is what we think, return 0 (or a negative errno). */
export function probe(): i32 {
  const id = bar0.read32(REG_ID);
  if ((id & ID_MAGIC_MASK) != ID_MAGIC) {
    logError("not an edu device: id " + hex(id));
    return -19; // ENODEV
  }
  logInfo("${name}: edu id " + hex(id));
  return 0;
}

/** Called before the driver goes away: quiesce the device. */
export function remove(): void {}

/** Called for each interrupt the host saw: acknowledge what the device raised. */
export function interrupt(count: u32): void {
  interrupts += count;
  const pending = bar0.read32(REG_IRQ_STATUS);
  if (pending != 0) bar0.write32(REG_IRQ_ACK, pending);
}

/** A client's request: arguments in the io buffer, the response written back there. */
export function request(op: u32, len: u32): i32 {
  const args = new Args(len);
  if (op == OP_IDENTIFY) return new Out().u32(bar0.read32(REG_ID)).end();
  if (op == OP_LIVENESS) {
    bar0.write32(REG_LIVENESS, args.u32(0));
    return new Out().u32(bar0.read32(REG_LIVENESS)).end();
  }
  return -22; // EINVAL: unknown op
}
`,
    test: `  it('identifies the edu device', async () => {
    const [id] = words(await drv.request(1));
    expect(id & 0xff).toBe(0xed);
  });

  it('the liveness register returns the inverse', async () => {
    const [v] = words(await drv.request(2, u32(0x12345678)));
    expect(v).toBe(~0x12345678 >>> 0);
  });
`,
  };
}

function uartTemplate(name: string): Template {
  return {
    sim: 'uart16550',
    manifest: {
      name,
      version: '0.1.0',
      license: 'Apache-2.0',
      abi: ABI_VERSION,
      description: `${name}: a driver for a 16550A UART`,
      match: [{ uio: 'wasmdrv-uart16550' }, { sim: 'uart16550' }],
      ports: [{ index: 0, size: 8, access: 'rw' }],
      interrupts: true,
      limits: { memoryPages: 64 },
    } as Manifest,
    source: `${header(name, 'a 16550A UART, after the PC16550D datasheet')}
import { Ports, Args, Out, logInfo, logError, hex } from "${SDK_PACKAGE}";
export { wasmdrv_abi_version, io_buffer, io_buffer_size, dma_area, dma_area_size } from "${SDK_PACKAGE}";

// --- PC16550D section 8.1: register offsets (DLAB = LCR bit 7) --------------------------------------
const IER: u32 = 1; // interrupt enable
const IIR: u32 = 2; // interrupt identification (read)
const LSR: u32 = 5; // line status
const SCR: u32 = 7; // scratch

const IIR_NO_INTERRUPT: u8 = 0x01;
const LSR_THRE: u8 = 0x20; // transmitter holding register empty
const SCRATCH_PATTERN: u8 = 0x5a;

// --- requests (op -> response) -----------------------------------------------------------------------
const OP_SCRATCH: u32 = 1; // (u8 v) -> v read back from the scratch register
const OP_STATUS: u32 = 2;  // ()     -> LSR, IIR

const uart = new Ports(0);
let interrupts: u32 = 0;

/** Called once the ports are granted: check the scratch register holds what we write. */
export function probe(): i32 {
  uart.out8(SCR, SCRATCH_PATTERN);
  const back = uart.in8(SCR);
  if (back != SCRATCH_PATTERN) {
    logError("no 16550 here: scratch reads " + hex(back));
    return -19; // ENODEV
  }
  uart.out8(IER, 0); // interrupts off until the driver needs them
  logInfo("${name}: 16550 found, LSR " + hex(uart.in8(LSR)));
  return 0;
}

export function remove(): void {
  uart.out8(IER, 0);
}

export function interrupt(count: u32): void {
  interrupts += count;
  // Reading IIR identifies (and for THRE, clears) the pending source.
  if ((uart.in8(IIR) & IIR_NO_INTERRUPT) == 0) uart.in8(LSR);
}

export function request(op: u32, len: u32): i32 {
  const args = new Args(len);
  if (op == OP_SCRATCH) {
    uart.out8(SCR, <u8>args.u32(0));
    return new Out().u32(uart.in8(SCR)).end();
  }
  if (op == OP_STATUS) return new Out().u32(uart.in8(LSR)).u32(uart.in8(IIR)).end();
  return -22; // EINVAL: unknown op
}
`,
    test: `  it('reads back the scratch register', async () => {
    const [v] = words(await drv.request(1, u32(0xa5)));
    expect(v).toBe(0xa5);
  });

  it('reports the transmitter empty', async () => {
    const [lsr] = words(await drv.request(2));
    expect(lsr & 0x20).toBe(0x20);
  });
`,
  };
}

/**
 * The e1000 (82540EM): the grant of guest-drivers/e1000/manifest.json (BAR0 writes, RX/TX rings
 * declared for the ring firewall, one DMA window) under the new name, and a driver that probes: reset,
 * MAC from RAL0/RAH0, link up. The rings are declared, not yet driven: that is the driver's next step.
 */
function e1000Template(name: string): Template {
  const file = join(packageRoot(), 'guest-drivers', 'e1000', 'manifest.json');
  const base = parseManifest(readFileSync(file, 'utf8'), file);
  return {
    sim: 'e1000',
    simOptions: { mac: '02:00:5e:10:00:01' },
    // Its 256 KiB DMA area, io buffer and stack do not fit the default 2 pages (64 KiB each).
    asc: { initialMemory: 8 },
    manifest: {
      ...base,
      name,
      version: '0.1.0',
      description: `${name}: a driver for the Intel 82540EM (e1000) Ethernet controller`,
    },
    source: `${header(name, 'the Intel 82540EM Gigabit Ethernet controller (e1000, 8086:100e), as QEMU models it')}// Section numbers [x.y] are those of Intel's 8254x Software Developer's Manual (rev. 4.0); the init
// order follows its chapter 14. manifest.json already declares the RX/TX rings and the DMA window a
// full driver needs (see guest-drivers/e1000 in wasmdrv for one that sends and receives).
import { Region, Args, Out, logInfo, logError, hex } from "${SDK_PACKAGE}";
export { wasmdrv_abi_version, io_buffer, io_buffer_size } from "${SDK_PACKAGE}";

// --- registers (BAR0, 32-bit) [13.3, table 13-2] ---------------------------------------------------
const CTRL: u32 = 0x0000;   // [13.4.1] device control
const STATUS: u32 = 0x0008; // [13.4.2] device status (RO)
const ICR: u32 = 0x00c0;    // [13.4.17] interrupt cause read (read-to-clear)
const IMC: u32 = 0x00d8;    // [13.4.21] interrupt mask clear
const RAL0: u32 = 0x5400;   // [13.5.2] receive address 0 low: MAC bytes 0-3
const RAH0: u32 = 0x5404;   // [13.5.3] receive address 0 high: MAC bytes 4-5, AV (bit 31)

const CTRL_LRST: u32 = 1 << 3;     // link reset
const CTRL_ASDE: u32 = 1 << 5;     // auto speed detection
const CTRL_SLU: u32 = 1 << 6;      // set link up
const CTRL_ILOS: u32 = 1 << 7;     // invert loss of signal
const CTRL_RST: u32 = 1 << 26;     // device reset (self-clearing)
const CTRL_PHY_RST: u32 = 1 << 31; // PHY reset
const STATUS_LU: u32 = 1 << 1;     // link up
const RAH_AV: u32 = 1 << 31;       // address valid

const RESET_TIMEOUT_US: u32 = 100_000;

/** Where the host maps DMA window 0 (the manifest asks for 256 KiB: the rings and their buffers). */
const DMA_AREA_SIZE: u32 = 0x40000;
const DMA_AREA: usize = memory.data(<i32>DMA_AREA_SIZE, 4096);
export function dma_area(): usize { return DMA_AREA; }
export function dma_area_size(): u32 { return DMA_AREA_SIZE; }

// --- requests (op -> response) -----------------------------------------------------------------------
const OP_MAC: u32 = 1;  // () -> u32 MAC bytes 0-3, u32 bytes 4-5
const OP_LINK: u32 = 2; // () -> u32 up, u32 speed in Mb/s (0 when down)

const bar0 = new Region(0);
let macLo: u32 = 0;
let macHi: u32 = 0;
let interrupts: u32 = 0;

/** [14.4, 13.4.1] Mask every interrupt, reset, mask again (the reset may have left IMS set). */
function resetDevice(): bool {
  bar0.write32(IMC, 0xffffffff);
  bar0.setBits32(CTRL, CTRL_RST);
  if (!bar0.waitBits32(CTRL, CTRL_RST, 0, RESET_TIMEOUT_US)) return false;
  bar0.write32(IMC, 0xffffffff);
  bar0.read32(ICR);
  return true;
}

/** [14.3] Link: set link up with auto speed detection; clear link reset, PHY reset, ILOS. */
function linkUp(): bool {
  const ctrl = bar0.read32(CTRL);
  bar0.write32(CTRL, (ctrl | CTRL_SLU | CTRL_ASDE) & ~(CTRL_LRST | CTRL_PHY_RST | CTRL_ILOS));
  return (bar0.read32(STATUS) & STATUS_LU) != 0;
}

/** Called once the device is mapped: reset it, read its MAC, bring the link up. 0 or a negative errno. */
export function probe(): i32 {
  if (!resetDevice()) {
    logError("${name}: CTRL.RST did not clear");
    return -5; // EIO
  }
  // [13.5.3] QEMU (and the EEPROM loader of real hardware) presets RAL0/RAH0 with AV set. Without AV,
  // read EEPROM words 0-2 through EERD [13.4.4], as guest-drivers/e1000 does.
  const hi = bar0.read32(RAH0);
  if ((hi & RAH_AV) == 0) {
    logError("${name}: no MAC in RAL0/RAH0 (AV clear)");
    return -19; // ENODEV
  }
  macLo = bar0.read32(RAL0);
  macHi = hi & 0xffff;
  const up = linkUp();
  logInfo("${name}: MAC " + hex(macLo) + "/" + hex(macHi) + ", link " + (up ? "up" : "down"));
  return 0;
}

/** Called before the driver goes away: mask every interrupt. */
export function remove(): void {
  bar0.write32(IMC, 0xffffffff);
  bar0.read32(ICR);
}

/** Called for each interrupt the host saw: reading ICR clears the causes [13.4.17]. */
export function interrupt(count: u32): void {
  interrupts += count;
  bar0.read32(ICR);
}

/** A client's request: arguments in the io buffer, the response written back there. */
export function request(op: u32, len: u32): i32 {
  const args = new Args(len);
  if (op == OP_MAC) return new Out().u32(macLo).u32(macHi).end();
  if (op == OP_LINK) {
    const status = bar0.read32(STATUS);
    const up = (status & STATUS_LU) != 0;
    const bits = (status >> 6) & 3; // [13.4.2] SPEED: 00 10, 01 100, 1x 1000 Mb/s
    const speed: u32 = bits == 0 ? 10 : bits == 1 ? 100 : 1000;
    return new Out().u32(up ? 1 : 0).u32(up ? speed : 0).end();
  }
  return -22; // EINVAL: unknown op
}
`,
    test: `  it('reads the MAC the device holds in RAL0/RAH0', async () => {
    const [lo, hi] = words(await drv.request(1));
    const mac = [lo, lo >>> 8, lo >>> 16, lo >>> 24, hi, hi >>> 8].map((b) => (b & 0xff).toString(16).padStart(2, '0'));
    expect(mac.join(':')).toBe('02:00:5e:10:00:01');
  });

  it('brings the link up at 1000 Mb/s', async () => {
    expect(words(await drv.request(2))).toEqual([1, 1000]);
  });
`,
  };
}

function manifestTemplate(name: string, file: string): Template {
  let m: Manifest;
  try {
    m = parseManifest(readFileSync(file, 'utf8'), file);
  } catch (err) {
    throw new Error(
      (err as Error).message.startsWith(file) ? (err as Error).message : `${file}: ${(err as Error).message}`,
    );
  }
  m = { ...m, name };
  const sim = m.match.find((x) => x.sim)?.sim;
  const region = m.regions?.[0];
  const port = m.ports?.[0];
  const read = region ? `bar.read32(0)` : port ? `<u32>ports.in8(0)` : '0';
  return {
    sim,
    manifest: m,
    source: `${header(name, m.description ?? 'the device its manifest.json describes')}
import { ${region ? 'Region, ' : ''}${port ? 'Ports, ' : ''}Args, Out, logInfo } from "${SDK_PACKAGE}";
export { wasmdrv_abi_version, io_buffer, io_buffer_size, dma_area, dma_area_size } from "${SDK_PACKAGE}";

// Name each register here, next to its bits, as the datasheet does.
const REG_FIRST: u32 = 0x00;

const OP_READ_FIRST: u32 = 1; // () -> the first register

${region ? `const bar = new Region(${region.index});\n` : ''}${port ? `const ports = new Ports(${port.index});\n` : ''}
export function probe(): i32 {
  logInfo("${name}: probed, first register " + (${read.replace('(0)', '(REG_FIRST)')}).toString(16));
  return 0;
}

export function remove(): void {}

export function interrupt(count: u32): void {}

export function request(op: u32, len: u32): i32 {
  const args = new Args(len);
  if (op == OP_READ_FIRST) return new Out().u32(${read.replace('(0)', '(REG_FIRST)')}).end();
  return -22; // EINVAL: unknown op
}
`,
    test: `  it('answers its first request', async () => {
    const r = await drv.request(1);
    expect(r.length).toBe(4);
  });
`,
  };
}

/** The template for `--device`: a built-in device's name or the path of a manifest.json. */
export function asTemplate(name: string, device: string): Template {
  return device === 'edu'
    ? eduTemplate(name)
    : device === 'uart16550'
      ? uartTemplate(name)
      : device === 'e1000'
        ? e1000Template(name)
        : manifestTemplate(name, device);
}
