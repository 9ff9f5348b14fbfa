// The wasmdrv command as a user runs it: exit codes, output, and errors that name the thing.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { driverPath, root } from './helpers.ts';

const bin = join(root, 'bin', 'wasmdrv.js');
function wasmdrv(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('wasmdrv CLI', () => {
  it('demo --json: every check passes with correct factorials and interrupt counts', () => {
    const r = wasmdrv(['demo', '--json']);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out.trim().split('\n').at(-1)!);
    expect(result.ok).toBe(true);
    expect(result.checks.map((c: { name: string }) => c.name)).toEqual(['identify', 'factorials', 'interrupts', 'dma']);
    expect(result.checks[1].detail).toContain('12!=479001600');
    expect(result.summary.faults).toBe(0);
  });

  it('devices --json lists the simulated models', () => {
    const r = wasmdrv(['devices', '--json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.out);
    expect(d.sim.map((s: { id: string }) => s.id)).toEqual(expect.arrayContaining(['sim:edu', 'sim:uart16550']));
    expect(Array.isArray(d.uio)).toBe(true);
  });

  it('run serves requests from standard input, one JSON line each', () => {
    const r = wasmdrv(['run', driverPath('edu'), '--device', 'sim:edu', '--json'], '2 u32:5\n5 0x0f0f0f0f\n99\n');
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ op: 2, ok: true, u32: [120] });
    expect(lines[1]).toMatchObject({ op: 5, ok: true, u32: [0xf0f0f0f0] });
    expect(lines[2]).toMatchObject({ op: 99, ok: false, code: 'driver-error' });
    expect(lines[3].status.state).toBe('running');
    expect(r.code).toBe(1); // one request failed
  });

  it('run reports a driver fault with its kind and the last device events', () => {
    const r = wasmdrv(['run', driverPath('test/broken'), '--device', 'sim:edu', '--request', '4']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('fault: broken: register-misaligned during request');
    expect(r.err).toContain('last device events');
  });

  it('names a missing driver file and exits 2', () => {
    const r = wasmdrv(['run', '/nonexistent/drv.wasm', '--device', 'sim:edu', '--request', '1']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('/nonexistent/drv.wasm: cannot read');
  });

  it('names an unknown device, a bad request argument, and an unknown command', () => {
    const dev = wasmdrv(['run', driverPath('edu'), '--device', 'uio99', '--request', '1']);
    expect(dev.code).not.toBe(0);
    expect(dev.err).toContain('device uio99: no such UIO device');
    const arg = wasmdrv(['run', driverPath('edu'), '--device', 'sim:edu', '--request', '2 u8:300']);
    expect(arg.code).toBe(1);
    expect(arg.err).toContain('argument "u8:300": out of range for u8');
    const cmd = wasmdrv(['frobnicate']);
    expect(cmd.code).toBe(2);
    expect(cmd.err).toContain('unknown command "frobnicate"');
  });

  it('refuses a driver importing outside the ABI, naming the import', () => {
    const r = wasmdrv(['run', driverPath('test/foreign-import'), '--device', 'sim:edu', '--request', '1']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('import env.system is not part of the wasmdrv ABI v1');
  });
});
