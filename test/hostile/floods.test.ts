// Floods a driver can cause (issue 15, class 2): its own log calls and the guest errors a device
// model reports for its accesses, from a request or from the interrupt handler, alone or mixed, on
// register and port devices. They all go through one limiter charged to the driver, which ends with
// the fault `log-flood`; the main thread receives a bounded number of messages, host memory stays
// bounded (peak RSS reported), and the bystander answers throughout.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, type Fault } from '../../host/index.ts';
import { DEFAULT_LIMITS } from '../../host/grant.ts';
import { Bystander } from './bystander.ts';
import { driverWat, times } from './modules.ts';
import { root, u32 } from '../helpers.ts';

const MiB = 1024 * 1024;
const host = new Host();
let bystander: Bystander;
let messages = 0;
let n = 0;
const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-flood-'));
beforeAll(async () => {
  host.on('log', () => messages++);
  bystander = await Bystander.start(host);
});
afterAll(async () => {
  await host.close();
  rmSync(tmp, { recursive: true, force: true });
});

const IMPORTS = `
  (import "wasmdrv" "reg_read8" (func $rd8 (param i32 i32) (result i32)))
  (import "wasmdrv" "reg_write16" (func $wr16 (param i32 i32 i32)))
  (import "wasmdrv" "reg_write32" (func $wr32 (param i32 i32 i32)))
  (import "wasmdrv" "log" (func $log (param i32 i32 i32)))`;
const REJECTED_READ = '(drop (call $rd8 (i32.const 0) (i32.const 0)))'; // edu: 1-byte read, a guest error
const REJECTED_WRITE = '(call $wr16 (i32.const 0) (i32.const 4) (i32.const 7))'; // edu: 2-byte write, a guest error
const LOG = '(call $log (i32.const 1) (i32.const 0) (i32.const 16))';
const RAISE = '(call $wr32 (i32.const 0) (i32.const 0x60) (i32.const 1))'; // edu: raise an interrupt

/** Peak resident set size while `fn` runs, sampled every 5 ms, against the size before it. */
async function peakRss<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    peak = Math.max(peak, process.memoryUsage.rss());
    console.log(
      `${label}: RSS before ${(before / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB (+${((peak - before) / MiB).toFixed(1)} MiB)`,
    );
    expect(peak - before, `${label}: host memory grew by ${((peak - before) / MiB).toFixed(1)} MiB`).toBeLessThan(
      150 * MiB,
    );
  }
}

/** Load `bytes` on a fresh device, send one request, and return the fault that ends it. */
async function flood(label: string, bytes: Uint8Array, device = 'edu', limits = {}): Promise<Fault> {
  const before = messages;
  const dev = host.openDevice(`sim:${device}:flood${n++}`);
  const drv = await host.load(bytes, dev, { name: `flood${n}`, restart: false, limits });
  const t0 = performance.now();
  const fault = await bystander.during(() =>
    peakRss(label, async () => {
      const faulted = new Promise<Fault>((resolve) => drv.once('fault', resolve));
      const answer = await drv.request(1, u32(0)).then(
        () => 'answered',
        (e) => e.code,
      );
      const f = await faulted;
      return Object.assign(f, { answer });
    }),
  );
  const got = messages - before;
  const seconds = (performance.now() - t0) / 1000;
  console.log(`${label}: ${got} messages reached the main thread before the fault (${seconds.toFixed(3)} s)`);
  // One bucket: at most the burst plus what refilled while the attack ran (the rate times its
  // duration, however slow the machine is; it ends within milliseconds on a quiet one).
  const rate = (limits as { logPerSec?: number }).logPerSec ?? DEFAULT_LIMITS.logPerSec;
  expect(got).toBeLessThanOrEqual(DEFAULT_LIMITS.logBurst + Math.ceil(rate * seconds) + 1);
  expect(drv.state).toBe('faulted');
  return fault;
}

