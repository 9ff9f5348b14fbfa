// Runs inside the QEMU guest (chrooted into the host's root, shared read-only over 9p), as root, after
// the init script has loaded the kernel stub. Drives real (emulated) devices through /dev/uio* with the
// same Wasm drivers the simulated tests use, and reports each check as a line the harness parses:
//   @@CHECK {"name":..., "ok":..., "detail":...}
//   @@METRIC {"name":..., "value":..., "unit":...}
//   @@UART-SEND   (the harness then writes UART_INPUT to COM2)
//   @@DONE
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const project = process.argv[2];
const { Host, discoverUio, demo } = await import(join(project, 'dist', 'index.js'));
const drivers = join(project, 'build', 'drivers');
const UART_OUTPUT = 'hello from a sandboxed wasmdrv driver in the guest\n';
const UART_INPUT = 'ping from the host over COM2\n';

const emit = (tag, o) => console.log(`@@${tag} ${JSON.stringify(o)}`);
const check = (name, ok, detail) => emit('CHECK', { name, ok: !!ok, detail });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const u32 = (...v) => new Uint8Array(Uint32Array.from(v).buffer);

async function step(name, fn) {
  try {
    await fn();
  } catch (err) {
    check(name, false, `threw: ${err?.stack ?? err}`);
  }
}

function findUio(name) {
  return discoverUio().find((u) => u.name === name);
}

await step('stub devices', async () => {
  const edu = findUio('wasmdrv-edu');
  check('stub: edu appears as a UIO device', edu, edu ? `${edu.id} pci ${edu.pci?.slot} ${edu.pci?.vendor.toString(16)}:${edu.pci?.device.toString(16)}` : 'missing');
  if (edu) {
    const [bar0, dma] = edu.maps;
    check('stub: edu maps BAR0 (1 MiB) and a DMA buffer with its bus address', bar0?.name === 'bar0' && bar0.size === 0x100000 && dma?.name === 'dma' && dma.size >= 4096 && dma.addr > 0n && dma.addr < 1n << 28n,
      `bar0 ${bar0?.addr.toString(16)}+${bar0?.size.toString(16)}, dma bus 0x${dma?.addr.toString(16)}+${dma?.size.toString(16)}`);
  }
  const uart = findUio('wasmdrv-uart16550');
  check('stub: the 16550 appears as a UIO port region', uart && uart.ports[0]?.start === 0x2f8 && uart.ports[0]?.size === 8 && uart.ports[0]?.type === 'port_x86',
    uart ? JSON.stringify(uart.ports) : 'missing');
});

await step('edu demo on the stub', async () => {
  const edu = findUio('wasmdrv-edu');
  const r = await demo({ device: edu.id, driver: join(drivers, 'edu.wasm'), json: true });
  for (const c of r.checks) check(`edu via wasmdrv_uio: ${c.name}`, c.ok, c.detail);
  emit('METRIC', { name: 'edu demo (stub)', value: r.summary.ms, unit: 'ms' });
});

await step('interrupt round trip', async () => {
  const edu = findUio('wasmdrv-edu');
  const host = new Host();
  try {
    const drv = await host.load(join(drivers, 'edu.wasm'), edu.id, { name: 'edu-rtt' });
    const perIrq = [];
    const reps = 20, raises = 25;
    for (let i = 0; i < reps; i++) {
      const t0 = process.hrtime.bigint();
      const seen = new Uint32Array((await drv.request(3, u32(raises, 0x1000))).slice().buffer)[0];
      const t1 = process.hrtime.bigint();
      if (seen !== raises) throw new Error(`raised ${raises}, saw ${seen}`);
      perIrq.push(Number(t1 - t0) / raises / 1000);
    }
    perIrq.sort((a, b) => a - b);
    const median = perIrq[perIrq.length >> 1];
    check('edu via wasmdrv_uio: interrupt round trips counted exactly', true, `${reps * raises} raises, every one seen`);
    emit('METRIC', { name: 'interrupt round trip (raise register write -> stub ack -> UIO count -> driver wait returns)', value: Math.round(median), unit: 'us median' });
  } finally {
    await host.close();
  }
});

