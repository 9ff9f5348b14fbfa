// Two e1000s on one QEMU hub: NIC A under wasmdrv (the kernel stub, the sandboxed e1000 driver, a TAP
// interface for the kernel's stack), NIC B under the guest kernel's own e1000 driver in another network
// namespace, so traffic really crosses the emulated wire. Guest: test/vm/e1000.guest.mjs.
// The link of NIC A is pulled and plugged from the host through QMP when the guest asks (@@LINK down|up).
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { rmSync } from 'node:fs';

export const NIC_A_MAC = '52:54:00:00:0a:0a';
export const NIC_B_MAC = '52:54:00:00:0b:0b';

/**
 * WASMDRV_E1000_ONLY=reload runs only the hand-over, net up, the reload flood and the link checks (a
 * quicker loop while looking at reloads): the guest sees wasmdrv.e1000=reload on its command line.
 */
export const ONLY = process.env.WASMDRV_E1000_ONLY;
const SKIPPED_WHEN_ONLY = ['ping from', 'TCP transfer'];

/** The guest's checks, prefixed 'e1000' (UIO) or 'e1000 via vfio'; only how NIC A changes hands differs. */
export function checks(prefix, handover) {
  return [
    handover,
    'wasmdrv net up bridges NIC A to a TAP',
    'ping from the TAP side to the kernel-driven NIC',
    'ping from the kernel-driven NIC to the TAP side',
    'a 4 MiB TCP transfer arrives intact (md5 at both ends)',
    'kill mid-transfer: the driver restarts (reset, probe), link up, the TCP transfer completes intact',
    'hot reload during a ping flood: every reload takes the rings over, the flood goes on',
    'link down seen by the driver (TAP loses carrier)',
    'link up seen by the driver (TAP carrier back)',
    'the bridge counted traffic and no errors',
  ]
    .filter((c) => !ONLY || !SKIPPED_WHEN_ONLY.some((k) => c.includes(k)))
    .map((c) => `${prefix}: ${c}`);
}

/** The guest's @@INFO lines (the reload flood's breakdown) go to the log as they come. */
export function onTag(ctx, tag, rest) {
  if (tag === 'LINK') ctx.qmp.send({ execute: 'set_link', arguments: { name: 'nicA', up: rest.trim() === 'up' } });
  else if (tag === 'INFO') console.log(`     ${rest}`);
}

function qmp(path) {
  return new Promise((resolve, reject) => {
    const tryConnect = (n) => {
      const c = createConnection(path);
      c.once('connect', () => {
        c.write('{"execute":"qmp_capabilities"}\n');
        resolve({ send: (cmd) => c.write(`${JSON.stringify(cmd)}\n`), close: () => c.destroy() });
      });
      c.once('error', (err) => (n > 0 ? setTimeout(() => tryConnect(n - 1), 100) : reject(err)));
      c.on('data', () => {});
    };
    tryConnect(100);
  });
}

export default {
  name: 'e1000',
  description: 'two e1000s on a hub: one sandboxed and bridged to a TAP, one under the kernel in another netns',
  guest: 'test/vm/e1000.guest.mjs',
  modules: ['uio', 'e1000', 'tun'],
  stub: 'dma_size=262144',
  append: ONLY ? `wasmdrv.e1000=${ONLY}` : '',
  needs: ['dist/index.js', 'dist/worker.js', 'dist/gate-compiler.js', 'dist/cli.js', 'build/drivers/e1000.wasm'],
  expected: checks('e1000', 'NIC A moves to wasmdrv_uio (driver_override)'),
  timeoutMs: 400_000,

  prepare(ctx) {
    ctx.qmpPath = join(ctx.work, 'e1000-qmp.sock');
    rmSync(ctx.qmpPath, { force: true });
  },

  qemu(ctx) {
    return [
      '-qmp',
      `unix:${ctx.qmpPath},server=on,wait=off`,
      '-netdev',
      'hubport,id=p0,hubid=0',
      '-device',
      `e1000,id=nicA,netdev=p0,mac=${NIC_A_MAC}`,
      '-netdev',
      'hubport,id=p1,hubid=0',
      '-device',
      `e1000,id=nicB,netdev=p1,mac=${NIC_B_MAC}`,
    ];
  },

  async started(ctx) {
    ctx.qmp = await qmp(ctx.qmpPath);
  },

  onTag,

  finished(ctx) {
    ctx.qmp?.close();
    return [];
  },
};
