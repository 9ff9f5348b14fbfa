// Progress bars on long work (fault campaign, fuzz, bench) only for a person at a terminal: piped output is
// the summary alone (no progress lines), and on a pseudo-terminal (util-linux `script`, standing in
// for a person) the bar is drawn, unless --json or CI says otherwise.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { progressWanted } from '../host/cli/progress.ts';
import { driverPath, root } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-progress-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(root, 'bin', 'wasmdrv.js');
/** This test decides about CI itself: the run's own CI=true must not leak into the child. */
const { CI: _ci, ...noCi } = process.env;

const campaign = ['fault-campaign', '--faults', '30', '--jobs', '1'];
const fuzzArgs = (out: string) => [
  'fuzz',
  driverPath('test/fuzz-magic-clean'),
  '--model',
  'edu',
  '--execs',
  '3000',
  '--out',
  out,
];
const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

/** Run the CLI on a pseudo-terminal (stdin, stdout and stderr all the tty); everything it drew. */
function onTerminal(args: string[], env: NodeJS.ProcessEnv = noCi): { code: number | null; screen: string } {
  const cmd = [process.execPath, bin, ...args].map(q).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env, timeout: 120_000 });
  return { code: r.status, screen: r.stdout };
}

const piped = (args: string[], env: NodeJS.ProcessEnv = noCi) =>
  spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 120_000 });

describe('progress on long work', () => {
  it('decides by terminal, --json and CI', () => {
    const tty = { stdout: { isTTY: true }, stderr: { isTTY: true } };
    expect(progressWanted({}, {}, tty)).toBe(true);
    expect(progressWanted({ json: true }, {}, tty)).toBe(false);
    expect(progressWanted({}, { CI: 'true' }, tty)).toBe(false);
    expect(progressWanted({}, { CI: '1' }, tty)).toBe(false);
    expect(progressWanted({}, { CI: 'false' }, tty)).toBe(true);
    expect(progressWanted({}, {}, { stdout: {}, stderr: { isTTY: true } })).toBe(false);
    expect(progressWanted({}, {}, { stdout: { isTTY: true }, stderr: {} })).toBe(false);
  });

  it('piped: no progress at all, stdout is the summary alone', () => {
    const c = piped(campaign);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stderr).toBe('');
    // 30 trials; a mutant trial that finds no valid mutation in 50 tries injects nothing and is not counted
    expect(c.stdout.split('\n')[0]).toMatch(
      /^\d+ faults \(\d+ mutants, \d+ devices\) · detected \d+ · .* host crashes 0 /,
    );
    expect(c.stdout).not.toContain('\x1b');
    const f = piped(fuzzArgs(join(tmp, 'piped')));
    expect(f.status, f.stderr).toBe(0);
    expect(f.stderr).toBe('');
    expect(f.stdout).toMatch(/^3000 execs at \d+\/s, coverage \d+ edges/);
    expect(f.stdout).not.toContain('\x1b');
  }, 240_000);

  it('on a terminal: a bar while it runs, then the same summary', () => {
    const c = onTerminal(campaign);
    expect(c.code, c.screen).toBe(0);
    expect(c.screen).toContain('\x1b[?25l'); // cursor hidden while the bar is up...
    expect(c.screen).toContain('\x1b[?25h'); // ...and shown again
    expect(c.screen).toMatch(/fault campaign .* \d+% \d+\/30 · detected \d+ · host crashes 0/);
    expect(c.screen).toMatch(/\d+ faults \(\d+ mutants, \d+ devices\) · detected/);
    const f = onTerminal(fuzzArgs(join(tmp, 'tty')));
    expect(f.code, f.screen).toBe(0);
    expect(f.screen).toMatch(/fuzz .* \d+% \d+\/3000 · \d+\/s · coverage \d+ edges/);
    expect(f.screen).toMatch(/3000 execs at \d+\/s/);
  }, 240_000);

  it('on a terminal but with --json or under CI=true: no bar', () => {
    const j = onTerminal([...campaign, '--json']);
    expect(j.code, j.screen).toBe(0);
    expect(j.screen).not.toContain('fault campaign');
    expect(j.screen).not.toContain('\x1b[?25l');
    expect(j.screen).toMatch(/^\{.*"faults":\d+,/m);
    const ci = onTerminal(campaign, { ...noCi, CI: 'true' });
    expect(ci.code, ci.screen).toBe(0);
    expect(ci.screen).not.toContain('fault campaign');
    expect(ci.screen).not.toContain('\x1b[');
    expect(ci.screen).toMatch(/^\d+ faults \(/);
  }, 240_000);

  it('bench: a bar over its sections on a terminal, the report lines above it; piped, the report alone', () => {
    const args = ['bench', '--quick', '--only', 'dma,lifecycle', '--out', join(tmp, 'bench')];
    const t = onTerminal(args);
    expect(t.code, t.screen).toBe(0);
    expect(t.screen).toMatch(/bench .* \d+% \d+\/2 · section (dma|lifecycle)/);
    expect(t.screen).toMatch(/DMA window load/);
    const p = piped(args);
    expect(p.status, p.stderr).toBe(0);
    expect(p.stderr).toBe('');
    expect(p.stdout).toMatch(/^DMA window load/m);
    expect(p.stdout).not.toContain('\x1b');
  }, 240_000);
});
