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

import { chmodSync, existsSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { Host } from '../host.ts';
import type { Driver } from '../driver.ts';
import { loadNative } from '../native.ts';
import { isPackage, loadPackage } from '../package/load.ts';
import { parseManifest } from '../package/manifest.ts';
import { LoadError, type RequestError } from '../faults.ts';
import type { ServiceConfig } from './config.ts';

interface Client {
  socket: Socket;
  uid: number;
  gid: number;
  pid: number;
  closed: boolean;
  /** Calls of this client queued or in a driver, across drivers. */
  calls: number;
}

type Id = string | number | null;

interface Call {
  client: Client;
  id: Id;
  op: number;
  data: Uint8Array;
}

/** The daemon's limits on what one client, and all of them, may make it hold. */
export interface ServiceLimits {
  /** Longest message line, in bytes (without its newline). Default 2 MiB: a 1 MiB request in base64 fits. */
  maxFrameBytes: number;
  /** Calls one client may have queued or running at once. Default 1024. */
  maxQueuedCalls: number;
  /** Clients connected at once. Default 256. */
  maxConnections: number;
  /** Replies written to a client that it has not read yet, in bytes; past it the client is dropped. Default 16 MiB. */
  maxUnreadReplyBytes: number;
}

export const DEFAULT_SERVICE_LIMITS: ServiceLimits = {
  maxFrameBytes: 2 << 20,
  maxQueuedCalls: 1024,
  maxConnections: 256,
  maxUnreadReplyBytes: 16 << 20,
};

/**
 * JSON-RPC error codes. -32700..-32600 are the standard's; the rest are the daemon's own, each with a
 * name in error.data.code (driver errors carry the supervisor's RequestError code there).
 */
export const RPC = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  frameTooLarge: -32001,
  tooManyCalls: -32002,
  tooManyConnections: -32003,
  permissionDenied: -32004,
  noSuchDriver: -32005,
  driverError: -32010,
  operationFailed: -32011,
} as const;

const NAMES: Record<number, string> = {
  [RPC.parseError]: 'parse-error',
  [RPC.invalidRequest]: 'invalid-request',
  [RPC.methodNotFound]: 'method-not-found',
  [RPC.invalidParams]: 'invalid-params',
  [RPC.internal]: 'internal-error',
  [RPC.frameTooLarge]: 'frame-too-large',
  [RPC.tooManyCalls]: 'too-many-calls',
  [RPC.tooManyConnections]: 'too-many-connections',
  [RPC.permissionDenied]: 'permission-denied',
  [RPC.noSuchDriver]: 'no-such-driver',
  [RPC.operationFailed]: 'operation-failed',
};

class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly name_ = NAMES[code] ?? 'error',
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const errorReply = (id: Id, e: RpcError) => ({
  jsonrpc: '2.0',
  id,
  error: { code: e.code, message: e.message, data: { code: e.name_, ...e.extra } },
});

/** Per driver: a FIFO per client, served round-robin, one call in the driver at a time. */
class FairQueue {
  private readonly queues = new Map<Client, Call[]>();
  private order: Client[] = [];
  private busy = false;
  constructor(
    private readonly drv: Driver,
    private readonly reply: (c: Call, r: { result?: unknown; error?: RpcError }) => void,
  ) {}

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

  /** A client went away: its queued calls go (the one in the driver finishes, its answer is dropped). */
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
    this.drv
      .request(call.op, call.data)
      .then(
        (data) => this.reply(call, { result: { data: Buffer.from(data).toString('base64') } }),
        (err) => {
          const code = (err as RequestError).code ?? 'driver-error';
          const extra: Record<string, unknown> = {};
          if ((err as RequestError).status !== undefined) extra.status = (err as RequestError).status;
          this.reply(call, { error: new RpcError(RPC.driverError, (err as Error).message, code, extra) });
        },
      )
      .finally(() => {
        this.busy = false;
        this.pump();
      });
  }
}

/** Splits a byte stream into lines of at most `limit` bytes, holding at most `limit` bytes meanwhile. */
class LineReader {
  private parts: Buffer[] = [];
  private held = 0;
  constructor(
    private readonly limit: number,
    private readonly onLine: (line: Buffer) => void,
    private readonly onOversize: () => void,
  ) {}

