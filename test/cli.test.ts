// The wasmdrv command as a user runs it: exit codes, output, and errors that name the thing.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { driverPath, root } from './helpers.ts';

const bin = join(root, 'bin', 'wasmdrv.js');
function wasmdrv(args: string[], input?: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    input,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, WASMDRV_DEBUG: '', ...env },
  });
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
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
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
    expect(cmd.err).toContain("unknown command 'frobnicate'");
  });

  it('refuses a driver importing outside the ABI, naming the import (the operation failed: exit 1)', () => {
    const r = wasmdrv(['run', driverPath('test/foreign-import'), '--device', 'sim:edu', '--request', '1']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('import env.system is not part of the wasmdrv ABI v1');
  });
});

const COMMANDS = [
  'devices',
  'run',
  'demo',
  'new',
  'build',
  'keygen',
  'pack',
  'sign',
  'verify',
  'inspect',
  'fuzz',
  'fault-campaign',
  'bench',
  'serve',
  'call',
  'status',
  'reload',
  'net up',
];
// Arguments that satisfy each command's required ones, so that the unknown option is the only problem.
const MINIMAL: Record<string, string[]> = {
  run: ['x.wasm', '--device', 'sim:edu'],
  new: ['d', '--device', 'edu'],
  pack: ['dir'],
  sign: ['p.wdrv', '--key', 'k'],
  verify: ['p.wdrv'],
  inspect: ['f.wasm'],
  fuzz: ['d.wasm', '--model', 'edu'],
  'net up': ['sim:e1000'],
  serve: ['--config', 'c.json'],
  call: ['edu', '1'],
  reload: ['edu', 'x.wasm'],
};
const stackLine = /^\s+at .*\(?(file|node):/m;

describe('wasmdrv CLI conventions: help, usage errors, exit codes', () => {
  it('the program help lists every command (bench included) and exits 0; no command exits 2 with the usage', () => {
    const r = wasmdrv(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.out).toMatch(new RegExp(`^  ${c.split(' ')[0]} `, 'm'));
    const none = wasmdrv([]);
    expect(none.code).toBe(2);
    expect(none.err).toContain('Usage: wasmdrv');
  });

  it('--version prints the package version', () => {
    const r = wasmdrv(['--version']);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  });

  it('every command has --help (exit 0) and rejects an unknown option with its usage (exit 2)', () => {
    for (const c of COMMANDS) {
      const help = wasmdrv([...c.split(' '), '--help']);
      expect(help.code, `${c} --help`).toBe(0);
      expect(help.out, `${c} --help`).toContain(`Usage: wasmdrv ${c} `);
      const bad = wasmdrv([...c.split(' '), ...(MINIMAL[c] ?? []), '--no-such-option']);
      expect(bad.code, `${c} --no-such-option`).toBe(2);
      expect(bad.err, `${c} --no-such-option`).toContain(`wasmdrv ${c}: unknown option '--no-such-option'`);
      expect(bad.err, `${c} --no-such-option`).toContain(`usage: wasmdrv ${c} `);
      expect(bad.err).not.toMatch(stackLine);
    }
  });

  it('wrong inputs give one line naming the thing, no stack, and the documented exit code', () => {
    const edu = driverPath('edu');
    const cases: { args: string[]; code: number; says: string }[] = [
      {
        args: ['run', edu, '--device', 'sim:nope', '--request', '1'],
        code: 2,
        says: 'device "sim:nope": unknown simulated model "nope"',
      },
      { args: ['run', edu, '--device', 'uio97', '--request', '1'], code: 2, says: 'device uio97: no such UIO device' },
      { args: ['run', edu, '--device', 'sim:fuzz', '--request', '1'], code: 2, says: 'unknown simulated model "fuzz"' },
      { args: ['run', edu, '--device', 'pci:x', '--request', '1'], code: 2, says: 'device "pci:x": not a device id' },
      {
        args: ['run', edu, '--device', 'sim:edu', '--deadline', 'soon'],
        code: 2,
        says: "option '--deadline <ms>' argument 'soon' is invalid",
      },
      { args: ['run', edu, '--device', 'sim:edu', '--rearm', 'maybe'], code: 2, says: "'maybe' is invalid" },
      { args: ['run', edu], code: 2, says: "required option '--device <id>' not specified" },
      { args: ['run', join(root, 'README.md'), '--device', 'sim:edu', '--request', '1'], code: 1, says: 'README' },
      { args: ['verify', '/nonexistent/x.wdrv'], code: 2, says: '/nonexistent/x.wdrv: cannot read: no such package' },
      { args: ['verify', edu], code: 1, says: `${edu}: not a driver package` },
      {
        args: ['verify', join(root, 'build', 'packages', 'edu.wdrv'), '--device', 'sim:nope'],
        code: 2,
        says: 'unknown simulated model "nope"',
      },
      {
        args: ['pack', '/nonexistent-dir'],
        code: 2,
        says: '/nonexistent-dir/manifest.json: cannot read: no such manifest',
      },
      {
        args: ['sign', edu, '--key', '/nonexistent.key'],
        code: 2,
        says: '/nonexistent.key: cannot read: no such key file',
      },
      { args: ['fuzz', edu, '--model', 'toaster'], code: 2, says: "argument 'toaster' is invalid" },
      {
        args: ['fuzz', edu, '--model', 'edu', '--execs', '-3'],
        code: 2,
        says: "option '--execs <n>' argument '-3' is invalid",
      },
      { args: ['bench', '--only', 'teleport'], code: 2, says: '--only: unknown section "teleport"' },
      {
        args: ['serve', '--config', '/nonexistent.json'],
        code: 2,
        says: '/nonexistent.json: cannot read: no such config file',
      },
      {
        args: ['call', 'edu', 'seven', '--socket', '/nonexistent.sock'],
        code: 2,
        says: 'op "seven" must be a whole number',
      },
      { args: ['status', '--socket', '/nonexistent.sock'], code: 1, says: 'cannot connect to /nonexistent.sock' },
      {
        args: ['reload', 'edu', '/nonexistent.wasm', '--socket', '/nonexistent.sock'],
        code: 2,
        says: '/nonexistent.wasm: cannot read: no such driver file',
      },
    ];
    for (const c of cases) {
      const r = wasmdrv(c.args, '');
      const what = c.args.join(' ');
      expect(r.code, what).toBe(c.code);
      expect(r.err.split('\n')[0], what).toContain(c.says);
      expect(r.err, what).not.toMatch(stackLine);
    }
  });

  it('--debug or WASMDRV_DEBUG=1 adds the stack', () => {
    const args = ['verify', '/nonexistent/x.wdrv'];
    expect(wasmdrv(args).err).not.toMatch(stackLine);
    expect(wasmdrv(['--debug', ...args]).err).toMatch(stackLine);
    expect(wasmdrv(args, undefined, { WASMDRV_DEBUG: '1' }).err).toMatch(stackLine);
  });
});
