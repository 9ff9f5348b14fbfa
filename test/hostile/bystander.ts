// The bystander: the shipped edu driver on a simulated edu device of its own, next to every attack.
// It must answer correct factorials before, during and after each one (the host and its other
// drivers are what a hostile driver must not reach).
import { expect } from 'vitest';
import type { Driver, Host } from '../../host/index.ts';
import { loadPackage } from '../../host/package/load.ts';
import { driverPath, root, u32, words } from '../helpers.ts';
import { join } from 'node:path';

const FACT = [1, 1, 2, 6, 24, 120, 720, 5040, 40320, 362880, 3628800, 39916800, 479001600];
let n = 0;

export class Bystander {
  private constructor(readonly drv: Driver) {}

  /**
   * Load the bystander into `host`. Under a trust policy it is the shipped signed package (the
   * development key's trust store must be the host's); otherwise the plain module.
   */
  static async start(host: Host): Promise<Bystander> {
    const device = `sim:edu:bystander${n++}`;
    const drv = host.trust
      ? await host.load(join(root, 'build', 'packages', 'edu.wdrv'), device, { name: 'bystander' })
      : await host.load(driverPath('edu'), device, { name: 'bystander' });
    const b = new Bystander(drv);
    await b.check();
    return b;
  }

  /** The same, through loadPackage with the development trust store (for hosts without a policy). */
  static async startSigned(host: Host): Promise<Bystander> {
    const drv = await loadPackage(host, join(root, 'build', 'packages', 'edu.wdrv'), `sim:edu:bystander${n++}`, {
      trust: join(root, '.keys', 'trust'),
      name: 'bystander',
    });
    const b = new Bystander(drv);
    await b.check();
    return b;
  }

  /** Three factorials through the interrupt path, each checked. */
  async check(): Promise<void> {
    for (const k of [5, 10, 12]) {
      expect(words(await this.drv.request(2, u32(k))), `bystander ${k}!`).toEqual([FACT[k]]);
    }
    expect(this.drv.state).toBe('running');
  }

  /** Run `attack` while the bystander keeps answering; then check it once more. */
  async during<T>(attack: () => Promise<T>): Promise<T> {
    let stop = false;
    let answered = 0;
    const loop = (async () => {
      while (!stop) {
        await this.check();
        answered++;
      }
    })();
    try {
      return await attack();
    } finally {
      stop = true;
      await loop;
      expect(answered, 'the bystander answered during the attack').toBeGreaterThan(0);
      await this.check();
    }
  }
}
