// A small Node client for the daemon (host/service/daemon.ts): JSON-RPC 2.0, one message per line.
import { createConnection, type Socket } from 'node:net';

export class ServiceError extends Error {
  /**
   * `code`: the error's name (error.data.code: 'driver-restarted', 'permission-denied', 'too-many-calls', ...,
   * or 'disconnected', 'no-daemon', 'bad-reply' from this side); `rpcCode`: the JSON-RPC number.
   */
  constructor(
    message: string,
    readonly code?: string,
    readonly rpcCode?: number,
    readonly data?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/** Replies can be large (status of many drivers), but not unbounded. */
const MAX_REPLY_BYTES = 64 << 20;

export class ServiceClient {
  private nextId = 1;
  private parts: Buffer[] = [];
  private held = 0;
  private readonly pending = new Map<number, { resolve: (m: any) => void; reject: (e: Error) => void }>();
  /** An error reply without an id (the daemon refused the connection or a frame). */
  lastRefusal?: ServiceError;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.onData(d));
    const fail = (err?: Error) => {
      const why =
        this.lastRefusal ?? new ServiceError(`connection closed${err ? `: ${err.message}` : ''}`, 'disconnected');
      for (const p of this.pending.values()) p.reject(why);
      this.pending.clear();
    };
    socket.on('close', () => fail());
    socket.on('error', fail);
  }

  private onData(d: Buffer): void {
    let at = 0;
    for (let nl = d.indexOf(0x0a); nl >= 0; nl = d.indexOf(0x0a, at)) {
      const line = this.parts.length ? Buffer.concat([...this.parts, d.subarray(at, nl)]) : d.subarray(at, nl);
      this.parts = [];
      this.held = 0;
      at = nl + 1;
      this.onReply(line.toString('utf8'));
    }
    if (at < d.length) {
      this.held += d.length - at;
      this.parts.push(d.subarray(at));
      if (this.held > MAX_REPLY_BYTES) this.socket.destroy(new Error(`a reply longer than ${MAX_REPLY_BYTES} bytes`));
    }
  }

  private onReply(text: string): void {
    let m: any;
    try {
      m = JSON.parse(text);
    } catch {
      this.socket.destroy(new Error('the daemon sent a line that is not JSON'));
      return;
    }
    const err = m?.error
      ? new ServiceError(String(m.error.message), m.error.data?.code, m.error.code, m.error.data)
      : undefined;
    if (m?.id === null || m?.id === undefined) {
      if (err) this.lastRefusal = err;
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (err) p.reject(err);
    else p.resolve(m.result);
  }

  static connect(path: string): Promise<ServiceClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      s.once('connect', () => resolve(new ServiceClient(s)));
      s.once('error', (err) => reject(new ServiceError(`cannot connect to ${path}: ${err.message}`, 'no-daemon')));
    });
  }

  /** One JSON-RPC request; resolves with its result, rejects with a ServiceError. */
  request(method: string, params?: Record<string, unknown>): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) })}\n`);
    });
  }

  async call(driver: string, op: number, data: Uint8Array = new Uint8Array()): Promise<Uint8Array> {
    const r = await this.request('call', { driver, op, data: Buffer.from(data).toString('base64') });
    return new Uint8Array(Buffer.from(r.data, 'base64'));
  }

  status(): Promise<any> {
    return this.request('status');
  }

  reload(driver: string, path: string): Promise<any> {
    return this.request('reload', { driver, path });
  }

  stop(driver: string): Promise<void> {
    return this.request('stop', { driver });
  }

  close(): void {
    this.socket.end();
  }
}
