// Hot reload: swap a running driver's module without losing an interrupt or a request.
//
// The procedure (Driver.reload → the worker's `reload`, host/sandbox/worker.ts):
//  1. The reload message queues behind the requests already sent, so the swap happens at a quiet
//     point: between two handler calls, never inside one. Requests sent after it queue behind it and
//     are served by the new module.
//  2. The new module is compiled, checked against the ABI and linked under the same grant over the
//     same device session. If that fails, the old instance keeps running untouched.
//  3. The old instance's state_save bytes (versioned by the driver) go into the new instance's
//     state_restore, which runs instead of probe. A driver without state_save is reloaded by a fresh
//     probe; so is any reload with { fresh: true }.
//  4. If the new module refuses the state (an incompatible state version: state_restore < 0) or its
//     probe fails, the swap is refused and the old instance keeps running. Policy for incompatible
//     versions: refused; reload again with { fresh: true } to re-probe the device instead.
//  5. The new instance inherits the interrupt count the old one had seen and leaves the interrupt
//     fd's readiness alone: UIO counts are cumulative, so an interrupt that arrived during the swap is
//     delivered to the new instance by the next poll. None can be lost.
//  6. Within the grace period (default 1 s) a fault of the new module rolls back: a new worker starts
//     the old module and restores the state saved at the swap.

import { Host } from './host.ts';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { packageRoot } from './native.ts';

export type { ReloadOptions, ReloadResult } from './driver.ts';

/** Swap times of `n` reloads of the edu driver on a simulated device: median and p99 in ms. */
export async function measureReload(n: number): Promise<{ median: number; p99: number; n: number }> {
  const host = new Host();
  try {
    const path = join(packageRoot(), 'build', 'drivers', 'edu.wasm');
    const bytes = new Uint8Array(readFileSync(path));
    const drv = await host.load(bytes, 'sim:edu:reload-bench', { name: 'edu' });
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await drv.reload(bytes);
      if (!r.ok) throw new Error(`reload ${i} failed: ${r.error}`);
      times.push(r.swapMs);
    }
    times.sort((a, b) => a - b);
    return {
      median: times[times.length >> 1],
      p99: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))],
      n,
    };
  } finally {
    await host.close();
  }
}
