// Self-raised limits, oversized payloads and load-time faults (issue 15, classes 4, 5 and 8): a
// manifest asking above the host's caps is refused naming the limit, value and cap; stop() and
// close() end a driver in bounded time whatever its deadline; a payload larger than the io buffer is
// refused to its caller and never reaches the driver (API and daemon); a fault while loading is one
// line in the CLI. The bystander answers throughout.
import { spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Host, LoadError, loadPackage, RequestError } from '../../host/index.ts';
import { appendSection, MANIFEST_SECTION } from '../../host/package/sign.ts';
import { DEFAULT_LIMIT_CAPS } from '../../host/grant.ts';
import { Service } from '../../host/service/daemon.ts';
import { Bystander } from './bystander.ts';
import { driverWat } from './modules.ts';
import { root } from '../helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-limits-'));
const eduManifest = JSON.parse(readFileSync(join(root, 'guest-drivers', 'edu', 'manifest.json'), 'utf8'));
const manifest = (limits: object, name = 'hostile') => ({
  ...eduManifest,
  name,
  interrupts: false,
  regions: undefined,
  dma: undefined,
  limits,
});
const pkg = (wasm: Uint8Array, m: object) =>
  appendSection(wasm, MANIFEST_SECTION, new TextEncoder().encode(JSON.stringify(m)));
const idle = driverWat({});
const spin = driverWat({ request: '(loop $l (br $l)) (i32.const 0)' });
const spinProbe = driverWat({ probe: '(loop $l (br $l)) (i32.const 0)' });
let host: Host;
let n = 0;
afterEach(() => host?.close());
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** An unsigned package allowed by name on a host without a policy (the manifest's limits still count). */
const load = (bytes: Uint8Array, m: { name: string }) =>
  loadPackage(host, pkg(bytes, m), `sim:edu:l${n++}`, { trust: join(tmp, 'none'), allowUnsigned: [m.name] });

describe('manifest limits are capped by the host', () => {
  for (const [key, value] of [
    ['memoryPages', 65536],
    ['deadlineMs', 1_000_000_000],
    ['logPerSec', 1e6],
    ['logBurst', 1e7],
    ['irqPerSec', 1e9],
  ] as const) {
    it(`a manifest asking ${key} ${value} is refused naming the limit, the value and the cap`, async () => {
      host = new Host();
      const b = await Bystander.start(host);
      const err = await b.during(() => load(idle, manifest({ [key]: value })).catch((e) => e));
      expect(err).toBeInstanceOf(LoadError);
      expect(err.message).toContain(`limit ${key} ${value} is above the host's cap of ${DEFAULT_LIMIT_CAPS[key]}`);
      expect(host.drivers.length).toBe(1); // the bystander only
    });
  }

  it('an operator cap below the default refuses what the default allows; asking less loads', async () => {
    host = new Host({ limitCaps: { deadlineMs: 500 } });
    const b = await Bystander.start(host);
    const err = await load(idle, manifest({ deadlineMs: 2000 })).catch((e) => e);
    expect(err.message).toContain("limit deadlineMs 2000 is above the host's cap of 500");
    const drv = await load(idle, manifest({ deadlineMs: 400, memoryPages: 8 }));
    expect(drv.limits.deadlineMs).toBe(400);
    await b.check();
  });
});

describe('stop and close end a driver in bounded time whatever its limits', () => {
  it('a request spinning under a 10^9 ms deadline (operator-raised cap): stop() returns', async () => {
    host = new Host({ limitCaps: { deadlineMs: 1_000_000_000 } });
    const b = await Bystander.start(host);
    const drv = await load(spin, manifest({ deadlineMs: 1_000_000_000 }));
    const answer = drv.request(1).catch((e) => e);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    const stopped = await Promise.race([
      drv.stop().then(() => true),
      new Promise((r) => setTimeout(() => r(false), 20_000)),
    ]);
    console.log(`stop() of a spinning driver with a 10^9 ms deadline took ${(performance.now() - t0).toFixed(1)} ms`);
    expect(stopped).toBe(true);
    expect(((await answer) as RequestError).code).toBe('driver-stopped');
    await b.check();
  });

  it('a probe spinning under a 10^9 ms deadline: close() returns and the load fails', async () => {
    host = new Host({ limitCaps: { deadlineMs: 1_000_000_000 } });
    await Bystander.start(host);
    const loading = load(spinProbe, manifest({ deadlineMs: 1_000_000_000 })).catch((e) => e);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    const closed = await Promise.race([
      host.close().then(() => true),
      new Promise((r) => setTimeout(() => r(false), 20_000)),
    ]);
    console.log(
      `close() with a probe spinning under a 10^9 ms deadline took ${(performance.now() - t0).toFixed(1)} ms`,
    );
    expect(closed).toBe(true);
    expect(await loading).toBeInstanceOf(LoadError);
  });
});

describe('payloads larger than the io buffer are refused to the caller', () => {
  it('io buffer + 1, 64 KiB and 1 MiB: payload-too-large, the driver never sees them, stays running, never faults', async () => {
    host = new Host();
    const b = await Bystander.start(host);
    const drv = await host.load(idle, `sim:edu:p${n++}`, { name: 'small' });
    for (const size of [257, 65536, 1 << 20, 257, 300, 4096, 257]) {
      const err = await b.during(() => drv.request(1, new Uint8Array(size)).catch((e) => e));
      expect(err).toBeInstanceOf(RequestError);
      expect(err.code).toBe('payload-too-large');
      expect(err.message).toContain('(256 bytes)');
    }
    expect(drv.stats().requests).toBe(0);
    expect(await drv.request(1, new Uint8Array(256))).toEqual(new Uint8Array(0)); // exactly the buffer: served
    expect({ state: drv.state, faults: drv.faults, restarts: drv.restarts }).toEqual({
      state: 'running',
      faults: 0,
      restarts: 0,
    });
  });

  it('the daemon: an oversized call, a non-object line and an endless line are refused; the driver keeps serving', async () => {
    const wasm = join(tmp, 'small.wasm');
    writeFileSync(wasm, idle);
    const socket = join(tmp, 'd.sock');
    const svc = new Service({ socket, drivers: [{ name: 'small', driver: wasm, device: 'sim:edu' }] });
    await svc.start();
    try {
      const talk = (lines: string[]) =>
        new Promise<Record<string, unknown>[]>((resolve, reject) => {
          const s = createConnection(socket);
          const got: Record<string, unknown>[] = [];
          let buf = '';
          s.on('data', (d) => {
            buf += d;
            for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) got.push(JSON.parse(buf.slice(0, nl)));
            if (got.length === lines.length) {
              s.end();
              resolve(got);
            }
          });
          s.on('close', () => resolve(got));
          s.on('error', reject);
          for (const l of lines) s.write(`${l}\n`);
        });
      const big = Buffer.alloc(1000).toString('base64');
      const rpc = (id: number, params: Record<string, unknown>) =>
        JSON.stringify({ jsonrpc: '2.0', id, method: 'call', params });
      const r = await talk([
        rpc(1, { driver: 'small', op: 1, data: big }),
        'null',
        '[1]',
        rpc(4, { driver: '__proto__', op: 1 }),
        rpc(5, { driver: 'small', op: 1 }),
      ]);
      // replies come as each is decided (the calls go through the driver's queue): compare by id, then the rest
      const code = (m: Record<string, any>) => (m.error ? m.error.data.code : 'ok');
      const byId = Object.fromEntries(r.filter((m) => m.id !== null).map((m) => [m.id, code(m)]));
      expect(byId).toEqual({ 1: 'payload-too-large', 4: 'no-such-driver', 5: 'ok' });
      expect(r.filter((m) => m.id === null).map(code)).toEqual(['invalid-request', 'invalid-request']);
      const endless = await new Promise<string>((resolve) => {
        const s = createConnection(socket);
        let out = '';
        s.on('data', (d) => (out += d));
        s.on('close', () => resolve(out));
        s.on('error', () => resolve(out));
        s.write('x'.repeat(3 * 1024 * 1024));
      });
      expect(endless).toContain('frame-too-large');
      expect(svc.host.drivers[0].state).toBe('running');
      expect(svc.host.drivers[0].faults).toBe(0);
    } finally {
      await svc.close();
    }
  });
});

