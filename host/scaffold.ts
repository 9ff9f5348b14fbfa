// `wasmdrv new NAME --device edu|uart16550|e1000|MANIFEST`: a driver folder that builds and passes its test
// right away — manifest.json, index.ts (probe / remove / interrupt / request for that device), a vitest
// test against the simulated device, package.json, README.md.

import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ABI_VERSION } from './abi.ts';
import { SDK_PACKAGE } from './build.ts';
import { packageRoot } from './native.ts';
import { parseManifest, type Manifest } from './package/manifest.ts';
import { langSource } from './scaffold-c-rust.ts';

export interface ScaffoldOptions {
  /** edu, uart16550, e1000, or the path of a manifest.json to start from. */
  device: string;
  lang?: 'as' | 'c' | 'rust';
  /** Link wasmdrv and vitest from this installation into DIR/node_modules (no npm install needed). */
  link?: boolean;
}

export const BUILTIN_DEVICES = ['edu', 'uart16550', 'e1000'] as const;

interface Template {
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

function testFile(name: string, t: Template): string {
  if (!t.sim) {
    return `// No simulated model matches this driver's manifest: the test checks that the binary is a
// wasmdrv driver (the exports the ABI requires). Add { "sim": "MODEL" } to "match" to test on a model.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('${name}', () => {
  it('exports what the ABI requires', () => {
    const m = new WebAssembly.Module(readFileSync(new URL('../build/${name}.wasm', import.meta.url)));
    const names = WebAssembly.Module.exports(m).map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['probe', 'remove', 'interrupt', 'request', 'io_buffer', 'wasmdrv_abi_version']));
  });
});
`;
  }
  return `// ${name} against wasmdrv's simulated ${t.sim} (run: npm test, which builds first), under the grant
// of manifest.json: a register write or DMA it does not allow is a fault here, as in production.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, parseManifest, type Driver } from 'wasmdrv';

const wasm = fileURLToPath(new URL('../build/${name}.wasm', import.meta.url));
const manifestFile = fileURLToPath(new URL('../manifest.json', import.meta.url));
const manifest = parseManifest(readFileSync(manifestFile, 'utf8'), manifestFile);
const u32 = (...v: number[]) => new Uint8Array(new Uint32Array(v).buffer);
const words = (b: Uint8Array) => Array.from(new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2));

describe('${name} on sim:${t.sim}', () => {
  const host = new Host();
  let drv: Driver;
  beforeAll(async () => {
    ${
      t.simOptions
        ? `const dev = host.openDevice('sim:${t.sim}', { sim: ${JSON.stringify(t.simOptions)} });
    drv = await host.load(wasm, dev, { name: '${name}', manifest });`
        : `drv = await host.load(wasm, 'sim:${t.sim}', { name: '${name}', manifest });`
    }
  });
  afterAll(() => host.close());

${t.test}
  it('ran without a fault', () => {
    expect(drv.status().state).toBe('running');
    expect(drv.status().stats.faults).toBe(0);
  });
});
`;
}

function readme(name: string, t: Template, device: string): string {
  return `# ${name}

A [wasmdrv](${packageRoot()}) driver for ${t.manifest.description ?? device}, written in AssemblyScript against
the \`${SDK_PACKAGE}\` package.

| file | what |
|---|---|
| \`manifest.json\` | what the driver drives (\`match\`) and the grant it needs (regions, ports, DMA, interrupts, limits) |
| \`index.ts\` | the driver: \`probe\`, \`remove\`, \`interrupt\`, \`request\` |
| \`test/driver.test.ts\` | vitest: the driver on wasmdrv's simulated device${t.sim ? ` (\`sim:${t.sim}\`)` : ''} |

\`\`\`sh
npm install          # wasmdrv (host, CLI and ${SDK_PACKAGE}) and vitest; or create with \`wasmdrv new --link\`
npm test             # wasmdrv build . && vitest run
wasmdrv run build/${name}.wasm --device ${t.sim ? `sim:${t.sim}` : 'uioN'} --request 1
wasmdrv pack . --key KEY --out ${name}.wdrv   # a signed package for wasmdrv serve / run
\`\`\`
`;
}

/** Write the folder; returns the files written. Throws if DIR exists and is not empty. */
export function scaffold(
  dirArg: string,
  o: ScaffoldOptions,
): { dir: string; name: string; files: string[]; sim?: string } {
  const dir = resolve(dirArg);
  const name = basename(dir);
  if (!/^[a-z][a-z0-9_-]{0,63}$/.test(name))
    throw new Error(`driver name "${name}": use lower-case letters, digits, - and _ (starting with a letter)`);
  if (existsSync(dir) && readdirSafe(dir).length) throw new Error(`${dir}: exists and is not empty`);
  const t =
    o.device === 'edu'
      ? eduTemplate(name)
      : o.device === 'uart16550'
        ? uartTemplate(name)
        : o.device === 'e1000'
          ? e1000Template(name)
          : manifestTemplate(name, o.device);
  const lang = o.lang && o.lang !== 'as' ? langSource(o.lang, o.device, name) : undefined;
  const root = packageRoot();
  const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const vitestVersion = rootPkg.devDependencies?.vitest ?? '^4.1.0';
  const files: Record<string, string> = {
    'manifest.json': `${JSON.stringify(t.manifest, null, 2)}\n`,
    ...(lang ? lang.files : { 'index.ts': t.source }),
    'test/driver.test.ts': testFile(name, t),
    'package.json': `${JSON.stringify(
      {
        name,
        version: t.manifest.version,
        private: true,
        type: 'module',
        license: t.manifest.license,
        scripts: { build: 'wasmdrv build .', test: 'wasmdrv build . && vitest run' },
        devDependencies: { wasmdrv: `file:${root}`, vitest: vitestVersion },
      },
      null,
      2,
    )}\n`,
    'README.md': lang
      ? readme(name, t, o.device)
          .replace(/^\| `index.ts` \|.*$/m, lang.readme)
          .replace(
            'written in AssemblyScript against\nthe `wasmdrv-sdk` package',
            `written in ${o.lang === 'c' ? 'C' : 'Rust'} (docs/languages.md)`,
          )
      : readme(name, t, o.device),
    '.gitignore': 'build/\nnode_modules/\n*.wdrv\n',
    ...(t.asc && !lang ? { 'asconfig.json': `${JSON.stringify({ options: t.asc }, null, 2)}\n` } : {}),
  };
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  if (o.link) {
    // What `npm install` would do for the two development dependencies, from this installation.
    mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(root, join(dir, 'node_modules', 'wasmdrv'));
    symlinkSync(join(root, 'bin', 'wasmdrv.js'), join(dir, 'node_modules', '.bin', 'wasmdrv'));
    const vitest = join(root, 'node_modules', 'vitest');
    if (existsSync(vitest)) {
      symlinkSync(vitest, join(dir, 'node_modules', 'vitest'));
      symlinkSync(join(vitest, 'vitest.mjs'), join(dir, 'node_modules', '.bin', 'vitest'));
    }
  }
  return { dir, name, files: Object.keys(files), sim: t.sim };
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