describe('floods end in log-flood, with bounded host memory', () => {
  it('a request looping over a granted read the model rejects (5M times)', async () => {
    const f = await flood(
      'rejected reads in a request',
      driverWat({ imports: IMPORTS, request: `${times(5_000_000, REJECTED_READ)} (i32.const 0)` }),
    );
    expect(f.kind, f.message).toBe('log-flood');
    expect(f.phase).toBe('request');
    expect(f.message).toContain('device guest error');
  });

  it('a request looping over a granted 2-byte write the model rejects', async () => {
    const f = await flood(
      'rejected writes in a request',
      driverWat({ imports: IMPORTS, request: `${times(5_000_000, REJECTED_WRITE)} (i32.const 0)` }),
    );
    expect(f.kind, f.message).toBe('log-flood');
  });

  it('the interrupt handler looping over rejected reads (never past the deadline or the storm limit before)', async () => {
    const f = await flood(
      'rejected reads in the interrupt handler',
      driverWat({
        imports: IMPORTS,
        request: `${RAISE} (i32.const 0)`,
        interrupt: times(5_000_000, REJECTED_READ),
      }),
    );
    expect(f.kind, f.message).toBe('log-flood');
    expect(f.phase).toBe('interrupt');
  });

  it('the interrupt handler logging in a loop', async () => {
    const f = await flood(
      'logs in the interrupt handler',
      driverWat({ imports: IMPORTS, request: `${RAISE} (i32.const 0)`, interrupt: times(5_000_000, LOG) }),
    );
    expect(f.kind, f.message).toBe('log-flood');
    expect(f.phase).toBe('interrupt');
  });

  it('one limiter: 600 logs and 600 guest errors, each under the burst alone, flood together', async () => {
    const f = await flood(
      'logs and guest errors mixed',
      driverWat({ imports: IMPORTS, request: `${times(600, LOG)} ${times(600, REJECTED_READ)} (i32.const 0)` }),
    );
    expect(f.kind, f.message).toBe('log-flood');
    expect(f.message).toContain('logs and device guest errors together');
  });

  it('port I/O: 2-byte ins the UART model rejects', async () => {
    const f = await flood(
      'rejected port ins',
      driverWat({
        imports: '(import "wasmdrv" "io_in16" (func $in16 (param i32 i32) (result i32)))',
        request: `${times(5_000_000, '(drop (call $in16 (i32.const 0) (i32.const 0)))')} (i32.const 0)`,
      }),
      'uart16550',
    );
    expect(f.kind, f.message).toBe('log-flood');
  });

  it('a lower operator limit applies to guest errors too', async () => {
    const f = await flood(
      'rejected reads, logBurst 20',
      driverWat({ imports: IMPORTS, request: `${times(100, REJECTED_READ)} (i32.const 0)` }),
      'edu',
      { logBurst: 20, logPerSec: 1 },
    );
    expect(f.kind, f.message).toBe('log-flood');
    expect(f.message).toContain('more than 20 messages');
  });

  it('the CLI prints a bounded number of lines and exits 1', () => {
    const file = join(tmp, 'flood.wasm');
    writeFileSync(file, driverWat({ imports: IMPORTS, request: `${times(5_000_000, REJECTED_READ)} (i32.const 0)` }));
    const r = spawnSync(
      process.execPath,
      [join(root, 'bin', 'wasmdrv.js'), 'run', file, '--device', 'sim:edu', '--request', '1'],
      {
        // No trust store anywhere (a bare module runs without a policy): HOME without one, no $WASMDRV_TRUST.
        encoding: 'utf8',
        env: { ...process.env, HOME: tmp, WASMDRV_TRUST: undefined },
        maxBuffer: 64 * MiB,
      },
    );
    const lines = r.stderr.split('\n').length;
    console.log(`CLI: ${lines} lines on stderr`);
    expect(r.stderr).toContain('log-flood');
    expect(lines).toBeLessThan(DEFAULT_LIMITS.logBurst + 100);
    expect(r.status).toBe(1);
  });
});
