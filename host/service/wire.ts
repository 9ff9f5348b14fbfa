// The daemon's wire and its fairness, apart from the Service that uses them (daemon.ts): who a client is,
// the limits one client and all of them are held to, the JSON-RPC error codes with their names, the
// line framing that never buffers past the frame limit, and the per-driver queue that serves clients
// round-robin, one call in the driver at a time.

import type { Socket } from 'node:net';
import type { Driver } from '../driver.ts';
import type { RequestError } from '../faults.ts';

export interface Client {
  socket: Socket;
  uid: number;
  gid: number;
  pid: number;
  closed: boolean;
  /** Calls of this client queued or in a driver, across drivers. */
  calls: number;
}

export type Id = string | number | null;

export interface Call {
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

export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly name_ = NAMES[code] ?? 'error',
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const errorReply = (id: Id, e: RpcError) => ({
  jsonrpc: '2.0',
  id,
  error: { code: e.code, message: e.message, data: { code: e.name_, ...e.extra } },
});

/** Per driver: a FIFO per client, served round-robin, one call in the driver at a time. */
export class FairQueue {
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
export class LineReader {
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
