// The bridge between a sandboxed NIC and the kernel's network stack: a Linux TAP interface whose
// frames go out through the driver's TX ring, and whose received frames come from the driver's RX ring.
//
// The interface follows the device: its MAC is the NIC's (so the kernel's replies are addressed to a
// MAC the NIC's filter accepts, no promiscuous mode needed), its carrier is the NIC's link (TUNSETCARRIER:
// `ip link` shows NO-CARRIER while the cable is out), and it is brought up when the bridge starts.
//
// One loop, one request at a time (the driver serves requests in order): drain the TAP (non-blocking
// reads, one frame each) into one send batch, then one receive request that waits up to `waitUs` for
// the NIC's RX interrupt when there was nothing to send. A frame sent by the kernel therefore waits at
// most `waitUs` (default 1 ms) before it reaches the TX ring. Frames the TX ring cannot take yet wait
// in a bounded queue; beyond it they are dropped and counted, as a full qdisc would.

import type { Driver } from '../driver.ts';
import type { RequestError } from '../faults.ts';
import { loadNative } from '../native.ts';
import { E1000Client, E1000_MAX_FRAME } from './e1000.ts';

export interface TapBridgeOptions {
  /** Interface name (default: the kernel picks tapN). */
  tap?: string;
  /** How long a receive request waits for a frame when the TAP had nothing (µs). Default 1000. */
  waitUs?: number;
  /** Frames per batch, each way. Default 32. */
  batch?: number;
  /** How often the link state is read from the driver (ms). Default 100. */
  linkEveryMs?: number;
  /** Frames waiting for room in the TX ring before new ones are dropped. Default 256. */
  queue?: number;
}

export interface TapBridgeStats {
  /** Frames from the kernel (TAP) handed to the driver's TX ring. */
  toNic: number;
  /** Frames from the driver's RX ring written to the TAP. */
  toKernel: number;
  /** Frames dropped: the TX queue was full, the TAP would block, or a frame had an impossible size. */
  dropped: number;
  /** Driver requests that failed for another reason than a restart. */
  errors: number;
  /** Driver requests cut short by a fault or kill (answered 'driver-restarted'; the supervisor restarts it). */
  interrupted: number;
  linkUp: boolean;
  linkChanges: number;
  /** The longest turn of the loop (ms): how long the TAP went unread, e.g. across a reload. */
  longestTurnMs: number;
}

export class TapBridge {
  readonly stats: TapBridgeStats = {
    toNic: 0,
    toKernel: 0,
    dropped: 0,
    errors: 0,
    interrupted: 0,
    linkUp: false,
    linkChanges: 0,
    longestTurnMs: 0,
  };
  private closed = false;
  private readonly pending: Uint8Array[] = [];
  private readonly loopDone: Promise<void>;
  private readonly rxBuf = new Uint8Array(65536);

  private constructor(
    private readonly nic: E1000Client,
    readonly name: string,
    readonly mac: string,
    private readonly fd: number,
    private readonly opts: Required<Omit<TapBridgeOptions, 'tap'>>,
  ) {
    this.loopDone = this.loop();
  }

  /** Create the TAP interface, give it the NIC's MAC and link, bring it up, start moving frames. */
  static async open(driver: Driver, options: TapBridgeOptions = {}): Promise<TapBridge> {
    const native = loadNative();
    const nic = new E1000Client(driver);
    const { mac } = await nic.mac();
    const link = await nic.link();
    const { fd, name } = native.tapOpen(options.tap ?? '');
    try {
      native.netSetMac(name, Uint8Array.from(mac.split(':').map((h) => parseInt(h, 16))));
      native.tapSetCarrier(fd, link.up);
      native.netSetUp(name, true);
    } catch (err) {
      native.close(fd);
      throw err;
    }
    const b = new TapBridge(nic, name, mac, fd, {
      waitUs: options.waitUs ?? 1000,
      batch: options.batch ?? 32,
      linkEveryMs: options.linkEveryMs ?? 100,
      queue: options.queue ?? 256,
    });
    b.stats.linkUp = link.up;
    return b;
  }

  private async loop(): Promise<void> {
    const native = loadNative();
    let linkAt = 0;
    let turnAt = performance.now();
    while (!this.closed) {
      const t = performance.now();
      if (t - turnAt > this.stats.longestTurnMs) this.stats.longestTurnMs = +(t - turnAt).toFixed(1);
      turnAt = t;
      try {
        // kernel → NIC
        while (this.pending.length < this.opts.queue) {
          const n = native.readInto(this.fd, this.rxBuf);
          if (n < 0) break;
          if (n < 14 || n > E1000_MAX_FRAME) this.stats.dropped++;
          else this.pending.push(this.rxBuf.slice(0, n));
        }
        let sent = 0;
        if (this.pending.length) {
          sent = await this.nic.send(this.pending.slice(0, this.opts.batch));
          this.pending.splice(0, sent);
          this.stats.toNic += sent;
        }
        // NIC → kernel; wait for the RX interrupt only when there is nothing else to do.
        const idle = sent === 0 && this.pending.length === 0;
        for (const f of await this.nic.recv(this.opts.batch, idle ? this.opts.waitUs : 0)) {
          if (native.writeFrom(this.fd, f) < 0) this.stats.dropped++;
          else this.stats.toKernel++;
        }
        const now = Date.now();
        if (now - linkAt >= this.opts.linkEveryMs) {
          linkAt = now;
          const link = await this.nic.link();
          if (link.up !== this.stats.linkUp) native.tapSetCarrier(this.fd, link.up);
          this.stats.linkUp = link.up;
          this.stats.linkChanges = link.changes;
        }
      } catch (err) {
        if (this.closed) break;
        if ((err as RequestError).code === 'driver-restarted') this.stats.interrupted++;
        else this.stats.errors++;
        // The driver faulted: its supervisor restarts it; try again shortly.
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Stop the loop and delete the TAP interface (closing its fd removes a non-persistent TAP). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.loopDone;
    loadNative().close(this.fd);
  }
}
