// `wasmdrv serve` start-up as systemd sees it: the socket is bound before drivers load, a failed start
// exits 1 with one line naming file / entry / field (never hangs), journald priorities on log lines,
// and `wasmdrv reload` resolving its path on the client side.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { driverPath, root } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-serve-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(root, 'bin', 'wasmdrv.js');

function config(name: string, c: Record<string, unknown>): string {
  const file = join(tmp, name);
  writeFileSync(file, JSON.stringify(c, null, 2));
  return file;
}

describe('wasmdrv serve start-up', () => {
  it('a socket it cannot bind: exit 1 at once, naming the socket, with no driver loaded', () => {
    const file = config('nobind.json', {
      socket: join(tmp, 'no', 'such', 'dir', 's.sock'),
      drivers: [{ name: 'edu', driver: driverPath('edu'), device: 'sim:edu' }],
    });
    const r = spawnSync(process.execPath, [bin, 'serve', '--config', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1); // null would mean it hung until the timeout
    expect(r.stderr.split('\n')[0]).toContain(
      `${file}: socket: cannot listen on ${join(tmp, 'no', 'such', 'dir', 's.sock')}`,
    );
    expect(r.stderr).not.toContain('edu: ');
  });

  it('a missing driver file: exit 1 naming the config, the entry and the field', () => {
    const file = config('missing.json', {
      socket: join(tmp, 'm.sock'),
      drivers: [{ name: 'edu', driver: '/nonexistent/edu.wasm', device: 'sim:edu' }],
    });
    const r = spawnSync(process.execPath, [bin, 'serve', '--config', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${file}: drivers[0] (edu): driver: /nonexistent/edu.wasm: cannot read: no such file`);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('logs with sd-daemon priorities under journald, and reload sends an absolute path', async () => {
    const sock = join(tmp, 'ok.sock');
    const file = config('ok.json', {
      socket: sock,
      drivers: [{ name: 'edu', driver: driverPath('edu'), device: 'sim:edu' }],
    });
    // The daemon runs in another directory than the client, as under systemd (WorkingDirectory=/).
    const daemon = spawn(process.execPath, [bin, 'serve', '--config', file], {
      cwd: tmp,
      env: { ...process.env, JOURNAL_STREAM: '8:1234' },
    });
    let err = '';
    daemon.stderr.on('data', (d) => (err += d));
    try {
      for (let i = 0; i < 600 && !err.includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(err).toContain('<5>ready');
      expect(err).toMatch(/^<6>edu: .* on sim:edu$/m);
      const rel = join('build', 'drivers', 'edu.wasm');
      const r = spawnSync(process.execPath, [bin, 'reload', 'edu', rel, '--socket', sock], {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('reloaded edu');
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
  }, 120_000);
});
