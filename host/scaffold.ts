// `wasmdrv new NAME --device edu|uart16550|MANIFEST`: a driver folder that builds and passes its test
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
  /** edu, uart16550, or the path of a manifest.json to start from. */
  device: string;
  lang?: 'as' | 'c' | 'rust';
  /** Link wasmdrv and vitest from this installation into DIR/node_modules (no npm install needed). */
  link?: boolean;
}

export const BUILTIN_DEVICES = ['edu', 'uart16550'] as const;

interface Template {
  manifest: Manifest;
  source: string;
  /** The test's body: what the simulated device must answer. */
  test: string;
  sim?: string;
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
  return `// ${name} against wasmdrv's simulated ${t.sim} (run: npm test, which builds first).
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, type Driver } from 'wasmdrv';

const wasm = fileURLToPath(new URL('../build/${name}.wasm', import.meta.url));
const u32 = (...v: number[]) => new Uint8Array(new Uint32Array(v).buffer);
const words = (b: Uint8Array) => Array.from(new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2));

describe('${name} on sim:${t.sim}', () => {
  const host = new Host();
  let drv: Driver;
  beforeAll(async () => {
    drv = await host.load(wasm, 'sim:${t.sim}', { name: '${name}' });
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
