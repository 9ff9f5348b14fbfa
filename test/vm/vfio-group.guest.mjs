// Runs inside the QEMU guest of scripts/vm/scenarios/vfio-group.mjs (q35 + intel-iommu, two edus behind
// a PCIe-to-PCI bridge, vfio-pci and uio_pci_generic loaded), as root. Reports @@CHECK lines and @@DONE.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const project = process.argv[2];
const { Host, ServiceClient, discoverPci } = await import(join(project, 'dist', 'index.js'));
const drivers = join(project, 'build', 'drivers');
const cli = join(project, 'bin', 'wasmdrv.js');

const emit = (tag, o) => console.log(`@@${tag} ${JSON.stringify(o)}`);
const check = (name, ok, detail) => emit('CHECK', { name, ok: !!ok, detail });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const u32 = (...v) => new Uint8Array(Uint32Array.from(v).buffer);
const word = (b) => new Uint32Array(b.slice().buffer)[0];
const wasmdrv = (...args) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
const limits = { deadlineMs: 15000 }; // TCG with an emulated IOMMU starts workers slowly
const DAEMON = 4242;

async function step(name, fn) {
  try {
    await fn();
  } catch (err) {
    check(name, false, `threw: ${err?.stack ?? err}`);
  }
}

const edus = discoverPci()
  .filter((d) => d.vendor === 0x1234 && d.device === 0x11e8)
  .sort((x, y) => x.slot.localeCompare(y.slot));
const [a, b] = edus;
const fds = () => readdirSync('/proc/self/fd').length;

await step('vfio-group: two edus behind a PCIe-to-PCI bridge share one IOMMU group', async () => {
  const members = a ? readdirSync(`/sys/kernel/iommu_groups/${a.iommuGroup}/devices`) : [];
  check(
    'vfio-group: two edus behind a PCIe-to-PCI bridge share one IOMMU group',
    edus.length === 2 && a.iommuGroup !== undefined && a.iommuGroup === b.iommuGroup,
    `${edus.map((d) => `${d.slot} group ${d.iommuGroup}`).join(', ')}; group members ${members.join(' ')}`,
  );
});

await step('vfio-group: refusal', async () => {
  const rb = wasmdrv('bind', b.slot, '--uio');
  const ra = wasmdrv('bind', a.slot, '--vfio');
  if (rb.status !== 0 || ra.status !== 0) throw new Error(`bind: ${rb.stderr} ${ra.stderr}`);
  const before = fds();
  const host = new Host();
  let err;
  try {
    const dev = host.openDevice(`vfio:${a.slot}`);
    await host.load(join(drivers, 'edu.wasm'), dev, { name: 'edu', limits });
  } catch (e) {
    err = e;
  } finally {
    await host.close();
  }
  const msg = String(err?.message ?? 'no error');
  check(
    'vfio-group: a device whose group-mate is bound to uio_pci_generic is refused, naming it and the fix',
    err && msg.includes(`IOMMU group ${a.iommuGroup}`) && msg.includes(b.slot) && msg.includes('uio_pci_generic') && msg.includes(`wasmdrv bind ${b.slot} --vfio`),
    msg,
  );
  const cliRun = wasmdrv('run', join(drivers, 'edu.wasm'), '--device', `vfio:${a.slot}`);
  const lines = cliRun.stderr.trim().split('\n');
  // One line naming the device and the group, no stack trace (the CLI convention).
  check(
    'vfio-group: nothing is left open after the refusal',
    fds() === before && cliRun.status === 1 && lines.length === 1 && lines[0].includes('is not viable') && lines[0].includes(b.slot),
    `fds ${before} -> ${fds()}; CLI exit ${cliRun.status}: ${lines.slice(0, 3).join(' | ')} (stdout ${JSON.stringify(cliRun.stdout.slice(0, 200))})`,
  );
});

await step('vfio-group: with both in vfio-pci the device serves', async () => {
  const rb = wasmdrv('bind', b.slot, '--vfio');
  if (rb.status !== 0) throw new Error(`bind ${b.slot} --vfio: ${rb.stderr}`);
  const host = new Host();
  try {
    const drv = await host.load(join(drivers, 'edu.wasm'), host.openDevice(`vfio:${a.slot}`), { name: 'edu', limits });
    const f = word(await drv.request(2, u32(10)));
    check('vfio-group: with both in vfio-pci the device serves', f === 3628800, `10! = ${f}`);
  } finally {
    await host.close();
  }
});

