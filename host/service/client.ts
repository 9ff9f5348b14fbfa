// A small Node client for the daemon (host/service/daemon.ts).
import { createConnection, type Socket } from 'node:net';

export class ServiceError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'ServiceError';
  }
}

export class ServiceClient {
  private nextId = 1;
  private buf = '';
  private readonly pending = new Map<number, { resolve: (m: any) => void; reject: (e: Error) => void }>();

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d) => {
      this.buf += d.toString('utf8');
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
        const p = this.pending.get(m.id);
        if (!p) continue;
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m);
        else p.reject(new ServiceError(m.error, m.code));
      }
    });
    const fail = (err?: Error) => {
      for (const p of this.pending.values()) p.reject(new ServiceError(`connection closed${err ? `: ${err.message}` : ''}`, 'disconnected'));
      this.pending.clear();
    };
    socket.on('close', () => fail());
    socket.on('error', fail);
  }

  static connect(path: string): Promise<ServiceClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      s.once('connect', () => resolve(new ServiceClient(s)));
      s.once('error', (err) => reject(new ServiceError(`cannot connect to ${path}: ${err.message}`, 'no-daemon')));
    });
  }

  private rpc(msg: Record<string, unknown>): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ id, ...msg })}\n`);
    });
  }

  async call(driver: string, op: number, data: Uint8Array = new Uint8Array()): Promise<Uint8Array> {
    const r = await this.rpc({ method: 'call', driver, op, data: Buffer.from(data).toString('base64') });
    return new Uint8Array(Buffer.from(r.data, 'base64'));
  }

  async status(): Promise<any> {
    return (await this.rpc({ method: 'status' })).status;
  }

  async reload(driver: string, path: string): Promise<any> {
    return (await this.rpc({ method: 'reload', driver, path })).reload;
  }

  close(): void {
    this.socket.end();
  }
}
