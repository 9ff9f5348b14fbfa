// The served set of a daemon: which driver runs under which config entry, its fair queue, and the
// hash of the files it was loaded from. Loading an entry (start), and bringing the set to a re-read
// config (SIGHUP): add, remove, hot-reload in place, or replace. daemon.ts is the socket side that
// serves this set; errors here name the config file, entry and field.

import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { Host } from '../host.ts';
import type { Driver } from '../driver.ts';
import { isPackage, loadPackage } from '../package/load.ts';
import { parseManifest } from '../package/manifest.ts';
import { LoadError } from '../faults.ts';
import type { ServiceConfig } from './config.ts';
import { type Client, errorReply, FairQueue } from './wire.ts';

export type DriverEntry = ServiceConfig['drivers'][number];

/** What a config re-read did (Service.reconfigure). */
export interface Reconfigured {
  /** False: the config was not applied at all (error says why); the running set is as it was. */
  ok: boolean;
  error?: string;
  added: string[];
  removed: string[];
  /** Hot-reloaded in place (the driver file changed). */
  reloaded: string[];
  /** Stopped and loaded anew (device, sim, manifest or allowUnsigned changed). */
  replaced: string[];
  /** Entries that could not be brought to what the new config says (each logged with its reason). */
  failed?: string[];
}

export class Roster {
  readonly queues = new Map<string, FairQueue>();
  readonly drivers = new Map<string, Driver>();
  readonly cfg = new Map<string, DriverEntry>();
  /** Hash of each served entry's driver (and manifest) file as loaded. */
  private readonly files = new Map<string, string>();

  constructor(
    private readonly host: Host,
    /** The trust policy's allowUnsigned names (the host holds this array; a re-read updates it). */
    private readonly allowUnsigned: string[],
    private readonly log: (s: string) => void,
    private readonly source: string,
    /** Where a queued call's reply goes. */
    private readonly reply: (client: Client, msg: unknown) => void,
  ) {}

