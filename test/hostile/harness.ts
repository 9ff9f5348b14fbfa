// The hostile-driver suite's harness: a bystander edu driver on its own simulated device that must
// answer correct factorials before, during and after each attack; signed packages from a throwaway
// trust store; attacks that end in a typed fault; and the simulated devices' DMA records, which
// count every byte a device reached outside its DMA windows.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import {
  type Host,
  loadPackage,
  simDmaRecord,
  type DmaRecordSnapshot,
  type Driver,
  type Fault,
} from '../../host/index.ts';
import { appendSection, generateKeys, MANIFEST_SECTION, signPackage } from '../../host/package/sign.ts';
import { driverPath, root, u32, words } from '../helpers.ts';

export const eduManifest = JSON.parse(readFileSync(join(root, 'guest-drivers', 'edu', 'manifest.json'), 'utf8'));

/** A trust store with one key in a temporary directory; `sign` packs and signs a module with a manifest. */
export function trustStore() {
  const dir = mkdtempSync(join(tmpdir(), 'wasmdrv-hostile-'));
  const trust = join(dir, 'trust');
  mkdirSync(trust);
  const key = generateKeys();
  writeFileSync(join(trust, 'hostile-suite.pub'), key.publicPem);
  return {
    trust,
    sign(module: string | Uint8Array, manifest: object): Uint8Array {
      const bytes = typeof module === 'string' ? new Uint8Array(readFileSync(driverPath(module))) : module;
      return signPackage(
        appendSection(bytes, MANIFEST_SECTION, new TextEncoder().encode(JSON.stringify(manifest))),
        key.privatePem,
      );
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const FACTORIALS: [number, number][] = [
  [5, 120],
  [10, 3628800],
  [12, 479001600],
  [7, 5040],
];

/** The edu driver, signed with its shipped manifest, on a simulated edu device of its own. */
export class Bystander {
  answered = 0;
  private constructor(
    readonly drv: Driver,
    readonly device: string,
  ) {}

  static async start(
    host: Host,
    store: ReturnType<typeof trustStore>,
    device = 'sim:edu:bystander',
  ): Promise<Bystander> {
    const drv = await loadPackage(host, store.sign('edu', eduManifest), device, { trust: store.trust });
    const b = new Bystander(drv, device);
    await b.check();
    return b;
  }

  /** One round of factorials, each checked. */
  async check(): Promise<void> {
    for (const [n, want] of FACTORIALS) {
      expect(words(await this.drv.request(2, u32(n))), `bystander ${n}!`).toEqual([want]);
      this.answered++;
    }
    expect(this.drv.state).toBe('running');
  }

  /** Run `attack` while the bystander keeps answering; checks before, during (at least one round) and after. */
  async during<T>(attack: () => Promise<T>): Promise<T> {
    await this.check();
    let stop = false;
    let rounds = 0;
    const loop = (async () => {
      while (!stop || rounds === 0) {
        await this.check();
        rounds++;
      }
    })();
    try {
      return await attack();
    } finally {
      stop = true;
      await loop;
      await this.check();
    }
  }
}

/** What an attack ended in: the fault (if any) and the request's own outcome. */
export interface AttackResult {
  fault?: Fault;
  response?: Uint8Array;
  error?: Error;
}

/** Send one request that should make the driver fault; resolves once the request is answered and the fault (if any) is reported. */
export async function attack(drv: Driver, op: number, payload: Uint8Array): Promise<AttackResult> {
  const out: AttackResult = {};
  const faulted = new Promise<void>((resolve) =>
    drv.once('fault', (f: Fault) => {
      out.fault = f;
      resolve();
    }),
  );
  try {
    out.response = await drv.request(op, payload);
  } catch (err) {
    out.error = err as Error;
    await faulted; // a request answered with an error is one the fault ended: wait for its report
  }
  return out;
}

/** A simulated device's DMA record (throws for a device that has none). */
export function dmaRecord(host: Host, device: string): DmaRecordSnapshot {
  const r = simDmaRecord(host.openDevice(device).spec);
  if (!r) throw new Error(`${device}: no DMA record (not a simulated device?)`);
  return r;
}

/** Bytes the device read or wrote outside its DMA windows. */
export function outsideBytes(host: Host, device: string): number {
  const r = dmaRecord(host, device);
  return r.outsideReadBytes + r.outsideWriteBytes;
}
