// The first VM scenario: QEMU's edu device behind the project's UIO stub (and then uio_pci_generic),
// a 16550 on COM2 driven through port I/O, the daemon as a non-root user. Guest: test/vm/guest.mjs.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { createRequire } from 'node:module';

const UART_OUTPUT = 'hello from a sandboxed wasmdrv driver in the guest\n';
const UART_INPUT = 'ping from the host over COM2\n';

/**
 * A self-contained copy of the host for the daemon test: the guest runs it as an ordinary user, who
 * may not be able to read this checkout (CI may clone under a private directory). The CLI is bundled
 * with its npm dependencies; the worker, the addon and the edu driver sit where packageRoot() finds them.
 */
export async function stageService(root, work) {
  const { build } = await import('esbuild');
  const dir = join(work, 'svc');
  rmSync(dir, { recursive: true, force: true });
  // The addon node-gyp-build picks (a local build or the prebuild), at the same place under the copy.
  const addon = relative(root, createRequire(join(root, 'package.json'))('node-gyp-build').path(join(root, 'native')));
  for (const d of ['dist', 'bin', dirname(addon), 'build/drivers']) mkdirSync(join(dir, d), { recursive: true });
  await build({
    absWorkingDir: root,
    entryPoints: ['host/cli.ts'],
    outfile: join(dir, 'dist', 'cli.js'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    logLevel: 'warning',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  // The worker too is bundled with its npm dependencies (it loads the addon through node-gyp-build).
  await build({
    absWorkingDir: root,
    entryPoints: ['host/sandbox/worker.ts'],
    outfile: join(dir, 'dist', 'worker.js'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  copyFileSync(join(root, 'bin', 'wasmdrv.js'), join(dir, 'bin', 'wasmdrv.js'));
  copyFileSync(join(root, addon), join(dir, addon));
  copyFileSync(join(root, 'build', 'drivers', 'edu.wasm'), join(dir, 'build', 'drivers', 'edu.wasm'));
  writeFileSync(join(dir, 'package.json'), '{ "name": "wasmdrv-staged", "type": "module", "private": true }\n');
  return dir;
}

export default {
  name: 'uio',
  description: 'edu behind wasmdrv_uio and uio_pci_generic, a 16550 on COM2, the daemon as non-root',
  guest: 'test/vm/guest.mjs',
  modules: ['uio', 'uio_pci_generic'],
  stub: 'uart_port=0x2f8 uart_irq=3',
  // 8250.nr_uarts=1 keeps the kernel's serial driver to one port; pnpacpi=off makes that port the
  // legacy COM1 (with ACPI PNP enumeration the one port it took was COM2, the test's UART).
  append: '8250.nr_uarts=1 pnpacpi=off',
  needs: [
    'dist/index.js',
    'dist/worker.js',
    'dist/gate-compiler.js',
    'build/drivers/edu.wasm',
    'build/drivers/uart16550.wasm',
    'build/drivers/edu-c.wasm',
    'build/drivers/edu-rust.wasm',
  ],
  expected: [
    'stub: edu appears as a UIO device',
    'edu via wasmdrv_uio: factorials',
    'edu via wasmdrv_uio: dma',
    'uart16550 via port I/O: receive through interrupts',
    'daemon: a client process computes factorials through it',
    'edu via uio_pci_generic: factorials',
    'edu via wasmdrv_uio: register accesses go through the Wasm gate',
    'edu via wasmdrv_uio: per-register cost measured against C',
    "uart16550: the host received the driver's bytes on COM2",
    'edu-c via wasmdrv_uio: factorials',
    'edu-c via wasmdrv_uio: dma',
    'edu-rust via wasmdrv_uio: factorials',
    'edu-rust via wasmdrv_uio: dma',
  ],

  async prepare(ctx) {
    await stageService(ctx.root, ctx.work);
    // The C baseline for the in-guest per-register comparison (the guest runs it from the shared root).
    execFileSync(
      'cc',
      ['-O2', '-Wall', '-pthread', join(ctx.root, 'bench', 'native.c'), '-o', join(ctx.work, 'native')],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    ctx.sock = join(ctx.work, 'com2.sock');
    rmSync(ctx.sock, { force: true });
  },

  qemu(ctx) {
    return [
      '-device',
      'edu',
      '-chardev',
      `socket,id=com2,path=${ctx.sock},server=on,wait=off`,
      '-device',
      'isa-serial,chardev=com2,iobase=0x2f8,irq=3',
    ];
  },

  /** After QEMU starts: connect to COM2 and keep what the driver sends. */
  async started(ctx) {
    ctx.com2 = '';
    ctx.uart = await new Promise((resolve) => {
      const tryConnect = (n) => {
        const c = createConnection(ctx.sock);
        c.on('connect', () => resolve(c));
        c.on('error', () => (n > 0 ? setTimeout(() => tryConnect(n - 1), 100) : resolve(undefined)));
      };
      tryConnect(100);
    });
    if (!ctx.uart) throw new Error(`cannot connect to QEMU's COM2 socket ${ctx.sock}`);
    ctx.uart.on('data', (d) => {
      ctx.com2 += d.toString('latin1');
    });
  },

  /** A guest line `@@TAG rest` the harness does not know. */
  onTag(ctx, tag) {
    if (tag === 'UART-SEND') ctx.uart.write(UART_INPUT);
  },

  /** After QEMU exits: the host-side checks. */
  finished(ctx) {
    ctx.uart?.destroy();
    const ok = (ctx.com2 ?? '').includes(UART_OUTPUT);
    return [
      {
        name: "uart16550: the host received the driver's bytes on COM2",
        ok,
        detail: JSON.stringify((ctx.com2 ?? '').slice(0, 120)),
      },
    ];
  },
};
