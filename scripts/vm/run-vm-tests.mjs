// npm run test:vm — boot Debian's kernel in QEMU (TCG) with an edu device and a 16550 on COM2, load the
// kernel stub, and run test/vm/guest.mjs with the host's Node over a read-only 9p share of /.
//
// Fails on: a failing or missing check, a guest that does not finish in time, a kernel oops/BUG/WARNING,
// or the UART bytes not arriving on the host side. Prints the guest console when it fails.
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { createConnection } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = join(root, '.vm');
const TIMEOUT_MS = Number(process.env.WASMDRV_VM_TIMEOUT_MS ?? 300_000);
const UART_OUTPUT = 'hello from a sandboxed wasmdrv driver in the guest\n';
const UART_INPUT = 'ping from the host over COM2\n';
const started = Date.now();
const log = (s) => console.log(`[vm] ${s}`);

function kernelVersion() {
  const versions = readdirSync('/boot')
    .filter((f) => /^vmlinuz-.*-amd64$/.test(f))
    .map((f) => f.slice('vmlinuz-'.length))
    .filter((v) => existsSync(`/usr/src/linux-headers-${v}`) && existsSync(`/lib/modules/${v}/modules.dep`))
    .sort();
  if (!versions.length) throw new Error('no Debian kernel with matching headers: run scripts/vm/install-deps.sh');
  return versions.at(-1);
}

/** Modules to load in the guest, dependencies first, from the kernel's modules.dep. */
function moduleChain(kver, wanted) {
  const base = `/lib/modules/${kver}`;
  const deps = new Map();
  for (const line of readFileSync(`${base}/modules.dep`, 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod) deps.set(mod, rest.trim() ? rest.trim().split(/\s+/) : []);
  }
  const builtin = new Set(readFileSync(`${base}/modules.builtin`, 'utf8').split('\n').map((l) => basename(l).replace(/\.ko.*$/, '')));
  const byName = new Map([...deps.keys()].map((p) => [basename(p).replace(/\.ko.*$/, '').replace(/-/g, '_'), p]));
  const order = [];
  const visit = (path) => {
    if (order.includes(path)) return;
    for (const d of deps.get(path) ?? []) visit(d);
    order.push(path);
  };
  for (const name of wanted) {
    const path = byName.get(name.replace(/-/g, '_'));
    if (path) visit(path);
    else if (!builtin.has(name)) throw new Error(`kernel ${kver} has no module ${name}`);
  }
  return order.map((p) => join(base, p));
}

function buildStub(kver) {
  log(`building kernel-stub against /usr/src/linux-headers-${kver}`);
  execFileSync('make', ['-s', '-C', join(root, 'kernel-stub'), `KDIR=/usr/src/linux-headers-${kver}`], { stdio: ['ignore', 'inherit', 'inherit'] });
  const out = execFileSync('make', ['-s', '-C', join(root, 'kernel-stub'), `KDIR=/usr/src/linux-headers-${kver}`], { encoding: 'utf8' });
  if (/warning/i.test(out)) throw new Error(`kernel-stub builds with warnings:\n${out}`);
  return join(root, 'kernel-stub', 'wasmdrv_uio.ko');
}

