// A driver's requests, from the caller's promise to the answer: the queue of requests no instance has
// seen yet, the ones in flight to the worker by id, and what becomes of each across a fault. Owns the
// rule that no request is ever dropped: each is answered with the driver's response, its negative
// status ('driver-error'), or the distinct RequestError the Driver or its supervisor passes in
// (host/driver.ts, host/driver/supervisor.ts). While any request is pending it holds a ref'd handle,
// so the process does not exit under a waiting caller. Ids are one sequence shared with reloads, so
// that the worker's `STAT.serving` tells which requests the driver had seen.

import { RequestError } from '../faults.ts';
import type { FromWorker, ToWorker } from '../sandbox/protocol.ts';

interface Pending {
  op: number;
  data: Uint8Array;
  resolve: (v: Uint8Array) => void;
  reject: (e: Error) => void;
}

export class RequestQueue {
  private readonly queue: Pending[] = [];
  private inflight = new Map<number, Pending>();
  private nextId = 1;
  /** A ref'd handle while any request is pending: the process does not exit under a waiting caller. */
  private hold?: NodeJS.Timeout;

  constructor(
    private readonly name: string,
    /** The driver's io buffer in bytes, once known: larger payloads are refused. */
    private readonly ioSize: () => number | undefined,
  ) {}

  /** The next id of the one sequence requests and reloads share. */
  newId(): number {
    return this.nextId++;
  }

  add(op: number, data: Uint8Array, resolve: (v: Uint8Array) => void, reject: (e: Error) => void): void {
    this.queue.push({ op, data, resolve, reject });
  }

  /** Forward queued requests to a running worker (the worker serialises them); none while `to` is undefined. */
  pump(to: { send(m: ToWorker): void } | undefined): void {
    this.holdWhilePending();
    if (!to) return;
    const ioSize = this.ioSize();
    while (this.queue.length) {
      const p = this.queue.shift()!;
      if (ioSize !== undefined && p.data.length > ioSize) {
        p.reject(this.tooLarge(p.data.length));
        continue;
      }
      const id = this.nextId++;
      this.inflight.set(id, p);
      to.send({ t: 'request', id, op: p.op, data: p.data });
    }
  }

  tooLarge(n: number): RequestError {
    return new RequestError(
      `${this.name}: request payload of ${n} bytes is larger than the driver's io buffer (${this.ioSize()} bytes)`,
      'payload-too-large',
    );
  }

  /** The worker's answer to one request. */
  respond(m: Extract<FromWorker, { t: 'response' }>): void {
    const p = this.inflight.get(m.id);
    if (!p) return;
    this.inflight.delete(m.id);
    if (m.error === 'payload-too-large') p.reject(this.tooLarge(p.data.length));
    else if (m.data) p.resolve(m.data);
    else
      p.reject(
        new RequestError(
          `${this.name}: request ${p.op} failed with driver status ${m.status}`,
          'driver-error',
          m.status,
        ),
      );
    this.holdWhilePending();
  }

  /**
   * After a fault: the request the driver held (every id up to `held`, the worker's STAT.serving) gets
   * 'driver-restarted'; the ones sent behind it, which the driver never saw, go back to the front of
   * the queue, in order, for the next instance.
   */
  takeBackInflight(held: number, why: string): void {
    const back: Pending[] = [];
    for (const [id, p] of this.inflight) {
      if (id <= held)
        p.reject(new RequestError(`${this.name}: ${why} while serving request ${p.op}`, 'driver-restarted'));
      else back.push(p);
    }
    this.inflight.clear();
    this.queue.unshift(...back);
    this.holdWhilePending();
  }

  /** Every pending request, in flight or queued, gets `err`. */
  failAll(err: RequestError): void {
    for (const p of this.inflight.values()) p.reject(err);
    this.inflight.clear();
    for (const p of this.queue.splice(0)) p.reject(err);
    this.holdWhilePending();
  }

  private holdWhilePending(): void {
    const pending = this.queue.length + this.inflight.size > 0;
    if (pending && !this.hold) this.hold = setInterval(() => {}, 1 << 30);
    else if (!pending && this.hold) {
      clearInterval(this.hold);
      this.hold = undefined;
    }
  }
}
