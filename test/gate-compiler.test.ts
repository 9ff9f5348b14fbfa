// The gate compile process (host/driver/gate-compiler.ts): binaryen's rewrite of a driver runs in a
// child process, so a crash there (V8's, binaryen's) cannot take the host down. Real processes: the
// test hook WASMDRV_GATE_CHILD_TEST_KILL=<n>[:<SIGNAL>] (gate-compiler-worker.ts) makes the compile
// process kill itself when it gets a job on its attempt 1..n, WASMDRV_GATE_CHILD_TEST_HANG=<n> makes it
// hang there (the deadline, WASMDRV_GATE_COMPILE_TIMEOUT_MS, then kills it), ..._SLOW=<ms> compute at
// half duty first (starved, not hung), ..._SPIN=<n> loop (a hang that computes), and
// WASMDRV_GATE_CHILD_TEST_ENTRY=<file> forks another entry (so that no process can be had).
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import binaryen from 'binaryen';
import { Host, LoadError } from '../host/index.ts';
import {
  MAX_DEADLINE_PERIODS,
  cpuMs,
  crashLine,
  deadlineVerdict,
  gateCompilerPid,
  gateCompiles,
  prepareGate,
} from '../host/driver/gate-compiler.ts';
import { prepareInlineGate } from '../host/sandbox/inline-rewrite.ts';
import { loadNative } from '../host/native.ts';
import { decodeResponse } from '../host/payload.ts';
import { driverPath, root, u32 } from './helpers.ts';
import { inheritedExecArgv } from '../host/driver/exec-argv.ts';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const native = loadNative();
const host = new Host();
afterAll(() => host.close());
afterEach(() => {
  delete process.env.WASMDRV_GATE_CHILD_TEST_KILL;
  delete process.env.WASMDRV_GATE_CHILD_TEST_HANG;
  delete process.env.WASMDRV_GATE_CHILD_TEST_SLOW;
  delete process.env.WASMDRV_GATE_CHILD_TEST_SPIN;
  delete process.env.WASMDRV_GATE_COMPILE_TIMEOUT_MS;
});
/** The deadline in the hang tests: a fresh process's first answer takes ~1 s here. */
const DEADLINE = 4000;
let n = 0;

/** A minimal ABI driver: request writes `value` to register 8 and answers register 0. */
function driver(value: number): Uint8Array {
  const m = binaryen.parseText(`(module
    (import "env" "memory" (memory $m 3))
    (import "wasmdrv" "reg_read32" (func $rd (param i32 i32) (result i32)))
    (import "wasmdrv" "reg_write32" (func $wr (param i32 i32 i32)))
    (global (export "wasmdrv_abi_version") i32 (i32.const 1))
    (func (export "probe") (result i32) (i32.const 0))
    (func (export "remove"))
    (func (export "interrupt") (param i32))
    (func (export "io_buffer") (result i32) (i32.const 1024))
    (func (export "dma_area") (result i32) (i32.const 131072))
    (func (export "dma_area_size") (result i32) (i32.const 65536))
    (func (export "io_buffer_size") (result i32) (i32.const 256))
    (func (export "request") (param i32 i32) (result i32)
      (call $wr (i32.const 0) (i32.const 8) (i32.const ${value}))
      (i32.store (i32.const 1024) (call $rd (i32.const 0) (i32.const 0)))
      (i32.const 4)))`);
  m.setFeatures(binaryen.Features.MVP | binaryen.Features.MultiMemory | binaryen.Features.BulkMemory);
  try {
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/** `before`'s counts of gateCompiles plus `more`. */
function plus(before: typeof gateCompiles, more: Partial<typeof gateCompiles>): typeof gateCompiles {
  const out = { ...before };
  for (const [k, v] of Object.entries(more)) out[k as keyof typeof out] += v;
  return out;
}

/** This process's live (not zombie) compile processes, from /proc. */
function compileProcesses(): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) !== process.pid || state === 'Z') continue;
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('gate-compiler.js')) pids.push(Number(d));
    } catch {
      // gone while we looked
    }
  }
  return pids;
}

function benchDevice() {
  const dev = host.openDevice(`sim:bench:gatec${n++}`, { sim: { dmaBytes: 65536 } });
  const fd = (dev.spec.regions[0].source as { fd: number }).fd;
  const regs = new Uint32Array(native.mapFd(fd, 4096, 0).buffer());
  return { dev, regs };
}