function buildInitramfs(kver, stubKo) {
  const dir = join(work, 'initramfs');
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['bin', 'proc', 'sys', 'dev', 'modules', 'host']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync('/bin/busybox', join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  copyFileSync(join(root, 'test', 'vm', 'init.sh'), join(dir, 'init'));
  chmodSync(join(dir, 'init'), 0o755);
  copyFileSync(stubKo, join(dir, 'wasmdrv_uio.ko'));
  const chain = moduleChain(kver, ['virtio_pci', '9pnet_virtio', '9p', 'uio', 'uio_pci_generic']);
  const names = [];
  for (const m of chain) {
    let name = basename(m);
    if (name.endsWith('.xz')) {
      name = name.slice(0, -3);
      writeFileSync(join(dir, 'modules', name), execFileSync('xz', ['-dc', m], { maxBuffer: 64 << 20 }));
    } else if (name.endsWith('.zst')) {
      name = name.slice(0, -4);
      writeFileSync(join(dir, 'modules', name), execFileSync('zstd', ['-dc', m], { maxBuffer: 64 << 20 }));
    } else {
      copyFileSync(m, join(dir, 'modules', name));
    }
    names.push(name);
  }
  writeFileSync(join(dir, 'modules.load'), `${names.join('\n')}\n`);
  const image = join(work, 'initramfs.cpio.gz');
  execFileSync('sh', ['-c', `cd "${dir}" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > "${image}"`]);
  log(`initramfs: ${names.length} modules (${names.join(' ')}), ${statSync(image).size >> 10} KiB`);
  return image;
}

/**
 * A self-contained copy of the host for the daemon test: the guest runs it as an ordinary user, who
 * may not be able to read this checkout (CI may clone under a private directory). The CLI is bundled
 * with its npm dependencies; the worker, the addon and the edu driver sit where packageRoot() finds them.
 */
async function stageService() {
  const { build } = await import('esbuild');
  const dir = join(work, 'svc');
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['dist', 'bin', 'native/build/Release', 'build/drivers']) mkdirSync(join(dir, d), { recursive: true });
  await build({ absWorkingDir: root, entryPoints: ['host/cli.ts'], outfile: join(dir, 'dist', 'cli.js'), bundle: true, platform: 'node', format: 'esm', target: 'node24', logLevel: 'warning',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } });
  copyFileSync(join(root, 'dist', 'worker.js'), join(dir, 'dist', 'worker.js'));
  copyFileSync(join(root, 'bin', 'wasmdrv.js'), join(dir, 'bin', 'wasmdrv.js'));
  copyFileSync(join(root, 'native', 'build', 'Release', 'wasmdrv.node'), join(dir, 'native', 'build', 'Release', 'wasmdrv.node'));
  copyFileSync(join(root, 'build', 'drivers', 'edu.wasm'), join(dir, 'build', 'drivers', 'edu.wasm'));
  writeFileSync(join(dir, 'package.json'), '{ "name": "wasmdrv-staged", "type": "module", "private": true }\n');
  return dir;
}