describe('a fault while loading is one line in the CLI', () => {
  const cli = (file: string, ...extra: string[]) =>
    spawnSync(
      process.execPath,
      [join(root, 'bin', 'wasmdrv.js'), 'run', file, '--device', 'sim:edu', '--request', '1', ...extra],
      {
        encoding: 'utf8',
        env: { ...process.env, HOME: tmp, WASMDRV_TRUST: undefined },
      },
    );
  const write = (name: string, bytes: Uint8Array) => {
    const f = join(tmp, name);
    writeFileSync(f, bytes);
    return f;
  };

  it('a start function that traps: kind and message, no stack, exit 1', () => {
    const r = cli(write('start-trap.wasm', driverWat({ start: '(unreachable)' })));
    expect(r.stderr.trim()).toMatch(/^wasmdrv: start-trap: unreachable during load: .*unreachable/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.status).toBe(1);
  });

  it('a probe that spins: deadline during probe, one line, exit 1', () => {
    const r = cli(write('probe-spin.wasm', spinProbe), '--deadline', '300');
    expect(r.stderr.trim()).toMatch(/^wasmdrv: probe-spin: deadline during probe: .*300 ms deadline/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.status).toBe(1);
  });

  it('a probe that traps: one line; with --debug the frames as well', () => {
    const file = write('probe-trap.wasm', driverWat({ probe: '(unreachable)' }));
    const r = cli(file);
    expect(r.stderr.trim()).toMatch(/^wasmdrv: probe-trap: unreachable during probe/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.status).toBe(1);
    const d = cli(file, '--debug');
    expect(d.stderr).toMatch(/\n\s+at /);
    expect(d.status).toBe(1);
  });
});