  /** Returns false once a line passed the limit (the caller stops reading). */
  push(chunk: Buffer): boolean {
    let at = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, at);
      const end = nl < 0 ? chunk.length : nl;
      if (this.held + end - at > this.limit) {
        this.parts = [];
        this.held = 0;
        this.onOversize();
        return false;
      }
      if (nl < 0) {
        if (end > at) {
          this.parts.push(chunk.subarray(at));
          this.held += end - at;
        }
        return true;
      }
      const piece = chunk.subarray(at, nl);
      const line = this.parts.length ? Buffer.concat([...this.parts, piece]) : piece;
      this.parts = [];
      this.held = 0;
      this.onLine(line);
      at = nl + 1;
    }
  }
}

type Params = Record<string, unknown>;
type Method = (client: Client, id: Id, params: Params) => unknown | Promise<unknown>;

export class Service {
  readonly host: Host;
  private server?: Server;
  private readonly queues = new Map<string, FairQueue>();
  private readonly drivers = new Map<string, Driver>();
  private readonly cfg = new Map<string, ServiceConfig['drivers'][number]>();
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
    readonly config: ServiceConfig,
    private readonly log: (s: string) => void = () => {},
    private readonly source = 'config',
  ) {
    this.limits = { ...DEFAULT_SERVICE_LIMITS, ...config.limits };
    // With a trust store configured, every driver (package or bare module) and every reload passes
    // the trust policy; unsigned ones only when their entry says allowUnsigned (by that name).
    this.host = new Host({
      limitCaps: config.limitCaps,
      trust:
        config.trust !== undefined
          ? {
              trust: config.trust,
              allowUnsigned: config.drivers.filter((d) => d.allowUnsigned).map((d) => d.name),
              onWarning: log,
            }
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
        this.server!.once('error', (err) =>
          reject(new Error(`${this.source}: socket: cannot listen on ${this.config.socket}: ${err.message}`)),
        );
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
          throw new Error(
            `${entry}: driver: ${d.driver}: cannot read: ${e.code === 'ENOENT' ? 'no such file' : e.message}`,
          );
        }
        let drv: Driver;
        try {
          const manifest =
            d.manifest !== undefined ? parseManifest(readFileSync(d.manifest, 'utf8'), d.manifest) : undefined;
          drv =
            this.host.trust || !isPackage(bytes)
              ? await this.host.load(bytes, dev, { name: d.name, manifest })
              : await loadPackage(this.host, bytes, dev, {
                  allowUnsigned: d.allowUnsigned ? [d.name] : [],
                  name: d.name,
                  onWarning: this.log,
                });
        } catch (err) {
          // Keep the class (a LoadError stays one: callers and tests tell refusals from faults by it).
          const Kind = err instanceof LoadError ? LoadError : Error;
          throw Object.assign(new Kind(`${entry}: driver: ${d.driver}: ${(err as Error).message}`), {
            fault: (err as { fault?: unknown }).fault,
          });
        }
        drv.on('fault', (f) => this.log(`${d.name}: fault ${f.kind}: ${f.message}`));
        this.drivers.set(d.name, drv);
        this.queues.set(
          d.name,
          new FairQueue(drv, (c, r) => {
            c.client.calls--;
            this.send(c.client, r.error ? errorReply(c.id, r.error) : { jsonrpc: '2.0', id: c.id, result: r.result });
          }),
        );
        this.log(`${d.name}: ${d.driver} on ${d.device}`);
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    this.log(`listening on ${this.config.socket}`);
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
    const drv = this.drivers.get(name);
    if (!drv)
      throw new RpcError(
        RPC.noSuchDriver,
        `no driver "${name.slice(0, 64)}" (serving: ${[...this.drivers.keys()].join(', ')})`,
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
    this.queues.get(name)!.push({
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
    for (const c of this.clients) c.socket.destroy();
    await new Promise<void>((r) => (this.server?.listening ? this.server.close(() => r()) : r()));
    await this.host.close();
    if (existsSync(this.config.socket)) unlinkSync(this.config.socket);
  }
}

const DEFERRED = Symbol('deferred');
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
