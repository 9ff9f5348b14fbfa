// The host daemon: one owner of the devices, many client processes. It loads the drivers a config
// names and serves a local UNIX socket (newline-delimited JSON, payloads base64):
//   {"id":1,"method":"call","driver":"edu","op":2,"data":"<base64>"}  → {"id":1,"ok":true,"data":"..."}
//   {"id":2,"method":"status"}                                       → {"id":2,"ok":true,"status":{...}}
//   {"id":3,"method":"reload","driver":"edu","path":"/x/edu.wasm"}   → {"id":3,"ok":true,"reload":{...}}
//   {"id":4,"method":"stop","driver":"edu"}
// Who may do what is decided from the peer's credentials (SO_PEERCRED), per driver. Calls are queued
// per driver and taken round-robin across clients, one at a time; a client that disconnects loses its
// queued calls and breaks nothing else.

import { chmodSync, existsSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { Host } from '../host.ts';
import type { Driver } from '../driver.ts';
import { loadNative } from '../native.ts';
import { isPackage, loadPackage } from '../package/load.ts';
import { parseManifest } from '../package/manifest.ts';
import { LoadError, RequestError } from '../faults.ts';
import type { ServiceConfig } from './config.ts';

interface Client {
  socket: Socket;
  uid: number;
  gid: number;
  pid: number;
  closed: boolean;
}

interface Call {
  client: Client;
  id: unknown;
  op: number;
  data: Uint8Array;
}

/** Per driver: a FIFO per client, served round-robin, one call in the driver at a time. */
class FairQueue {
  private readonly queues = new Map<Client, Call[]>();
  private order: Client[] = [];
  private busy = false;
  constructor(private readonly drv: Driver, private readonly reply: (c: Call, r: Record<string, unknown>) => void) {}

  push(c: Call): void {
    let q = this.queues.get(c.client);
    if (!q) {
      q = [];
      this.queues.set(c.client, q);
      this.order.push(c.client);
    }
    q.push(c);
    this.pump();
  }

  drop(client: Client): void {
    this.queues.delete(client);
    this.order = this.order.filter((c) => c !== client);
  }

  private pump(): void {
    if (this.busy || !this.order.length) return;
    const client = this.order.shift()!;
    const q = this.queues.get(client)!;
    const call = q.shift()!;
    if (q.length) this.order.push(client);
    else this.queues.delete(client);
    this.busy = true;
    this.drv.request(call.op, call.data).then(
      (data) => this.reply(call, { ok: true, data: Buffer.from(data).toString('base64') }),
      (err) => this.reply(call, { ok: false, error: (err as Error).message, code: (err as RequestError).code }),
    ).finally(() => {
      this.busy = false;
      this.pump();
    });
  }
}

/** A request line may not grow past this (a call's payload is at most 1 MiB, base64 and JSON around it). */
export const MAX_LINE_BYTES = 2 * 1024 * 1024;

export class Service {
  readonly host: Host;
  private server?: Server;
  private readonly queues = new Map<string, FairQueue>();
  private readonly drivers = new Map<string, Driver>();
  private readonly cfg = new Map<string, ServiceConfig['drivers'][number]>();

  /**
   * `source` names the config in errors ("FILE: drivers[1] (edu): driver: ...": file, entry, field).
   */
  constructor(readonly config: ServiceConfig, private readonly log: (s: string) => void = () => {}, private readonly source = 'config') {
    // With a trust store configured, every driver (package or bare module) and every reload passes
    // the trust policy; unsigned ones only when their entry says allowUnsigned (by that name).
    this.host = new Host({
      limitCaps: config.limitCaps,
      trust: config.trust !== undefined
        ? { trust: config.trust, allowUnsigned: config.drivers.filter((d) => d.allowUnsigned).map((d) => d.name), onWarning: log }
        : undefined,
    });
  }

  /**
   * Bind the socket first (a path that cannot be bound fails before any driver, and so any worker
   * blocked in poll(), exists), then load each driver. On any failure everything started is closed
   * and the error rethrown: the caller exits non-zero instead of hanging.
   */
  async start(): Promise<void> {
    try {
      if (existsSync(this.config.socket)) unlinkSync(this.config.socket);
      this.server = createServer((s) => this.accept(s));
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', (err) => reject(new Error(`${this.source}: socket: cannot listen on ${this.config.socket}: ${err.message}`)));
        this.server!.listen(this.config.socket, () => resolve());
      });
      chmodSync(this.config.socket, parseInt(this.config.mode ?? '0660', 8));
      for (const d of this.config.drivers) this.cfg.set(d.name, d);
      for (const [i, d] of this.config.drivers.entries()) {
        const entry = `${this.source}: drivers[${i}] (${d.name})`;
        let dev;
        try {
          dev = this.host.openDevice(d.device, { sim: d.sim });
        } catch (err) {
          throw new Error(`${entry}: device: ${(err as Error).message}`);
        }
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(readFileSync(d.driver));
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          throw new Error(`${entry}: driver: ${d.driver}: cannot read: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
        }
        let drv: Driver;
        try {
          const manifest = d.manifest !== undefined ? parseManifest(readFileSync(d.manifest, 'utf8'), d.manifest) : undefined;
          drv = this.host.trust || !isPackage(bytes)
            ? await this.host.load(bytes, dev, { name: d.name, manifest })
            : await loadPackage(this.host, bytes, dev, { allowUnsigned: d.allowUnsigned ? [d.name] : [], name: d.name, onWarning: this.log });
        } catch (err) {
          // Keep the class (a LoadError stays one: callers and tests tell refusals from faults by it).
          const Kind = err instanceof LoadError ? LoadError : Error;
          throw Object.assign(new Kind(`${entry}: driver: ${d.driver}: ${(err as Error).message}`), { fault: (err as { fault?: unknown }).fault });
        }
        drv.on('fault', (f) => this.log(`${d.name}: fault ${f.kind}: ${f.message}`));
        this.drivers.set(d.name, drv);
        this.queues.set(d.name, new FairQueue(drv, (c, r) => this.send(c.client, { id: c.id, ...r })));
        this.log(`${d.name}: ${d.driver} on ${d.device}`);
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    this.log(`listening on ${this.config.socket}`);
  }

  private accept(socket: Socket): void {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    let cred = { pid: 0, uid: -1, gid: -1 };
    try {
      cred = loadNative().peerCredentials(fd);
    } catch (err) {
      socket.end(`${JSON.stringify({ ok: false, error: `cannot identify the client: ${(err as Error).message}` })}\n`);
      return;
    }
    const client: Client = { socket, ...cred, closed: false };
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('utf8');
      if (buf.length > MAX_LINE_BYTES && buf.indexOf('\n') < 0) {
        // A client that never ends its line would grow the daemon without bound.
        this.send(client, { ok: false, error: `request line longer than ${MAX_LINE_BYTES} bytes`, code: 'payload-too-large' });
        socket.destroy();
        buf = '';
        return;
      }
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) void this.handle(client, line);
      }
    });
    const gone = () => {
      client.closed = true;
      for (const q of this.queues.values()) q.drop(client);
    };
    socket.on('close', gone);
    socket.on('error', gone);
  }

  private allowed(client: Client, driver: string, what: 'call' | 'admin'): boolean {
    if (client.uid === 0 || client.uid === process.getuid?.()) return true;
    const rule = this.cfg.get(driver)?.allow?.[what];
    if (!rule) return what === 'call'; // calls: whoever the socket's permissions let in; admin: root and the daemon's user
    return (rule.uids ?? []).includes(client.uid) || (rule.gids ?? []).includes(client.gid);
  }

  private send(client: Client, msg: Record<string, unknown>): void {
    if (!client.closed) client.socket.write(`${JSON.stringify(msg)}\n`);
  }

  private async handle(client: Client, line: string): Promise<void> {
    let m: { id?: unknown; method?: string; driver?: string; op?: number; data?: string; path?: string };
    try {
      m = JSON.parse(line);
    } catch {
      return this.send(client, { ok: false, error: 'not a JSON request line' });
    }
    if (!m || typeof m !== 'object' || Array.isArray(m)) return this.send(client, { ok: false, error: 'a request line must be a JSON object', code: 'bad-request' });
    if (m.driver !== undefined && typeof m.driver !== 'string') return this.send(client, { id: m.id, ok: false, error: 'driver must be a string', code: 'bad-request' });
    if (m.data !== undefined && typeof m.data !== 'string') return this.send(client, { id: m.id, ok: false, error: 'data must be a base64 string', code: 'bad-request' });
    const reply = (r: Record<string, unknown>) => this.send(client, { id: m.id, ...r });
    if (m.method === 'status') return reply({ ok: true, status: this.host.status() });
    const drv = m.driver ? this.drivers.get(m.driver) : undefined;
    if (!drv) return reply({ ok: false, error: `no driver "${m.driver}" (serving: ${[...this.drivers.keys()].join(', ')})`, code: 'no-such-driver' });
    const need = m.method === 'call' ? 'call' : 'admin';
    if (!this.allowed(client, m.driver!, need)) {
      return reply({ ok: false, error: `permission denied: uid ${client.uid} gid ${client.gid} may not ${m.method} ${m.driver}`, code: 'permission-denied' });
    }
    switch (m.method) {
      case 'call':
        if (!Number.isInteger(m.op) || m.op! < 0) return reply({ ok: false, error: 'call needs an integer op', code: 'bad-request' });
        this.queues.get(m.driver!)!.push({ client, id: m.id, op: m.op!, data: new Uint8Array(Buffer.from(m.data ?? '', 'base64')) });
        return;
      case 'reload':
        try {
          return reply({ ok: true, reload: await drv.reload(new Uint8Array(readFileSync(m.path ?? ''))) });
        } catch (err) {
          return reply({ ok: false, error: (err as Error).message });
        }
      case 'stop':
        await drv.stop();
        return reply({ ok: true });
      default:
        return reply({ ok: false, error: `unknown method "${m.method}"`, code: 'bad-request' });
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => (this.server?.listening ? this.server.close(() => r()) : r()));
    await this.host.close();
    if (existsSync(this.config.socket)) unlinkSync(this.config.socket);
  }
}