async function main() {
  mkdirSync(work, { recursive: true });
  await stageService();
  for (const f of ['dist/index.js', 'dist/worker.js', 'build/drivers/edu.wasm', 'build/drivers/uart16550.wasm']) {
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run npm run build first`);
  }
  // The C baseline for the in-guest per-register comparison (the guest runs it from the shared root).
  execFileSync('cc', ['-O2', '-Wall', '-pthread', join(root, 'bench', 'native.c'), '-o', join(work, 'native')], { stdio: ['ignore', 'inherit', 'inherit'] });
  const kver = kernelVersion();
  const image = buildInitramfs(kver, buildStub(kver));
  const sock = join(work, 'com2.sock');
  rmSync(sock, { force: true });
  const args = [
    '-accel', 'tcg', '-m', '1024', '-smp', '2', '-no-reboot',
    '-display', 'none', '-monitor', 'none', '-nodefaults',
    '-kernel', `/boot/vmlinuz-${kver}`, '-initrd', image,
    // 8250.nr_uarts=1 keeps the kernel's serial driver to one port; pnpacpi=off makes that port the
    // legacy COM1 (with ACPI PNP enumeration the one port it took was COM2, the test's UART).
    '-append', `console=ttyS0 8250.nr_uarts=1 pnpacpi=off panic=-1 loglevel=4 wasmdrv.project=${root}`,
    '-device', 'edu',
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-chardev', 'stdio,id=console',
    '-device', 'isa-serial,chardev=console,iobase=0x3f8,irq=4',
    '-chardev', `socket,id=com2,path=${sock},server=on,wait=off`,
    '-device', 'isa-serial,chardev=com2,iobase=0x2f8,irq=3',
  ];
  log(`booting: qemu-system-x86_64 ${args.join(' ')}`);
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let console_ = '';
  let com2 = '';
  let uart;
  const checks = [];
  const metrics = [];
  let done = false;
  let booted = 0;

  const connectUart = () => new Promise((resolve) => {
    const tryConnect = (n) => {
      const c = createConnection(sock);
      c.on('connect', () => resolve(c));
      c.on('error', () => (n > 0 ? setTimeout(() => tryConnect(n - 1), 100) : resolve(undefined)));
    };
    tryConnect(100);
  });
  uart = await connectUart();
  if (!uart) throw new Error(`cannot connect to QEMU's COM2 socket ${sock}`);
  uart.on('data', (d) => { com2 += d.toString('latin1'); });

  let pending = '';
  qemu.stdout.on('data', (d) => {
    const s = d.toString('latin1');
    console_ += s;
    pending += s;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).replace(/\r$/, '');
      pending = pending.slice(nl + 1);
      const m = /@@(\w[\w-]*)\s?(.*)$/.exec(line);
      if (!m) continue;
      if (m[1] === 'CHECK') {
        const c = JSON.parse(m[2]);
        checks.push(c);
        console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail ?? ''}`);
      } else if (m[1] === 'METRIC') {
        const x = JSON.parse(m[2]);
        metrics.push(x);
        console.log(`     ${x.name}: ${x.value} ${x.unit}`);
      } else if (m[1] === 'UART-SEND') {
        uart.write(UART_INPUT);
      } else if (m[1] === 'DONE') {
        done = true;
      } else if (m[1] === 'BOOTED') {
        booted = Date.now();
        log(`guest init running (kernel uptime ${m[2]} s)`);
      } else if (m[1] === 'INIT-ERROR') {
        checks.push({ name: 'guest init', ok: false, detail: m[2] });
      }
    }
  });
  qemu.stderr.on('data', (d) => { console_ += d.toString(); });

  const exited = new Promise((resolve) => qemu.on('exit', (code, signal) => resolve({ code, signal })));
  const timer = setTimeout(() => qemu.kill('SIGKILL'), TIMEOUT_MS);
  const { code, signal } = await exited;
  clearTimeout(timer);
  uart.destroy();

  const problems = [];
  if (signal) problems.push(`QEMU was killed (${signal}) after ${TIMEOUT_MS / 1000} s: the guest did not finish`);
  else if (code !== 0) problems.push(`QEMU exited with ${code}`);
  if (!done) problems.push('the guest test did not reach its end (@@DONE)');
  const kernelTrouble = console_.split('\n').filter((l) => /\b(BUG:|WARNING:|Oops|Call Trace|Kernel panic)/.test(l));
  if (kernelTrouble.length) problems.push(`the kernel complained:\n  ${kernelTrouble.slice(0, 10).join('\n  ')}`);
  const uartOk = com2.includes(UART_OUTPUT);
  checks.push({ name: 'uart16550: the host received the driver\'s bytes on COM2', ok: uartOk, detail: JSON.stringify(com2.slice(0, 120)) });
  console.log(`${uartOk ? 'ok  ' : 'FAIL'} uart16550: the host received the driver's bytes on COM2: ${JSON.stringify(com2.slice(0, 120))}`);
  const expected = ['stub: edu appears as a UIO device', 'edu via wasmdrv_uio: factorials', 'edu via wasmdrv_uio: dma', 'uart16550 via port I/O: receive through interrupts',
    'daemon: a client process computes factorials through it', 'edu via uio_pci_generic: factorials',
    'edu via wasmdrv_uio: register accesses go through the Wasm gate', 'edu via wasmdrv_uio: per-register cost measured against C'];
  for (const name of expected) if (!checks.some((c) => c.name === name)) problems.push(`check "${name}" never ran`);

  const failed = checks.filter((c) => !c.ok);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (failed.length || problems.length) {
    console.log('\n---- guest console ----');
    console.log(console_.replace(/\r/g, ''));
    console.log('---- end of guest console ----');
    for (const p of problems) console.log(`problem: ${p}`);
  }
  writeFileSync(join(work, 'metrics.json'), `${JSON.stringify({ date: new Date().toISOString(), metrics }, null, 2)}\n`);
  log(`total ${seconds} s (boot to init ${booted ? ((booted - started) / 1000).toFixed(1) : '?'} s)`);
  console.log(`${checks.length - failed.length} passed, ${failed.length + problems.length} failed`);
  process.exit(failed.length || problems.length ? 1 : 0);
}

main().catch((err) => {
  console.error(`[vm] ${err.stack ?? err}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
