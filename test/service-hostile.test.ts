// The daemon under bad clients: oversize frames, call floods, connection floods, clients that vanish
// mid-call, invalid JSON and wrong types. Each bad client gets a JSON-RPC error reply with a code; the
// good ones keep being served; the daemon's memory stays bounded (its peak RSS is printed).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceClient } from '../host/service/client.ts';
import { driverPath, root, u32, words } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'wasmdrv-hostile-'));
chmodSync(dir, 0o755);
const socket = join(dir, 'wasmdrv.sock');
const LIMITS = { maxFrameBytes: 1 << 20, maxQueuedCalls: 256, maxConnections: 100 };
let daemon: ChildProcess;
let good: ServiceClient;
let startHwmKiB = 0;

const hwmKiB = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.pid}/status`, 'utf8'))![1]);

beforeAll(async () => {
  const config = join(dir, 'wasmdrv.json');
  writeFileSync(
    config,
    JSON.stringify({
      socket,
      mode: '0666',
      limits: LIMITS,
      drivers: [{ name: 'edu', driver: driverPath('edu'), device: 'sim:edu' }],
    }),
  );
  daemon = spawn(process.execPath, [join(root, 'bin', 'wasmdrv.js'), 'serve', '--config', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    daemon.stderr!.on('data', (d) => {
      log += d;
      if (log.includes('[wasmdrv] ready')) resolve();
    });
    daemon.once('exit', (code) => reject(new Error(`daemon exited ${code}: ${log}`)));
  });
  good = await ServiceClient.connect(socket);
  await good.call('edu', 2, u32(5));
  startHwmKiB = hwmKiB();
});

afterAll(async () => {
  good?.close();
  daemon.kill('SIGTERM');
  await once(daemon, 'exit');
  rmSync(dir, { recursive: true, force: true });
});

/** A well-behaved call still works. */
async function stillServing(): Promise<void> {
  expect(words(await good.call('edu', 2, u32(10)))).toEqual([3628800]);
}

/** A raw connection: lines in, parsed replies out. */
async function raw(): Promise<{ s: Socket; replies: any[]; closed: Promise<void> }> {
  const s = createConnection(socket);
  await once(s, 'connect');
  const replies: any[] = [];
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      replies.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  s.on('error', () => {});
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  return { s, replies, closed };
}

const call = (id: number, params: Record<string, unknown>) =>
  `${JSON.stringify({ jsonrpc: '2.0', id, method: 'call', params })}\n`;

describe('the daemon under bad clients', () => {
  it('a 100 MiB line without a newline: an error naming the limit, then close; nothing buffered past the limit', async () => {
    const { s, replies, closed } = await raw();
    const chunk = Buffer.alloc(64 << 10, 0x61);
    let sent = 0;
    let open = true;
    void closed.then(() => (open = false));
    while (open && sent < 100 << 20) {
      if (!s.write(chunk)) await Promise.race([once(s, 'drain').catch(() => {}), closed]);
      sent += chunk.length;
    }
    await closed;
    // The daemon answers, then closes while this client is still writing. The client's next write can
    // fail (EPIPE) and Node then destroys the socket before it reads the answer already queued: only
    // then may the answer be missing. Whatever arrives must be exactly the one error below.
    if (replies.length === 0) expect(s.errored).toBeTruthy();
    else
      expect(replies).toEqual([
        {
          jsonrpc: '2.0',
          id: null,
          error: {
            code: -32001,
            message: `message too large: a line may hold at most ${LIMITS.maxFrameBytes} bytes (maxFrameBytes); closing the connection`,
            data: { code: 'frame-too-large' },
          },
        },
      ]);
    console.log(`oversize line: the daemon closed after ${(sent / 2 ** 20).toFixed(1)} MiB were written`);
    await stillServing();
  });

  it('10,000 calls queued at once by one client: each answered or refused with too-many-calls', async () => {
    const { s, replies, closed } = await raw();
    const lines = Array.from({ length: 10_000 }, (_, i) =>
      call(i + 1, { driver: 'edu', op: 2, data: Buffer.from(u32((i % 12) + 1)).toString('base64') }),
    );
    s.write(lines.join(''));
    const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));
    while (replies.length < 10_000) await Promise.race([once(s, 'data'), closed]);
    const answered = replies.filter((r) => r.result);
    const refused = replies.filter((r) => r.error);
    expect(new Set(replies.map((r) => r.id)).size).toBe(10_000);
    for (const r of answered)
      expect(Buffer.from(r.result.data, 'base64').readUInt32LE(0)).toBe(fact(((r.id - 1) % 12) + 1));
    expect(new Set(refused.map((r) => `${r.error.code} ${r.error.data.code}`))).toEqual(
      new Set(['-32002 too-many-calls']),
    );
    expect(answered.length).toBeGreaterThanOrEqual(LIMITS.maxQueuedCalls);
    expect(refused.length).toBeGreaterThan(0);
    console.log(`call flood: ${answered.length} answered, ${refused.length} refused with too-many-calls`);
    s.end();
    await stillServing();
  });

  it('1,000 connections at once: past the limit each gets too-many-connections; the connected client is served throughout', async () => {
    const results = await Promise.all(
      Array.from({ length: 1000 }, async () => {
        const c = await raw().catch((e: NodeJS.ErrnoException) => e.code ?? 'error');
        if (typeof c === 'string') return { kind: `connect:${c}` }; // the kernel's listen backlog was full
        // a refused connection is answered and closed at once; an accepted one stays open
        const outcome = await Promise.race([
          c.closed.then(() => 'closed'),
          new Promise((r) => setTimeout(r, 3000, 'open')),
        ]);
        return { kind: outcome === 'open' ? 'open' : `closed:${c.replies[0]?.error?.data?.code ?? 'no reply'}`, c };
      }),
    );
    try {
      await stillServing();
      const kinds = new Map<string, number>();
      for (const r of results) kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
      console.log(`connection flood: ${JSON.stringify(Object.fromEntries(kinds))}`);
      // every connection the daemon accepted is either served or refused with a reply
      expect(
        [...kinds.keys()].filter(
          (k) => k !== 'open' && k !== 'closed:too-many-connections' && !k.startsWith('connect:'),
        ),
      ).toEqual([]);
      expect(kinds.get('open') ?? 0).toBeLessThanOrEqual(LIMITS.maxConnections - 1); // the good client holds one
      expect(kinds.get('closed:too-many-connections') ?? 0).toBeGreaterThan(0);
    } finally {
      for (const r of results) r.c?.s.destroy();
      await Promise.all(results.map((r) => r.c?.closed));
    }
    // once they are gone, new clients are accepted again (the daemon learns of each close from its own
    // socket events, which may come after the client side has closed: retry for a while, not for ever)
    let answer: number[] | undefined;
    for (let i = 0; i < 100 && !answer; i++) {
      const again = await ServiceClient.connect(socket);
      try {
        answer = words(await again.call('edu', 2, u32(3)));
      } catch (e) {
        // A refused connection is answered too-many-connections and closed; the close can also beat
        // the reply to the client (then the call fails with "connection closed"): retry on both.
        const refused =
          (e as { code?: string }).code === 'too-many-connections' || /^connection closed/.test((e as Error).message);
        if (!refused) throw e;
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        again.close();
      }
    }
    expect(answer).toEqual([6]);
  });

  it('clients that disconnect mid-call cost nothing', async () => {
    for (let round = 0; round < 50; round++) {
      const { s, closed } = await raw();
      s.write(
        Array.from({ length: 20 }, (_, i) =>
          call(i + 1, { driver: 'edu', op: 2, data: Buffer.from(u32(12)).toString('base64') }),
        ).join(''),
      );
      s.destroy();
      await closed;
    }
    await stillServing();
    const st = await good.status();
    expect(st.drivers[0].state).toBe('running');
  });

  it('invalid JSON and wrong types get a clear error with a code, and never reach the driver', async () => {
    // calls of the clients that vanished above may still be finishing: wait until the count is still
    let before = -1;
    for (
      let now = (await good.status()).drivers[0].stats.requests;
      now !== before;
      now = (await good.status()).drivers[0].stats.requests
    ) {
      before = now;
      await new Promise((r) => setTimeout(r, 100));
    }
    const { s, replies } = await raw();
    const bad: [string, number, string][] = [
      ['{"jsonrpc":"2.0", "id": 1, "method": "call"', -32700, 'not JSON'],
      ['[1, 2]', -32600, 'batches are not supported'],
      ['"call"', -32600, 'got a string'],
      ['{"jsonrpc":"1.0","id":2,"method":"status"}', -32600, 'jsonrpc must be "2.0"'],
      ['{"jsonrpc":"2.0","method":"call","params":{"driver":"edu","op":2}}', -32600, 'id is missing'],
      ['{"jsonrpc":"2.0","id":{"x":1},"method":"status"}', -32600, 'id must be'],
      ['{"jsonrpc":"2.0","id":3,"method":5}', -32600, 'method must be a string'],
      ['{"jsonrpc":"2.0","id":4,"method":"__proto__"}', -32601, 'no method "__proto__"'],
      ['{"jsonrpc":"2.0","id":5,"method":"constructor"}', -32601, 'no method "constructor"'],
      ['{"jsonrpc":"2.0","id":6,"method":"hasOwnProperty"}', -32601, 'no method'],
      ['{"jsonrpc":"2.0","id":7,"method":"call","params":[1,2]}', -32602, 'params must be an object'],
      [
        '{"jsonrpc":"2.0","id":8,"method":"call","params":{"driver":5,"op":2}}',
        -32602,
        'params.driver must be a string',
      ],
      [
        '{"jsonrpc":"2.0","id":9,"method":"call","params":{"driver":"edu","op":"2"}}',
        -32602,
        'params.op must be an integer',
      ],
      [
        '{"jsonrpc":"2.0","id":10,"method":"call","params":{"driver":"edu","op":-1}}',
        -32602,
        'params.op must be an integer',
      ],
      [
        '{"jsonrpc":"2.0","id":11,"method":"call","params":{"driver":"edu","op":1.5}}',
        -32602,
        'params.op must be an integer',
      ],
      [
        '{"jsonrpc":"2.0","id":12,"method":"call","params":{"driver":"edu","op":2,"data":7}}',
        -32602,
        'params.data must be a base64 string',
      ],
      [
        '{"jsonrpc":"2.0","id":13,"method":"call","params":{"driver":"edu","op":2,"data":"!!"}}',
        -32602,
        'params.data must be a base64 string',
      ],
      [
        '{"jsonrpc":"2.0","id":14,"method":"call","params":{"driver":"__proto__","op":2}}',
        -32005,
        'no driver "__proto__"',
      ],
      ['\u00ff\u00fe garbage', -32700, 'not JSON'],
      [
        '{"jsonrpc":"2.0","id":15,"method":"reload","params":{"driver":"edu","path":7}}',
        -32602,
        'params.path must be a string',
      ],
    ];
    s.write(bad.map(([l]) => `${l}\n`).join(''));
    while (replies.length < bad.length) await once(s, 'data');
    expect(replies.map((r) => r.error.code)).toEqual(bad.map(([, code]) => code));
    for (const [i, [, , text]] of bad.entries()) expect(replies[i].error.message).toContain(text);
    for (const r of replies) expect(typeof r.error.data.code).toBe('string');
    s.end();
    expect((await good.status()).drivers[0].stats.requests).toBe(before + 0);
    await stillServing();
  });

  it("the daemon's memory stayed bounded through all of it", () => {
    const peak = hwmKiB();
    console.log(
      `daemon peak RSS (VmHWM): ${(peak / 1024).toFixed(1)} MiB, ${((peak - startHwmKiB) / 1024).toFixed(1)} MiB above its peak after start`,
    );
    expect(peak - startHwmKiB).toBeLessThan(100 * 1024);
  });
});