// The real udevd (the host's, over the shared root) with the project's rule. /etc and /run are the
// host's, read-only: the guest lays tmpfs copies over them so the rule's group "wasmdrv" exists.
await step('vfio-group: daemon as non-root', async () => {
  const group = `/dev/vfio/${a.iommuGroup}`;
  cpSync('/etc', '/mnt/etc', { recursive: true, verbatimSymlinks: true });
  writeFileSync('/mnt/etc/group', `${readFileSync('/etc/group', 'utf8')}wasmdrv:x:${DAEMON}:\n`);
  execFileSync('mount', ['--bind', '/mnt/etc', '/etc']);
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', '/run']);
  mkdirSync('/run/udev/rules.d', { recursive: true });
  cpSync(join(project, 'deploy', 'udev', '70-wasmdrv-vfio.rules'), '/run/udev/rules.d/70-wasmdrv-vfio.rules');
  // The guest script runs in a chroot (test/vm/init.sh), where systemd's tools refuse to act unless told.
  const env = { ...process.env, SYSTEMD_IGNORE_CHROOT: '1' };
  const udevd = spawn('/lib/systemd/systemd-udevd', [], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let udevLog = '';
  udevd.stderr.on('data', (d) => (udevLog += d));
  try {
    for (let i = 0; i < 50 && !existsSync('/run/udev/control'); i++) await sleep(100);
    execFileSync('udevadm', ['trigger', '--subsystem-match=vfio', '--action=add'], { env });
    execFileSync('udevadm', ['settle', '--timeout=30'], { env });
    const st = statSync(group);
    check(
      'vfio-group: udevd applies the rule: the group node belongs to the wasmdrv group, mode 0660',
      st.gid === DAEMON && (st.mode & 0o777) === 0o660,
      `${group}: gid ${st.gid}, mode ${(st.mode & 0o777).toString(8)}${udevLog ? `; udevd: ${udevLog.trim().split('\n').slice(-2).join(' | ')}` : ''}`,
    );
  } finally {
    udevd.kill('SIGTERM');
  }

  execFileSync('cp', ['-r', join(project, '.vm', 'svc'), '/mnt/svc']);
  mkdirSync('/mnt/svc/run', { recursive: true });
  // edu's own grant, with the longest deadline the default caps allow: TCG with an emulated IOMMU.
  const manifest = JSON.parse(readFileSync(join(project, 'guest-drivers', 'edu', 'manifest.json'), 'utf8'));
  manifest.limits = { ...manifest.limits, deadlineMs: 10_000 };
  writeFileSync('/mnt/svc/edu.manifest.json', JSON.stringify(manifest));
  writeFileSync(
    '/mnt/svc/config.json',
    JSON.stringify({
      socket: '/mnt/svc/run/wasmdrv.sock',
      mode: '0666',
      drivers: [
        { name: 'edu', driver: '/mnt/svc/build/drivers/edu.wasm', device: `vfio:${a.slot}`, manifest: '/mnt/svc/edu.manifest.json' },
      ],
    }),
  );
  execFileSync('chown', ['-R', `${DAEMON}:${DAEMON}`, '/mnt/svc']);
  // As the unit does: LimitMEMLOCK= for the pinned DMA windows, then the service user (setpriv drops root).
  const daemon = spawn(
    'prlimit',
    ['--memlock=67108864', '--', 'setpriv', `--reuid=${DAEMON}`, `--regid=${DAEMON}`, '--clear-groups', process.execPath, '/mnt/svc/bin/wasmdrv.js', 'serve', '--config', '/mnt/svc/config.json'],
    { stdio: ['ignore', 'inherit', 'pipe'] },
  );
  let log = '';
  daemon.stderr.on('data', (d) => (log += d));
  for (let i = 0; i < 600 && !log.includes('ready') && daemon.exitCode === null; i++) await sleep(100);
  try {
    const node = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .find((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('/mnt/svc/bin/wasmdrv.js');
        } catch {
          return false;
        }
      });
    const uid = node && /Uid:\s+(\d+)/.exec(readFileSync(`/proc/${node}/status`, 'utf8'))?.[1];
    check(
      'vfio-group: the daemon serves the device over VFIO as uid 4242, not root',
      log.includes('ready') && uid === String(DAEMON),
      `uid ${uid}; ${log.trim().split('\n').slice(-3).join(' | ')}`,
    );
    const c = await ServiceClient.connect('/mnt/svc/run/wasmdrv.sock');
    const answers = await Promise.all([5, 10, 12].map((n) => c.call('edu', 2, u32(n)).then(word)));
    c.close();
    check('vfio-group: a client process computes factorials through it', answers.join() === '120,3628800,479001600', answers.join(', '));
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => (daemon.exitCode !== null ? r() : daemon.once('exit', r)));
  }
});

console.log('@@DONE');