await step('uart', async () => {
  const uart = findUio('wasmdrv-uart16550');
  const host = new Host();
  try {
    const drv = await host.load(join(drivers, 'uart16550.wasm'), uart.id, { name: 'uart' });
    const out = new TextEncoder().encode(UART_OUTPUT);
    const wrote = new Uint32Array((await drv.request(1, out)).slice().buffer)[0];
    check('uart16550 via port I/O: transmit', wrote === out.length, `${wrote} of ${out.length} bytes written to THR`);
    console.log('@@UART-SEND');
    let got = '';
    for (let i = 0; i < 100 && !got.endsWith('\n'); i++) {
      got += new TextDecoder().decode(await drv.request(2, u32(0, 100)));
    }
    const stats = new Uint32Array((await drv.request(3)).slice().buffer);
    check('uart16550 via port I/O: receive through interrupts', got === UART_INPUT && stats[0] > 0, `got ${JSON.stringify(got)} with ${stats[0]} interrupts`);
  } finally {
    await host.close();
  }
});

// The daemon as an ordinary user (uid/gid 4242), with what the udev rule would do applied by hand
// (the initramfs has no udevd): the edu UIO node given to the daemon's group, mode 0660.
await step('daemon as non-root', async () => {
  const { spawn, execFileSync } = await import('node:child_process');
  const { mkdirSync, chownSync, chmodSync, readFileSync: read } = await import('node:fs');
  const edu = findUio('wasmdrv-edu');
  const DAEMON = 4242;
  execFileSync('cp', ['-r', join(project, '.vm', 'svc'), '/mnt/svc']);
  execFileSync('chown', ['-R', `${DAEMON}:${DAEMON}`, '/mnt/svc']);
  chownSync(edu.devNode, 0, DAEMON); // udev: GROUP="wasmdrv", MODE="0660"
  chmodSync(edu.devNode, 0o660);
  mkdirSync('/mnt/svc/run', { recursive: true });
  chownSync('/mnt/svc/run', DAEMON, DAEMON);
  writeFileSync('/mnt/svc/config.json', JSON.stringify({ socket: '/mnt/svc/run/wasmdrv.sock', mode: '0666', drivers: [{ name: 'edu', driver: '/mnt/svc/build/drivers/edu.wasm', device: edu.id }] }));
  const daemon = spawn(process.execPath, ['/mnt/svc/bin/wasmdrv.js', 'serve', '--config', '/mnt/svc/config.json'], { uid: DAEMON, gid: DAEMON, stdio: ['ignore', 'inherit', 'pipe'] });
  let log = '';
  daemon.stderr.on('data', (d) => (log += d));
  for (let i = 0; i < 100 && !log.includes('ready'); i++) await sleep(100);
  try {
    const uid = /Uid:\s+(\d+)/.exec(read(`/proc/${daemon.pid}/status`, 'utf8'))?.[1];
    check('daemon: serves the edu UIO device as uid 4242, not root', log.includes('ready') && uid === String(DAEMON), `uid ${uid}; ${log.trim().split('\n').slice(-2).join(' | ')}`);
    const { ServiceClient } = await import(join(project, 'dist', 'index.js'));
    const c = await ServiceClient.connect('/mnt/svc/run/wasmdrv.sock');
    const answers = await Promise.all([5, 10, 12].map((n) => c.call('edu', 2, u32(n)).then((r) => new Uint32Array(r.slice().buffer)[0])));
    c.close();
    check('daemon: a client process computes factorials through it', answers.join() === '120,3628800,479001600', answers.join(', '));
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    chmodSync(edu.devNode, 0o600);
  }
});

await step('uio_pci_generic', async () => {
  const edu = findUio('wasmdrv-edu');
  const slot = edu.pci.slot;
  writeFileSync('/sys/bus/pci/drivers/wasmdrv_uio/unbind', slot);
  writeFileSync('/sys/bus/pci/drivers/uio_pci_generic/new_id', '1234 11e8');
  let dev;
  for (let i = 0; i < 50 && !dev; i++) {
    dev = discoverUio().find((u) => u.name === 'uio_pci_generic' && u.pci?.slot === slot);
    if (!dev) await sleep(100);
  }
  check('uio_pci_generic: edu rebinds', dev, dev ? `${dev.id} at ${slot}` : 'no uio_pci_generic device appeared');
  const r = await demo({ device: dev.id, driver: join(drivers, 'edu.wasm'), json: true });
  for (const c of r.checks) check(`edu via uio_pci_generic: ${c.name}`, c.ok, c.detail);
});

console.log('@@DONE');
process.exit(0);
