// `wasmdrv serve` under a Type=notify unit, with this test standing in for systemd: a real AF_UNIX
// datagram socket as $NOTIFY_SOCKET (the addon's unixDgramBind, SO_PASSCRED on, as systemd's), the
// daemon as a child process, SIGHUP as the unit's ExecReload sends it.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNative } from '../host/native.ts';
import { ServiceClient } from '../host/service/client.ts';
import { driverPath, root, u32 } from './helpers.ts';

const native = loadNative();
const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-notify-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(root, 'bin', 'wasmdrv.js');

/** A driver's line in the daemon's status reply. */
type Entry = { name: string; device: string; state: string };

interface Datagram {
  fields: Record<string, string>;
  pid: number;
}

/** The systemd side: every datagram that arrives, parsed into its fields. */
class NotifySocket {
  readonly fd: number;
  readonly got: Datagram[] = [];
  constructor(readonly path: string) {
    this.fd = native.unixDgramBind(path);
  }
  drain(): void {
    for (let m = native.unixDgramRecv(this.fd); m; m = native.unixDgramRecv(this.fd)) {
      const fields = Object.fromEntries(
        m.data.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      this.got.push({ fields, pid: m.pid });
    }
  }
  /** Wait (bounded) for the next datagram with `field` after index `from`; its index. */
  async next(field: string, from: number, exited?: () => boolean): Promise<number> {
    for (let i = 0; i < 1200; i++) {
      this.drain();
      const at = this.got.findIndex((d, j) => j >= from && field in d.fields);
      if (at >= 0) return at;
      if (exited?.()) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no ${field} datagram after #${from}; got ${JSON.stringify(this.got.map((d) => d.fields))}`);
  }
  close(): void {
    native.close(this.fd);
  }
}

function config(name: string, drivers: unknown[], extra: Record<string, unknown> = {}): string {
  const file = join(tmp, name);
  writeFileSync(
    file,
    JSON.stringify({ socket: join(tmp, `${name.replace(/\.json$/, '')}.sock`), drivers, ...extra }, null, 2),
  );
  return file;
}

function serve(file: string, notifySocket: string): { daemon: ChildProcess; err: () => string; exited: () => boolean } {
  const daemon = spawn(process.execPath, [bin, 'serve', '--config', file], {
    cwd: tmp,
    env: { ...process.env, NOTIFY_SOCKET: notifySocket },
  });
  let err = '';
  let exited = false;
  daemon.stderr!.on('data', (d) => (err += d));
  daemon.once('exit', () => (exited = true));
  return { daemon, err: () => err, exited: () => exited };
}

/** The daemon's stderr is a pipe read apart from the datagrams: wait (bounded) for a line to arrive. */
async function logged(err: () => string, re: RegExp): Promise<string> {
  for (let i = 0; i < 600 && !re.test(err()); i++) await new Promise((r) => setTimeout(r, 50));
  return err();
}

const edu = (name: string, device: string) => ({ name, driver: driverPath('edu'), device });

describe('serve under Type=notify', () => {
  it('READY=1 after every driver probed, RELOADING=1/READY=1 around a re-read on SIGHUP, STOPPING=1', async () => {
    const file = config('ok.json', [
      edu('edu', 'sim:edu'),
      { name: 'uart', driver: driverPath('uart16550'), device: 'sim:uart16550' },
    ]);
    const sock = join(tmp, 'ok.sock');
    const ns = new NotifySocket(join(tmp, 'notify'));
    const { daemon, err, exited } = serve(file, ns.path);
    let c: ServiceClient | undefined;
    try {
      const ready = await ns.next('READY', 0, exited);
      // Before it: the probing of each driver, in config order; all of it from the daemon's own pid
      // (what NotifyAccess=main accepts).
      const before = ns.got.slice(0, ready).map((d) => d.fields.STATUS);
      expect(before.findIndex((s) => s?.startsWith('probing edu on sim:edu (1/2)'))).toBeGreaterThanOrEqual(0);
      expect(before.findIndex((s) => s?.startsWith('probing uart on sim:uart16550 (2/2)'))).toBeGreaterThan(
        before.findIndex((s) => s?.startsWith('probing edu')),
      );
      expect(ns.got[ready].fields.STATUS).toBe(`serving 2 driver(s) on ${sock}: edu, uart`);
      expect(ns.got.every((d) => d.pid === daemon.pid)).toBe(true);
      // Once READY=1 is out, every driver has probed: both serve at once.
      c = await ServiceClient.connect(sock);
      const st = await c.status();
      expect(st.drivers.map((d: Entry) => [d.name, d.state])).toEqual([
        ['edu', 'running'],
        ['uart', 'running'],
      ]);
      expect((await c.call('edu', 2, u32(5))).length).toBeGreaterThan(0);
      c.close();
      c = undefined;

      // A changed config: uart dropped, edu2 added on a second simulated edu, edu untouched.
      config('ok.json', [edu('edu', 'sim:edu'), edu('edu2', 'sim:edu:2')]);
      daemon.kill('SIGHUP');
      const reloading = await ns.next('RELOADING', ready + 1, exited);
      expect(ns.got[reloading].fields.MONOTONIC_USEC).toMatch(/^\d+$/);
      const ready2 = await ns.next('READY', reloading, exited);
      expect(ns.got[ready2].fields.STATUS).toBe(`serving 2 driver(s) on ${sock}: edu, edu2`);
      c = await ServiceClient.connect(sock);
      expect((await c.status()).drivers.map((d: Entry) => [d.name, d.state])).toEqual([
        ['edu', 'running'],
        ['edu2', 'running'],
      ]);
      expect((await c.call('edu2', 2, u32(5))).length).toBeGreaterThan(0);
      await expect(c.call('uart', 1, new Uint8Array())).rejects.toThrow(/no driver "uart"/);
      expect(await logged(err, /config re-read/)).toMatch(
        /config re-read: added \[edu2\] removed \[uart\] reloaded \[\] replaced \[\]/,
      );

      // A bad config (a misspelt field): RELOADING=1, READY=1 again, one line naming file:line and the
      // field, and the running set exactly as it was.
      writeFileSync(
        file,
        JSON.stringify(
          { socket: sock, drivers: [edu('edu', 'sim:edu'), { ...edu('edu2', 'sim:edu:2'), devce: 'x' }] },
          null,
          2,
        ),
      );
      daemon.kill('SIGHUP');
      const reloading3 = await ns.next('RELOADING', ready2 + 1, exited);
      const ready3 = await ns.next('READY', reloading3, exited);
      expect(ns.got[ready3].fields.STATUS).toContain('config not applied');
      const bad = (await logged(err, /config not applied/)).split('\n').filter((l) => l.includes('config not applied'));
      expect(bad).toEqual([
        `[wasmdrv] config not applied, drivers unchanged: ${file}:13: drivers.1.devce: unknown field`,
      ]);

      // Another driver file for edu (hot-reloaded in place), another device for edu2 (stopped, loaded anew).
      config('ok.json', [{ name: 'edu', driver: driverPath('edu-c'), device: 'sim:edu' }, edu('edu2', 'sim:edu:5')]);
      daemon.kill('SIGHUP');
      const ready35 = await ns.next('READY', (await ns.next('RELOADING', ready3 + 1, exited)) + 1, exited);
      expect(await logged(err, /reloaded \[edu\]/)).toMatch(
        /config re-read: added \[\] removed \[\] reloaded \[edu\] replaced \[edu2\]\n/,
      );
      expect((await c.status()).drivers.map((d: Entry) => [d.name, d.device, d.state])).toEqual([
        ['edu', 'sim:edu', 'running'],
        ['edu2', 'sim:edu:5', 'running'],
      ]);

      // A new entry whose driver file is missing: refused before anything changes, naming entry and field.
      config('ok.json', [
        edu('edu3', 'sim:edu:3'),
        { name: 'gone', driver: join(tmp, 'gone.wasm'), device: 'sim:edu:4' },
      ]);
      daemon.kill('SIGHUP');
      const ready4 = await ns.next('READY', (await ns.next('RELOADING', ready35 + 1, exited)) + 1, exited);
      expect(ns.got[ready4].fields.STATUS).toContain(
        `config not applied: ${file}: drivers[1] (gone): driver: ${join(tmp, 'gone.wasm')}: cannot read: no such file`,
      );
      expect((await c.status()).drivers.map((d: Entry) => d.name)).toEqual(['edu', 'edu2']);
      expect((await c.call('edu', 2, u32(5))).length).toBeGreaterThan(0);
      c.close();
      c = undefined;

      daemon.kill('SIGTERM');
      const code = await new Promise((r) => (exited() ? r(daemon.exitCode) : daemon.once('exit', r)));
      expect(code).toBe(0);
      await ns.next('STOPPING', ready4 + 1);
      expect(err()).not.toMatch(/^\s+at /m);
    } finally {
      c?.close();
      if (!exited()) daemon.kill('SIGKILL');
      ns.close();
    }
  }, 180_000);

  it('a driver that fails its probe: no READY=1 ever (abstract socket), exit 1 naming the entry', async () => {
    const file = config('probe.json', [
      edu('edu', 'sim:edu'),
      { name: 'wrong', driver: driverPath('edu'), device: 'sim:uart16550' },
    ]);
    const ns = new NotifySocket(`@wasmdrv-test-${process.pid}`);
    const { daemon, err, exited } = serve(file, ns.path);
    try {
      const code = await new Promise((r) => daemon.once('exit', r));
      expect(code).toBe(1);
      ns.drain();
      expect(ns.got.map((d) => d.fields.STATUS)).toContain('probing wrong on sim:uart16550 (2/2)');
      expect(ns.got.some((d) => 'READY' in d.fields)).toBe(false);
      expect(err()).toContain(`${file}: drivers[1] (wrong): driver: ${driverPath('edu')}:`);
    } finally {
      if (!exited()) daemon.kill('SIGKILL');
      ns.close();
    }
  }, 120_000);
});
