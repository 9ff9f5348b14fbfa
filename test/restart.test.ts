// No request is lost across a restart: each is answered, or rejected with its code; the requests the
// driver never saw are served by the next instance, in order; the process stays alive meanwhile.
//
// The soak's length is a parameter: WASMDRV_SOAK_CYCLES=10000 npx vitest run test/restart.test.ts
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Driver, Host, type RequestError } from '../host/index.ts';
import { driverPath, root } from './helpers.ts';

const OP_ECHO = 0,
  OP_TRAP = 6,
  OP_HANG = 10;
const CODES = [
  'driver-error',
  'driver-faulted',
  'driver-restarted',
  'driver-failed',
  'driver-stopped',
  'too-large',
  'payload-too-large',
];

let host: Host | undefined;
afterEach(async () => {
  await host?.close();
  host = undefined;
});

/** Keep both cores busy (bounded: each burner ends itself after `ms`). */
function burners(ms: number): ChildProcess[] {
  return Array.from({ length: 2 }, () =>
    spawn(process.execPath, ['-e', `const end = Date.now() + ${ms}; while (Date.now() < end);`], { stdio: 'ignore' }),
  );
}

// The recipe, in a process of its own: a lost request shows as a process that ends (status 0
// or 13, "unsettled top-level await") before printing its rounds.
const ROUNDS = `
import { Host } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
const host = new Host();
const drv = await host.load(${JSON.stringify(driverPath('test/broken'))}, 'sim:edu:crash', { name: 'crash', restart: { backoffMs: 0, maxBackoffMs: 0, budget: 21 } });
let rounds = 0;
for (let i = 0; i < 20; i++) {
  await drv.request(${OP_TRAP}).catch(() => {});
  const r = await drv.request(${OP_ECHO}, Uint8Array.of(1));
  if (r.length === 1 && r[0] === 1) rounds++;
}
console.log(JSON.stringify({ rounds }));
await host.close();
`;

