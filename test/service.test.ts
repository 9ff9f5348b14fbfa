// The daemon: many client processes share one driver through it; access is checked from the peer's
// credentials; a client killed mid-request breaks nothing; config errors name the line and field.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../host/service/config.ts';
import { Service } from '../host/service/daemon.ts';
import { ServiceClient } from '../host/service/client.ts';
import { driverPath, u32, words } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'wasmdrv-svc-'));
chmodSync(dir, 0o755);
const socket = join(dir, 'wasmdrv.sock');

/**
 * The Node binary a client running as another user can execute. The project's Node lives inside the
 * checkout, which may sit below a directory only its owner can enter (a `mktemp -d` clone is 0700):
 * then a copy in the test's own 0755 directory stands in for it.
 */
let nodeCopy: string | undefined;
function nodeForOtherUsers(): string {
  if (nodeCopy) return nodeCopy;
  let p = process.execPath;
  // The client runs as uid 65534 with our gid (0): a file of group 0 is judged by its group bits, not
  // its other bits (a 0701 folder of root's, as the VM harness leaves a mktemp clone, refuses it).
  const clientMayExec = (path: string) => {
    const st = statSync(path);
    if (st.uid === 65534) return (st.mode & 0o100) !== 0;
    if (st.gid === process.getgid!()) return (st.mode & 0o010) !== 0;
    return (st.mode & 0o001) !== 0;
  };
  let ok = clientMayExec(p);
  for (let d = dirname(p); ok && d !== dirname(d); d = dirname(d)) ok = clientMayExec(d);
  if (!ok) {
    p = join(dir, 'node');
    copyFileSync(process.execPath, p);
    chmodSync(p, 0o755);
  }
  nodeCopy = p;
  return p;
}
let svc: Service;

beforeAll(async () => {
  svc = new Service({
    socket,
    mode: '0666',
    drivers: [
      { name: 'edu', driver: driverPath('edu'), device: 'sim:edu' },
      { name: 'restricted', driver: driverPath('edu'), device: 'sim:edu:2', allow: { call: { uids: [4242] } } },
      { name: 'broken', driver: driverPath('test/broken'), device: 'sim:edu:3' },
    ],
  });
  await svc.start();
});
afterAll(async () => {
  await svc.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A client in its own process, speaking the wire protocol itself (JSON-RPC 2.0, one per line, over the
 * socket): it needs nothing from this checkout, so it can run as another user. `calls` factorials on
 * `driver`; prints one JSON line.
 */
function clientProcess(driver: string, calls: number, opts: { uid?: number; raise?: number } = {}) {
  const script = `
    const net = await import('node:net');
    const s = net.createConnection(${JSON.stringify(socket)});
    await new Promise((r, j) => { s.once('connect', r); s.once('error', j); });
    let buf = '', next = 1; const waiting = new Map();
    s.on('data', (d) => { buf += d; let nl; while ((nl = buf.indexOf('\\n')) >= 0) { const m = JSON.parse(buf.slice(0, nl)); buf = buf.slice(nl + 1); waiting.get(m.id)?.(m); } });
    const call = (op, ...args) => new Promise((resolve, reject) => { const id = next++;
      waiting.set(id, (m) => m.result ? resolve(Buffer.from(m.result.data, 'base64')) : reject(Object.assign(new Error(m.error.message), { code: m.error.data.code })));
      s.write(JSON.stringify({ jsonrpc: '2.0', id, method: 'call', params: { driver: ${JSON.stringify(driver)}, op, data: Buffer.from(Uint32Array.from(args).buffer).toString('base64') } }) + '\\n'); });
    const fact = (n) => (n <= 1 ? 1 : n * fact(n - 1));
    try {
      if (${opts.raise ?? 0}) { const p = call(3, ${opts.raise ?? 0}, 0x1000); console.log('sent'); await p; }
      const answers = await Promise.all(Array.from({ length: ${calls} }, (_, i) => call(2, i % 12 + 1).then((b) => b.readUInt32LE(0) === fact(i % 12 + 1))));
      console.log(JSON.stringify({ ok: answers.every(Boolean), n: answers.length }));
    } catch (e) { console.log(JSON.stringify({ error: e.message, code: e.code })); }
    s.end();`;
  return spawn(opts.uid === undefined ? process.execPath : nodeForOtherUsers(), ['--input-type=module', '-e', script], {
    uid: opts.uid,
    cwd: '/',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

async function output(child: ReturnType<typeof spawn>): Promise<any> {
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  await once(child, 'exit');
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

describe('wasmdrv serve', () => {
  it('eight client processes hammer the edu driver at once: every answer correct, none lost', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => output(clientProcess('edu', 50))));
    expect(results).toEqual(Array(8).fill({ ok: true, n: 50 }));
  });

  it('a client without permission is refused with a clear error (peer credentials)', async () => {
    const r = await output(clientProcess('restricted', 1, { uid: 65534 }));
    expect(r.code).toBe('permission-denied');
    expect(r.error).toBe('permission denied: uid 65534 gid 0 may not call restricted');
    // the same user may call the driver without an allow list, and root may call any
    expect(await output(clientProcess('edu', 3, { uid: 65534 }))).toEqual({ ok: true, n: 3 });
    const c = await ServiceClient.connect(socket);
    expect(words(await c.call('restricted', 2, u32(5)))).toEqual([120]);
    c.close();
  });

  it('a client killed mid-request leaves the driver serving the others', async () => {
    const victim = clientProcess('edu', 0, { raise: 3000 });
    await new Promise<void>((resolve) => victim.stdout!.once('data', () => resolve()));
    victim.kill('SIGKILL');
    const other = await output(clientProcess('edu', 20));
    expect(other).toEqual({ ok: true, n: 20 });
    const c = await ServiceClient.connect(socket);
    const st = await c.status();
    expect(st.drivers.find((d: { name: string }) => d.name === 'edu').state).toBe('running');
    c.close();
  });

  it("a request to a driver that faults gets the supervisor's distinct error, then it serves again", async () => {
    const c = await ServiceClient.connect(socket);
    const err = await c.call('broken', 6).catch((e) => e);
    expect(err.code).toBe('driver-restarted');
    await new Promise((r) => setTimeout(r, 300));
    expect([...(await c.call('broken', 0, Uint8Array.of(7)))]).toEqual([7]);
    c.close();
  });

  it('refuses a bad config, naming the line and the field', () => {
    const text =
      '{\n  "socket": "/tmp/x.sock",\n  "drivers": [\n    { "name": "edu", "driver": "edu.wasm",\n      "devce": "sim:edu" }\n  ]\n}\n';
    expect(() => parseConfig(text, 'wasmdrv.json')).toThrow(
      /wasmdrv\.json:4: drivers\.0: must have required property 'device'[\s\S]*wasmdrv\.json:5: drivers\.0\.devce: unknown field/,
    );
    expect(() => parseConfig('{ "socket": 5,\n "drivers": [] }', 'c.json')).toThrow(
      /c\.json:1: socket: must be string[\s\S]*c\.json:2: drivers: must NOT have fewer than 1 items/,
    );
    expect(() => parseConfig('{ "socket": "x",\n  oops }', 'd.json')).toThrow(/^d\.json:2: not valid JSON/);
  });
});