describe('gate compile process', () => {
  it('answers byte for byte what the main thread makes', async () => {
    const { dev } = benchDevice();
    const bytes = driver(99);
    const before = { ...gateCompiles };
    const there = await prepareGate('gate-process', dev.spec, bytes, {}, 'record-all', 256);
    expect(gateCompiles).toEqual(plus(before, { process: 1 }));
    const here = await prepareInlineGate('gate-process', dev.spec, bytes, {}, 'record-all', 256);
    expect(there?.layout).toEqual(here?.layout);
    expect(Buffer.from(there!.bytes).equals(Buffer.from(here!.bytes))).toBe(true);
  });

  it('a compile process killed in the job: the job is retried in a new process, the driver loads with its gate', async () => {
    const { dev, regs } = benchDevice();
    regs[0] = 41;
    const bytes = driver(7);
    const logs: string[] = [];
    const onLog = (e: { message: string }) => logs.push(e.message);
    host.on('log', onLog);
    const before = { ...gateCompiles };
    process.env.WASMDRV_GATE_CHILD_TEST_KILL = '1';
    const drv = await host.load(bytes, dev, { name: 'killed-once', restart: false });
    delete process.env.WASMDRV_GATE_CHILD_TEST_KILL;
    host.off('log', onLog);
    expect(gateCompiles).toEqual(plus(before, { process: 1, retries: 1, deaths: 1 }));
    expect(logs.join('\n')).toMatch(
      /gate compile process for killed-once was killed by SIGKILL \(its output ended: Check failed: WASMDRV_GATE_CHILD_TEST_KILL \(killed-once, attempt 1\)\.\): retrying once in a new process/,
    );
    expect(drv.status().registerGate.kind).toBe('inline');
    expect(decodeResponse(await drv.request(1, u32(0))).u32[0]).toBe(41);
    expect(regs[2]).toBe(7);
    await drv.stop();
    // The retry's answer is the main thread's, byte for byte.
    const again = await prepareGate('retried', dev.spec, bytes, {}, 'record-all', 256);
    process.env.WASMDRV_GATE_CHILD_TEST_KILL = '1';
    const retried = await prepareGate('retried', dev.spec, bytes, {}, 'record-all', 256);
    delete process.env.WASMDRV_GATE_CHILD_TEST_KILL;
    const here = await prepareInlineGate('retried', dev.spec, bytes, {}, 'record-all', 256);
    expect(Buffer.from(retried!.bytes).equals(Buffer.from(here!.bytes))).toBe(true);
    expect(Buffer.from(again!.bytes).equals(Buffer.from(here!.bytes))).toBe(true);
    expect(gateCompiles.retries).toBe(before.retries + 2);
  });

  it('a compile process that dies twice: a LoadError naming the driver and the signal, nothing loaded, the next driver loads', async () => {
    const { dev } = benchDevice();
    const before = { ...gateCompiles };
    process.env.WASMDRV_GATE_CHILD_TEST_KILL = '2:SIGKILL';
    const failed = host.load(driver(1), dev, { name: 'killed-twice', restart: false });
    await expect(failed).rejects.toThrow(LoadError);
    await expect(failed).rejects.toThrow(
      /^gate compile process for killed-twice was killed by SIGKILL twice \(its output ended: Check failed: WASMDRV_GATE_CHILD_TEST_KILL \(killed-twice, attempt 2\)\.\)$/,
    );
    // Never compiled in the main thread after a death; nothing half-loaded: the device is free.
    expect(gateCompiles).toEqual(plus(before, { retries: 1, deaths: 2, refused: 1 }));
    expect(host.status().drivers.map((d) => d.name)).not.toContain('killed-twice');
    delete process.env.WASMDRV_GATE_CHILD_TEST_KILL;
    const drv = await host.load(driver(2), dev, { name: 'after-the-deaths', restart: false });
    expect(drv.status().registerGate.kind).toBe('inline');
    expect(gateCompiles.process).toBe(before.process + 1);
    await drv.stop();
  });

  it('a compile process that hangs in a job: killed at the deadline, the job retried in a new process, the driver loads', async () => {
    const { dev, regs } = benchDevice();
    regs[0] = 43;
    await prepareGate('warm', dev.spec, driver(0), {}, 'record-all', 256);
    const hungPid = gateCompilerPid();
    expect(compileProcesses()).toEqual([hungPid]);
    const logs: string[] = [];
    const onLog = (e: { message: string }) => logs.push(e.message);
    host.on('log', onLog);
    const before = { ...gateCompiles };
    process.env.WASMDRV_GATE_CHILD_TEST_HANG = '1';
    process.env.WASMDRV_GATE_COMPILE_TIMEOUT_MS = String(DEADLINE);
    const drv = await host.load(driver(9), dev, { name: 'hung-once', restart: false });
    host.off('log', onLog);
    expect(gateCompiles).toEqual(plus(before, { process: 1, retries: 1, deaths: 1, timeouts: 1 }));
    expect(logs).toContain(
      `gate compile process for hung-once timed out after ${DEADLINE} ms: retrying once in a new process`,
    );
    expect(drv.status().registerGate.kind).toBe('inline');
    expect(decodeResponse(await drv.request(1, u32(0))).u32[0]).toBe(43);
    expect(regs[2]).toBe(9);
    // The hung process is gone (killed, not left blocked); only the retry's runs.
    expect(gateCompilerPid()).not.toBe(hungPid);
    expect(compileProcesses()).toEqual([gateCompilerPid()]);
    await drv.stop();
  });

  it('a compile process that hangs twice: a LoadError saying it timed out, no process left, the next driver loads', async () => {
    const { dev } = benchDevice();
    const before = { ...gateCompiles };
    process.env.WASMDRV_GATE_CHILD_TEST_HANG = '2';
    process.env.WASMDRV_GATE_COMPILE_TIMEOUT_MS = String(DEADLINE);
    const failed = host.load(driver(1), dev, { name: 'hung-twice', restart: false });
    await expect(failed).rejects.toThrow(LoadError);
    await expect(failed).rejects.toThrow(
      new RegExp(`^gate compile process for hung-twice timed out after ${DEADLINE} ms twice$`),
    );
    expect(gateCompiles).toEqual(plus(before, { retries: 1, deaths: 2, timeouts: 2, refused: 1 }));
    expect(gateCompilerPid()).toBeUndefined();
    expect(compileProcesses()).toEqual([]);
    expect(host.status().drivers.map((d) => d.name)).not.toContain('hung-twice');
    delete process.env.WASMDRV_GATE_CHILD_TEST_HANG;
    const drv = await host.load(driver(2), dev, { name: 'after-the-hangs', restart: false });
    expect(drv.status().registerGate.kind).toBe('inline');
    await drv.stop();
  });

  it('a compile process starved of CPU is given more periods, one that loops is killed', async () => {
    const { dev } = benchDevice();
    const D = 2000;
    process.env.WASMDRV_GATE_COMPILE_TIMEOUT_MS = String(D);
    // Half duty for 1.5 deadlines: computing at every check, under a deadline of CPU in all.
    process.env.WASMDRV_GATE_CHILD_TEST_SLOW = String(1.5 * D);
    let before = { ...gateCompiles };
    const drv = await host.load(driver(3), dev, { name: 'starved', restart: false });
    expect(gateCompiles).toEqual(plus(before, { process: 1 }));
    expect(drv.status().registerGate.kind).toBe('inline');
    await drv.stop();
    delete process.env.WASMDRV_GATE_CHILD_TEST_SLOW;
    // Busy forever: a whole deadline of CPU, then killed; its retry loops too.
    process.env.WASMDRV_GATE_CHILD_TEST_SPIN = '2';
    before = { ...gateCompiles };
    const failed = host.load(driver(4), dev, { name: 'spinning', restart: false });
    await expect(failed).rejects.toThrow(
      `gate compile process for spinning timed out after ${D} ms (a whole deadline of CPU: a loop) twice`,
    );
    expect(gateCompiles).toEqual(plus(before, { retries: 1, deaths: 2, timeouts: 2, refused: 1 }));
    expect(compileProcesses()).toEqual([]);
  }, 60_000);

  it('deadlineVerdict: idle or unreadable is hung at once, a loop after a deadline of CPU, a starved process waits', () => {
    expect(deadlineVerdict(1000, 1, undefined, undefined, undefined)).toBe('timed out after 1000 ms');
    expect(deadlineVerdict(1000, 1, 50, 50, 60)).toBe('timed out after 1000 ms'); // one tick: blocked
    expect(deadlineVerdict(1000, 1, 50, 50, 450)).toBe('wait');
    expect(deadlineVerdict(1000, 2, 50, 450, 1100)).toBe('timed out after 1000 ms (a whole deadline of CPU: a loop)');
    expect(deadlineVerdict(1000, 3, 0, 800, 810)).toBe('timed out after 1000 ms');
    expect(deadlineVerdict(1000, MAX_DEADLINE_PERIODS, 0, 500, 600)).toBe(
      `timed out after 1000 ms (still computing after ${MAX_DEADLINE_PERIODS} deadlines)`,
    );
    // cpuMs reads this process's own CPU time, which grows while it computes
    const a = cpuMs(process.pid)!;
    for (const t = performance.now() + 50; performance.now() < t; );
    expect(cpuMs(process.pid)!).toBeGreaterThan(a);
    expect(cpuMs(2 ** 22 + 1)).toBeUndefined();
  });

  it.each([
    { how: 'dies', env: { WASMDRV_GATE_CHILD_TEST_KILL: '2' }, error: 'was killed by SIGKILL twice (its output ended' },
    {
      how: 'hangs',
      env: { WASMDRV_GATE_CHILD_TEST_HANG: '2', WASMDRV_GATE_COMPILE_TIMEOUT_MS: String(DEADLINE) },
      error: `timed out after ${DEADLINE} ms twice`,
    },
  ])(
    'a hot reload whose compile process $how twice is refused; the old module keeps serving',
    async ({ how, env, error }) => {
      const { dev, regs } = benchDevice();
      regs[0] = 5;
      const name = `reload-${how}`;
      const drv = await host.load(driver(11), dev, { name, restart: false });
      Object.assign(process.env, env);
      const r = await drv.reload(driver(22), { fresh: true });
      delete process.env.WASMDRV_GATE_CHILD_TEST_KILL;
      delete process.env.WASMDRV_GATE_CHILD_TEST_HANG;
      expect(r.ok).toBe(false);
      expect(r.error?.startsWith(`${name}: gate compile process for ${name} ${error}`)).toBe(true);
      expect(drv.state).toBe('running');
      expect(decodeResponse(await drv.request(1, u32(0))).u32[0]).toBe(5);
      expect(regs[2]).toBe(11);
      // No compile process left behind; a reload after it goes through.
      expect(compileProcesses()).toEqual([]);
      expect((await drv.reload(driver(33), { fresh: true })).ok).toBe(true);
      await drv.request(1, u32(0));
      expect(regs[2]).toBe(33);
      await drv.stop();
    },
  );

  it("picks V8's check failure out of a crash's output", () => {
    const v8 =
      '\n\n#\n# Fatal error in , line 0\n# Check failed: it->second.Size() > offset.\n#\n#\n#\n#FailureMessage Object: 0x7ffd\n----- Native stack trace -----\n';
    expect(crashLine(v8)).toBe('Check failed: it->second.Size() > offset.');
    expect(crashLine('a\nb\n')).toBe('b');
    expect(crashLine('')).toBe('');
  });
});