describe('requests across restarts', () => {
  let burn: ChildProcess[] = [];
  beforeAll(() => {
    burn = burners(120_000);
  });
  afterAll(() => {
    for (const b of burn) b.kill('SIGKILL');
  });

  it('the 20-round crash/request loop finishes all its rounds, 10 runs of 10, with both cores busy', async () => {
    const results: string[] = [];
    for (let run = 0; run < 10; run++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', ROUNDS], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      const [code] = await once(child, 'exit');
      results.push(`${code} ${out.trim()}`);
    }
    expect(results).toEqual(Array(10).fill('0 {"rounds":20}'));
  });

  it('requests queued behind a crash are served by the next instance, in order; only the crashing one is rejected', async () => {
    host = new Host();
    const drv = await host.load(driverPath('test/broken'), 'sim:edu:order', {
      name: 'order',
      restart: { backoffMs: 0, maxBackoffMs: 0 },
    });
    const crash = drv.request(OP_TRAP).then(
      () => 'answered',
      (e: RequestError) => e.code,
    );
    const behind = Array.from({ length: 20 }, (_, i) => drv.request(OP_ECHO, Uint8Array.of(i)).then((r) => r[0]));
    expect(await crash).toBe('driver-restarted');
    expect(await Promise.all(behind)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(drv.restarts).toBe(1);
  });

  it('requests queued while a driver loads are rejected with driver-failed when the load fails', async () => {
    host = new Host();
    const dev = host.openDevice('sim:edu:bad');
    const drv = new Driver('bad', dev.spec, new Uint8Array(readFileSync(driverPath('test/foreign-import'))), {
      name: 'bad',
    });
    const loading = drv.start().then(
      () => 'loaded',
      (e: Error) => e.constructor.name,
    );
    const queued = drv.request(OP_ECHO, Uint8Array.of(1)).then(
      () => 'answered',
      (e: RequestError) => e.code,
    );
    expect(await loading).toBe('LoadError');
    expect(await queued).toBe('driver-failed');
    expect(drv.state).toBe('stopped');
  });

  it('requests queued while the driver restarts get driver-failed when the restart budget runs out', async () => {
    host = new Host();
    const drv = await host.load(driverPath('test/broken'), 'sim:edu:budget', {
      name: 'budget',
      restart: { backoffMs: 0, maxBackoffMs: 0, budget: 2 },
    });
    const all = [OP_TRAP, OP_TRAP, OP_TRAP, OP_ECHO, OP_ECHO].map((op) =>
      drv.request(op, Uint8Array.of(op)).then(
        () => 'answered',
        (e: RequestError) => e.code,
      ),
    );
    // each trap kills the instance holding it (driver-restarted); after the third the budget of two
    // restarts is spent, and the echoes queued behind, which no instance saw, get driver-failed
    expect(await Promise.all(all)).toEqual([
      'driver-restarted',
      'driver-restarted',
      'driver-restarted',
      'driver-failed',
      'driver-failed',
    ]);
    expect(drv.restarts).toBe(2);
    expect(drv.state).toBe('failed');
  });

  const cycles = Number(process.env.WASMDRV_SOAK_CYCLES ?? 300);
  it(
    `soak: ${cycles} crash/restart cycles under load from 4 callers: none lost, every failure has its code`,
    async () => {
      host = new Host();
      const drv = await host.load(driverPath('test/broken'), 'sim:edu:soak', {
        name: 'soak',
        limits: { deadlineMs: 1000 },
        restart: { backoffMs: 0, maxBackoffMs: 0, budget: 1e9, windowMs: 1000 },
      });
      let sent = 0,
        answered = 0,
        wrong = 0;
      const codes = new Map<string, number>();
      const count = (code: string) => codes.set(code, (codes.get(code) ?? 0) + 1);
      let crashing = true;
      const faults = new Map<string, number>();
      drv.on('fault', (f) => faults.set(`${f.kind}@${f.phase}`, (faults.get(`${f.kind}@${f.phase}`) ?? 0) + 1));
      // Callers: echo requests with a payload each can check, several in flight at once.
      const caller = async (k: number) => {
        for (let i = 0; crashing; i++) {
          const batch = Array.from({ length: 4 }, (_, j) => {
            const tag = Uint8Array.of(k, i & 0xff, j);
            sent++;
            return drv.request(OP_ECHO, tag).then(
              (r) => {
                answered++;
                if (r.length !== 3 || r[0] !== k || r[1] !== (i & 0xff) || r[2] !== j) wrong++;
              },
              (e: RequestError) => count(`echo:${e.code}`),
            );
          });
          await Promise.all(batch);
        }
      };
      const callers = Array.from({ length: 4 }, (_, k) => caller(k));
      // The crasher: traps (restart in the same thread) and, every 100th cycle, a hang killed at its deadline (a fresh thread).
      for (let c = 0; c < cycles; c++) {
        sent++;
        const op = c % 100 === 99 ? OP_HANG : OP_TRAP;
        await drv.request(op).then(
          () => count('crash:answered'),
          (e: RequestError) => count(`crash:${e.code}`),
        );
      }
      crashing = false;
      await Promise.all(callers);
      const settled = answered + [...codes.values()].reduce((a, b) => a + b, 0);
      console.log(
        `soak: ${cycles} cycles, ${sent} requests, ${answered} answered, ${JSON.stringify(Object.fromEntries(codes))}, restarts ${drv.restarts}, faults ${JSON.stringify(Object.fromEntries(faults))}`,
      );
      expect(settled).toBe(sent); // none lost
      expect(wrong).toBe(0);
      // Every failed request is the crashing one, rejected with the supervisor's code.
      expect(Object.fromEntries(codes)).toEqual({ 'crash:driver-restarted': cycles });
      expect(drv.restarts).toBeGreaterThanOrEqual(cycles); // a restart's own load may overrun its deadline on a busy machine
      expect(drv.state).toBe('running');
      for (const k of codes.keys()) expect(CODES).toContain(k.split(':')[1]);
    },
    Math.max(60_000, cycles * 40),
  );
});
