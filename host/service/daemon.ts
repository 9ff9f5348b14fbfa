// The host daemon: one owner of the devices, many client processes. It loads the drivers a config
// names and serves a local UNIX socket speaking JSON-RPC 2.0, one message per line (docs/service.md):
//   {"jsonrpc":"2.0","id":1,"method":"call","params":{"driver":"edu","op":2,"data":"<base64>"}}
//     → {"jsonrpc":"2.0","id":1,"result":{"data":"<base64>"}}
//   {"jsonrpc":"2.0","id":2,"method":"status"}                  → {"jsonrpc":"2.0","id":2,"result":{...}}
//   {"jsonrpc":"2.0","id":3,"method":"reload","params":{"driver":"edu","path":"/x/edu.wasm"}}
//   {"jsonrpc":"2.0","id":4,"method":"stop","params":{"driver":"edu"}}
// Errors: {"jsonrpc":"2.0","id":1,"error":{"code":-32010,"message":"...","data":{"code":"driver-restarted"}}}.
// Who may do what is decided from the peer's credentials (SO_PEERCRED), per driver. Calls are queued
// per driver and taken round-robin across clients, one at a time. Bad clients are bounded: a frame
// limit (checked while the line arrives, never buffered past it), a limit on each client's queued
// calls and on its unread replies, and a connection limit; each refusal is an error reply with a code.
// The wire (error codes, line framing, the per-driver fair queue, client limits) is wire.ts; the served
// set of drivers and a config re-read's plan roster.ts; sd_notify is notify.ts; the config and its
// schema config.ts.