describe('a host that cannot have a compile process', () => {
  it('compiles the gate in the main thread and says why: the entry is missing, or the process exits before it is ready', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatec-'));
    const exits = join(dir, 'exits.js');
    writeFileSync(exits, 'process.exit(3);\n');
    const wasm = join(dir, 'driver.wasm');
    writeFileSync(wasm, driver(5));
    const code = `
      import { Host } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
      const host = new Host();
      host.on('log', (e) => console.log('LOG ' + e.level + ' ' + e.message));
      for (const [name, entry] of [['missing', '/nonexistent/gate-compiler.js'], ['exits', ${JSON.stringify(exits)}]]) {
        process.env.WASMDRV_GATE_CHILD_TEST_ENTRY = entry;
        const dev = host.openDevice('sim:bench:' + name, { sim: { dmaBytes: 65536 } });
        const drv = await host.load(${JSON.stringify(wasm)}, dev, { name, restart: false });
        console.log('GATE ' + name + ' ' + drv.status().registerGate.kind);
        await drv.stop();
      }
      await host.close();
      console.log('DONE');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout).toContain('DONE');
    expect(r.stdout).toContain(
      "LOG warn the gate compile process could not be started (/nonexistent/gate-compiler.js is missing): compiling missing's gate in the main thread",
    );
    expect(r.stdout).toContain('GATE missing inline');
    expect(r.stdout).toContain(
      "LOG warn the gate compile process exited with code 3 before it was ready: compiling exits's gate in the main thread",
    );
    expect(r.stdout).toContain('GATE exits inline');
  });
});

describe('the flags a compile process or driver worker inherits (exec-argv.ts)', () => {
  it('drops the parent entry flags and the code they carry, keeps the rest', () => {
    expect(inheritedExecArgv(['--input-type=module', '-e', 'import x from "y"', '--expose-gc'])).toEqual([
      '--expose-gc',
    ]);
    expect(
      inheritedExecArgv(['-p', '1+1', '--eval=2', '--print', '3', '--input-type', 'module', '--no-warnings']),
    ).toEqual(['--no-warnings']);
    expect(inheritedExecArgv(['--max-old-space-size=64', '--enable-source-maps'])).toEqual([
      '--max-old-space-size=64',
      '--enable-source-maps',
    ]);
  });
});

describe('a host started with node -e CODE', () => {
  it('compiles the gate in the compile process, not the main thread (the code is not passed on as a script)', () => {
    const code = `
      import { Host } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
      const host = new Host();
      host.on('log', (e) => console.log('LOG ' + e.level + ' ' + e.message));
      await host.load(${JSON.stringify(driverPath('edu'))}, 'sim:edu', { name: 'edu' });
      await host.close();
      console.log('DONE');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
      encoding: 'utf8',
      env: { ...process.env, WASMDRV_DEBUG: '1' },
      timeout: 60_000,
    });
    expect(r.stdout).toContain('DONE');
    expect(r.stdout).not.toContain('compiling in the main thread');
    expect(r.stdout).toMatch(/gate compile process ready \d+ ms after its fork, first answer/);
  });
});