  /** An entry's driver bytes (and manifest text), read now: errors name the entry and the field. */
  readEntry(d: DriverEntry, entry: string): { bytes: Uint8Array; manifest?: string } {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(d.driver));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new Error(
        `${entry}: driver: ${d.driver}: cannot read: ${e.code === 'ENOENT' ? 'no such file' : e.message}`,
      );
    }
    if (d.manifest === undefined) return { bytes };
    try {
      return { bytes, manifest: readFileSync(d.manifest, 'utf8') };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new Error(
        `${entry}: manifest: ${d.manifest}: cannot read: ${e.code === 'ENOENT' ? 'no such file' : e.message}`,
      );
    }
  }

  /** Open the entry's device and load (probe) its driver. Errors name the entry and the field. */
  async loadEntry(d: DriverEntry, entry: string, files: { bytes: Uint8Array; manifest?: string }) {
    let dev;
    try {
      dev = this.host.openDevice(d.device, { sim: d.sim });
    } catch (err) {
      throw new Error(`${entry}: device: ${(err as Error).message}`);
    }
    const { bytes } = files;
    try {
      const manifest = files.manifest !== undefined ? parseManifest(files.manifest, d.manifest!) : undefined;
      return this.host.trust || !isPackage(bytes)
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
  }

  /** Serve a loaded driver under its entry's name. */
  attach(d: DriverEntry, drv: Driver): void {
    drv.on('fault', (f) => this.log(`${d.name}: fault ${f.kind}: ${f.message}`));
    this.cfg.set(d.name, d);
    this.files.set(d.name, this.fileHash(d));
    this.drivers.set(d.name, drv);
    this.queues.set(
      d.name,
      new FairQueue(drv, (c, r) => {
        c.client.calls--;
        this.reply(c.client, r.error ? errorReply(c.id, r.error) : { jsonrpc: '2.0', id: c.id, result: r.result });
      }),
    );
    this.log(`${d.name}: ${d.driver} on ${d.device}`);
  }

  /** Stop a served driver and release its device; its queued calls get 'driver-stopped'. */
  async detach(name: string): Promise<void> {
    const drv = this.drivers.get(name);
    this.drivers.delete(name);
    this.queues.delete(name);
    this.cfg.delete(name);
    this.files.delete(name);
    if (drv) await this.host.release(drv);
  }

  /** What the bytes of an entry's files were when it loaded: a re-read reloads a driver whose file changed. */
  private fileHash(d: DriverEntry): string {
    const h = createHash('sha256');
    for (const f of [d.driver, d.manifest]) {
      if (f === undefined) continue;
      try {
        h.update(readFileSync(f));
      } catch {
        h.update('unreadable');
      }
    }
    return h.digest('hex');
  }

  /**
   * Bring the served set to `next` (already parsed, restart-only fields already compared). Throws,
   * with the set untouched, until the first driver of the old set changes; after that a failure is
   * recorded per entry in `done` and the rest still applies.
   */
  async apply(next: ServiceConfig, done: Reconfigured): Promise<void> {
    const names = new Set<string>();
    for (const [i, d] of next.drivers.entries()) {
      if (names.has(d.name)) throw new Error(`${this.source}: drivers[${i}] (${d.name}): name: given twice`);
      names.add(d.name);
    }
    // Sort every entry into what happens to it, reading the files of all that load anything new now,
    // before anything changes: an unreadable file stops the re-read with the running set untouched.
    type Plan = { d: DriverEntry; entry: string; files: { bytes: Uint8Array; manifest?: string } };
    const add: Plan[] = [];
    const reload: Plan[] = [];
    const replace: Plan[] = [];
    for (const [i, d] of next.drivers.entries()) {
      const entry = `${this.source}: drivers[${i}] (${d.name})`;
      const old = this.cfg.get(d.name);
      if (!old) add.push({ d, entry, files: this.readEntry(d, entry) });
      else if (
        old.device !== d.device ||
        JSON.stringify(old.sim) !== JSON.stringify(d.sim) ||
        old.manifest !== d.manifest ||
        Boolean(old.allowUnsigned) !== Boolean(d.allowUnsigned)
      )
        replace.push({ d, entry, files: this.readEntry(d, entry) });
      else if (old.driver !== d.driver || this.files.get(d.name) !== this.fileHash(d))
        reload.push({ d, entry, files: this.readEntry(d, entry) });
      else this.cfg.set(d.name, d); // unchanged driver; `allow` may have changed and applies at once
    }
    const remove = [...this.drivers.keys()].filter((n) => !names.has(n));
    // A new entry on a device that an outgoing driver holds waits for it to go; the others load first,
    // and if one of them fails, they are all stopped again and nothing else changes.
    const leaving = new Set([...remove, ...replace.map((p) => p.d.name)].map((n) => this.cfg.get(n)!.device));
    const early = add.filter((p) => !leaving.has(p.d.device));
    const late = add.filter((p) => leaving.has(p.d.device));
    const loaded: [DriverEntry, Driver][] = [];
    const allowedBefore = this.allowUnsigned.splice(0);
    this.allowUnsigned.push(...next.drivers.filter((d) => d.allowUnsigned).map((d) => d.name));
    try {
      for (const p of early) loaded.push([p.d, await this.loadEntry(p.d, p.entry, p.files)]);
    } catch (err) {
      for (const [, drv] of loaded) await this.host.release(drv);
      this.allowUnsigned.splice(0, Infinity, ...allowedBefore);
      throw err;
    }
    for (const [d, drv] of loaded) {
      this.attach(d, drv);
      done.added.push(d.name);
    }
    // From here on the old set is being changed: a failure is reported per entry, the rest still applies.
    const fail = (name: string, err: unknown) => {
      (done.failed ??= []).push(name);
      this.log(`config re-read: ${(err as Error).message.split('\n')[0]}`);
    };
    for (const name of remove) {
      await this.detach(name);
      done.removed.push(name);
    }
    for (const p of reload) {
      const r = await this.drivers.get(p.d.name)!.reload(p.files.bytes);
      if (!r.ok) {
        fail(p.d.name, new Error(`${p.entry}: driver: ${p.d.driver}: reload refused: ${r.error}`));
        continue;
      }
      this.cfg.set(p.d.name, p.d);
      this.files.set(p.d.name, this.fileHash(p.d));
      done.reloaded.push(p.d.name);
    }
    for (const p of [...replace, ...late]) {
      if (this.drivers.has(p.d.name)) await this.detach(p.d.name);
      try {
        this.attach(p.d, await this.loadEntry(p.d, p.entry, p.files));
        (replace.includes(p) ? done.replaced : done.added).push(p.d.name);
      } catch (err) {
        fail(p.d.name, err);
      }
    }
  }
}