import { chmodSync, existsSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { Host } from '../host.ts';
import type { Driver } from '../driver.ts';
import { loadNative } from '../native.ts';
import { parseConfig, type ServiceConfig } from './config.ts';
import { monotonicUsec, type Notify } from './notify.ts';
import { type Reconfigured, Roster } from './roster.ts';
import {
  type Client,
  DEFAULT_SERVICE_LIMITS,
  errorReply,
  type Id,
  LineReader,
  RPC,
  RpcError,
  type ServiceLimits,
} from './wire.ts';

export { DEFAULT_SERVICE_LIMITS, RPC, type ServiceLimits } from './wire.ts';
export type { Reconfigured } from './roster.ts';

type Params = Record<string, unknown>;
type Method = (client: Client, id: Id, params: Params) => unknown | Promise<unknown>;

export class Service {
  readonly host: Host;
  private server?: Server;
  /** The served drivers, their queues and config entries (roster.ts). */
  private readonly roster: Roster;
  private reconfiguring: Promise<void> = Promise.resolve();
  /** The trust policy's allowUnsigned names (the host holds this array; a config re-read updates it). */
  private readonly allowUnsigned: string[] = [];
  private readonly clients = new Set<Client>();
  readonly limits: ServiceLimits;
  /** Method names are looked up here, never on an object (no "__proto__" or "constructor" surprises). */
  private readonly methods = new Map<string, Method>([
    ['call', (c, id, p) => this.call(c, id, p)],
    ['status', () => this.host.status()],
    ['reload', (c, _id, p) => this.reload(c, p)],
    ['stop', (c, _id, p) => this.stopDriver(c, p)],
  ]);

  /**
   * `source` names the config in errors ("FILE: drivers[1] (edu): driver: ...": file, entry, field).
   */
  constructor(
    public config: ServiceConfig,
    private readonly log: (s: string) => void = () => {},
    private readonly source = 'config',
    /** sd_notify (notify.ts systemdNotifier): READY=1, STATUS=, RELOADING=1, STOPPING=1. */
    private readonly notify: Notify = () => {},
  ) {
    this.limits = { ...DEFAULT_SERVICE_LIMITS, ...config.limits };
    this.allowUnsigned.push(...config.drivers.filter((d) => d.allowUnsigned).map((d) => d.name));
    // With a trust store configured, every driver (package or bare module) and every reload passes
    // the trust policy; unsigned ones only when their entry says allowUnsigned (by that name).
    this.host = new Host({
      limitCaps: config.limitCaps,
      trust:
        config.trust !== undefined
          ? {
              trust: config.trust,
              allowUnsigned: this.allowUnsigned,
              onWarning: log,
            }
          : undefined,
    });
    this.roster = new Roster(this.host, this.allowUnsigned, log, source, (c, msg) => this.send(c, msg));
  }

  /**
   * Bind the socket first (a path that cannot be bound fails before any driver, and so any worker
   * blocked in poll(), exists), then load each driver. On any failure everything started is closed
   * and the error rethrown: the caller exits non-zero instead of hanging. Under systemd READY=1 goes
   * out only here, after the socket is bound and every driver has probed.
   */
  async start(): Promise<void> {
    try {
      this.notify({ STATUS: `binding ${this.config.socket}` });
      if (existsSync(this.config.socket)) unlinkSync(this.config.socket);
      this.server = createServer((s) => this.accept(s));
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', (err) =>
          reject(new Error(`${this.source}: socket: cannot listen on ${this.config.socket}: ${err.message}`)),
        );
        this.server!.listen(this.config.socket, () => resolve());
      });
      chmodSync(this.config.socket, parseInt(this.config.mode ?? '0660', 8));
      const n = this.config.drivers.length;
      for (const [i, d] of this.config.drivers.entries()) {
        this.notify({ STATUS: `probing ${d.name} on ${d.device} (${i + 1}/${n})` });
        const entry = `${this.source}: drivers[${i}] (${d.name})`;
        this.roster.attach(d, await this.roster.loadEntry(d, entry, this.roster.readEntry(d, entry)));
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    this.log(`listening on ${this.config.socket}`);
    this.notify({ READY: 1, STATUS: this.serving() });
  }

  private serving(): string {
    return `serving ${this.roster.drivers.size} driver(s) on ${this.config.socket}: ${[...this.roster.drivers.keys()].join(', ')}`;
  }

  /**
   * Re-read the config (SIGHUP, the unit's ExecReload): drivers the new config adds are loaded, those
   * it drops are stopped, an entry whose driver file (path or bytes) changed is hot-reloaded, one whose
   * device, sim, manifest or allowUnsigned changed is stopped and loaded anew. A config that does not
   * parse, changes a field only a restart can change, names a file that cannot be read, or adds a driver
   * that fails to load leaves the running set untouched, and the one error line names file, entry and
   * field. Under systemd: RELOADING=1 before, READY=1 after, whatever the outcome. Re-reads run one at
   * a time. Returns what changed, or the error.
   */
  reconfigure(text: string | (() => string)): Promise<Reconfigured> {
    const run = this.reconfiguring.then(() => this.reconfigureNow(text));
    this.reconfiguring = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  private async reconfigureNow(text: string | (() => string)): Promise<Reconfigured> {
    this.notify({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec(), STATUS: `re-reading ${this.source}` });
    const done: Reconfigured = { ok: true, added: [], removed: [], reloaded: [], replaced: [] };
    try {
      await this.applyConfig(typeof text === 'string' ? text : text(), done);
    } catch (err) {
      done.ok = false;
      done.error = (err as Error).message.split('\n')[0];
      this.log(`config not applied, drivers unchanged: ${done.error}`);
    }
    const failed = done.failed?.length ? `; failed: ${done.failed.join(', ')}` : '';
    if (done.ok)
      this.log(
        `config re-read: added [${done.added.join(', ')}] removed [${done.removed.join(', ')}] reloaded [${done.reloaded.join(', ')}] replaced [${done.replaced.join(', ')}]${failed}`,
      );
    this.notify({
      READY: 1,
      STATUS: done.ok ? `${this.serving()}${failed}` : `${this.serving()}; config not applied: ${done.error}`,
    });
    return done;
  }

  private async applyConfig(text: string, done: Reconfigured): Promise<void> {
    const next = parseConfig(text, this.source);
    for (const k of ['socket', 'mode', 'trust', 'limits', 'limitCaps'] as const) {
      if (JSON.stringify(next[k]) !== JSON.stringify(this.config[k]))
        throw new Error(`${this.source}: ${k}: changed: takes effect only on a restart (systemctl restart wasmdrv)`);
    }
    await this.roster.apply(next, done);
    this.config = next;
  }

  private accept(socket: Socket): void {
    socket.on('error', () => {}); // a client's broken pipe is its own business
    if (this.clients.size >= this.limits.maxConnections) {
      const e = new RpcError(
        RPC.tooManyConnections,
        `too many connections: the daemon serves at most ${this.limits.maxConnections} clients at once (maxConnections)`,
      );
      socket.end(`${JSON.stringify(errorReply(null, e))}\n`);
      socket.destroySoon?.();
      return;
    }
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    let cred = { pid: 0, uid: -1, gid: -1 };
    try {
      cred = loadNative().peerCredentials(fd);
    } catch (err) {
      socket.end(
        `${JSON.stringify(errorReply(null, new RpcError(RPC.permissionDenied, `cannot identify the client: ${(err as Error).message}`)))}\n`,
      );
      return;
    }
    const client: Client = { socket, ...cred, closed: false, calls: 0 };
    this.clients.add(client);
    const lines = new LineReader(
      this.limits.maxFrameBytes,
      (line) => this.handle(client, line),
      () => {
        // Stop reading at once (nothing more is buffered), say why, and close.
        socket.pause();
        const e = new RpcError(
          RPC.frameTooLarge,
          `message too large: a line may hold at most ${this.limits.maxFrameBytes} bytes (maxFrameBytes); closing the connection`,
        );
        this.send(client, errorReply(null, e));
        client.closed = true;
        socket.end(() => socket.destroy());
        gone();
      },
    );
    socket.on('data', (d: Buffer) => {
      if (!client.closed) lines.push(d);
    });
    const gone = () => {
      if (!this.clients.delete(client)) return;
      client.closed = true;
      for (const q of this.roster.queues.values()) q.drop(client);
    };
    socket.on('close', gone);
    socket.on('error', gone);
  }

  private allowed(client: Client, driver: string, what: 'call' | 'admin'): boolean {
    if (client.uid === 0 || client.uid === process.getuid?.()) return true;
    const rule = this.roster.cfg.get(driver)?.allow?.[what];
    if (!rule) return what === 'call'; // calls: whoever the socket's permissions let in; admin: root and the daemon's user
    return (rule.uids ?? []).includes(client.uid) || (rule.gids ?? []).includes(client.gid);
  }

  private send(client: Client, msg: unknown): void {
    if (client.closed) return;
    const s = client.socket;
    if (s.writableLength > this.limits.maxUnreadReplyBytes) {
      // It does not read its replies: drop it rather than hold them.
      this.log(
        `client pid ${client.pid}: ${s.writableLength} bytes of replies unread (maxUnreadReplyBytes ${this.limits.maxUnreadReplyBytes}): disconnected`,
      );
      client.closed = true;
      s.destroy();
      return;
    }
    s.write(`${JSON.stringify(msg)}\n`);
  }

  private handle(client: Client, line: Buffer): void {
    const text = line.toString('utf8').trim();
    if (!text) return;
    let m: unknown;
    try {
      m = JSON.parse(text);
    } catch (err) {
      return this.send(client, errorReply(null, new RpcError(RPC.parseError, `not JSON: ${(err as Error).message}`)));
    }
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      const what = Array.isArray(m)
        ? 'a batch (array): batches are not supported, send one object per line'
        : `a ${m === null ? 'null' : typeof m}`;
      return this.send(
        client,
        errorReply(null, new RpcError(RPC.invalidRequest, `a request is a JSON-RPC 2.0 object; got ${what}`)),
      );
    }
    const req = m as Record<string, unknown>;
    const id = Object.hasOwn(req, 'id') ? req.id : undefined;
    const okId = typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) || id === null;
    const replyId: Id = okId ? (id as Id) : null;
    const fail = (code: number, message: string) => this.send(client, errorReply(replyId, new RpcError(code, message)));
    if (req.jsonrpc !== '2.0') return fail(RPC.invalidRequest, 'jsonrpc must be "2.0"');
    if (id === undefined)
      return fail(
        RPC.invalidRequest,
        'id is missing: every request needs an id (notifications are not served, they would lose their answer)',
      );
    if (!okId) return fail(RPC.invalidRequest, 'id must be a string, a number or null');
    if (typeof req.method !== 'string') return fail(RPC.invalidRequest, 'method must be a string');
    const method = this.methods.get(req.method);
    if (!method)
      return fail(
        RPC.methodNotFound,
        `no method "${req.method.slice(0, 64)}" (methods: ${[...this.methods.keys()].join(', ')})`,
      );
    const params = req.params ?? {};
    if (typeof params !== 'object' || params === null || Array.isArray(params))
      return fail(RPC.invalidParams, 'params must be an object of named parameters');
    let out: unknown;
    try {
      out = method(client, replyId, params as Params);
    } catch (err) {
      return this.replyError(client, replyId, err);
    }
    if (out === DEFERRED) return;
    Promise.resolve(out).then(
      (result) => this.send(client, { jsonrpc: '2.0', id: replyId, result: result ?? {} }),
      (err) => this.replyError(client, replyId, err),
    );
  }

  private replyError(client: Client, id: Id, err: unknown): void {
    const e = err instanceof RpcError ? err : new RpcError(RPC.operationFailed, (err as Error)?.message ?? String(err));
    this.send(client, errorReply(id, e));
  }

  /** The driver a request names, checked: it exists, and this client may do `what` to it. */
  private driverFor(client: Client, p: Params, method: string, what: 'call' | 'admin'): { name: string; drv: Driver } {
    if (typeof p.driver !== 'string')
      throw new RpcError(RPC.invalidParams, `${method}: params.driver must be a string`);
    const name = p.driver;
    const drv = this.roster.drivers.get(name);
    if (!drv)
      throw new RpcError(
        RPC.noSuchDriver,
        `no driver "${name.slice(0, 64)}" (serving: ${[...this.roster.drivers.keys()].join(', ')})`,
      );
    if (!this.allowed(client, name, what))
      throw new RpcError(
        RPC.permissionDenied,
        `permission denied: uid ${client.uid} gid ${client.gid} may not ${method} ${name}`,
      );
    return { name, drv };
  }

  private call(client: Client, id: Id, p: Params): typeof DEFERRED {
    const { name } = this.driverFor(client, p, 'call', 'call');
    if (typeof p.op !== 'number' || !Number.isInteger(p.op) || p.op < 0 || p.op > 0x7fffffff) {
      throw new RpcError(RPC.invalidParams, 'call: params.op must be an integer from 0 to 2147483647');
    }
    if (p.data !== undefined && (typeof p.data !== 'string' || !BASE64.test(p.data)))
      throw new RpcError(RPC.invalidParams, 'call: params.data must be a base64 string');
    if (client.calls >= this.limits.maxQueuedCalls) {
      throw new RpcError(
        RPC.tooManyCalls,
        `too many calls: a client may have at most ${this.limits.maxQueuedCalls} calls waiting (maxQueuedCalls); wait for answers`,
      );
    }
    client.calls++;
    this.roster.queues.get(name)!.push({
      client,
      id,
      op: p.op,
      data: new Uint8Array(Buffer.from((p.data as string | undefined) ?? '', 'base64')),
    });
    return DEFERRED;
  }

  private async reload(client: Client, p: Params): Promise<unknown> {
    const { drv } = this.driverFor(client, p, 'reload', 'admin');
    if (typeof p.path !== 'string') throw new RpcError(RPC.invalidParams, 'reload: params.path must be a string');
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(p.path));
    } catch (err) {
      throw new RpcError(RPC.operationFailed, `${p.path}: cannot read: ${(err as Error).message}`);
    }
    return drv.reload(bytes);
  }

  private async stopDriver(client: Client, p: Params): Promise<unknown> {
    const { drv } = this.driverFor(client, p, 'stop', 'admin');
    await drv.stop();
    return {};
  }

  async close(): Promise<void> {
    this.notify({ STOPPING: 1, STATUS: 'stopping' });
    for (const c of this.clients) c.socket.destroy();
    await new Promise<void>((r) => (this.server?.listening ? this.server.close(() => r()) : r()));
    await this.host.close();
    if (existsSync(this.config.socket)) unlinkSync(this.config.socket);
  }
}

const DEFERRED = Symbol('deferred');
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
