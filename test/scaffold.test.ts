// `wasmdrv new` + `wasmdrv build`: a driver folder outside the repository that builds against the
// wasmdrv-sdk package and passes its own test; `inspect` on the bare .wasm drafts its manifest.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Host } from '../host/host.ts';
import { parseManifest } from '../host/package/manifest.ts';
import { e1000SetLink } from '../host/sim/e1000-wire.ts';
import { root, u32, words } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-new-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bin = join(root, 'bin', 'wasmdrv.js');
const wasmdrv = (args: string[], cwd = root) => {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

describe('wasmdrv new / build', () => {
  it('scaffolds an edu driver that builds and passes its own vitest test', () => {
    const dir = join(tmp, 'edu-first');
    const made = wasmdrv(['new', dir, '--device', 'edu', '--link']);
    expect(made.code, made.err).toBe(0);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ name: 'edu-first', abi: 1, match: expect.arrayContaining([{ sim: 'edu' }]) });
    expect(readFileSync(join(dir, 'index.ts'), 'utf8')).toContain('from "wasmdrv-sdk"');
    const built = wasmdrv(['build', dir]);
    expect(built.code, built.err).toBe(0);
    expect(built.out).toContain(join(dir, 'build', 'edu-first.wasm'));
    // The generated test, run by vitest from the folder, as `npm test` would after the build.
    const t = spawnSync(process.execPath, [join(dir, 'node_modules', 'vitest', 'vitest.mjs'), 'run'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(t.status, t.stdout + t.stderr).toBe(0);
    expect(t.stdout).toMatch(/3 passed/);
    // A bare .wasm: its imports and a first draft of the manifest whose grant it needs.
    const ins = wasmdrv(['inspect', join(dir, 'build', 'edu-first.wasm'), '--json']);
    expect(ins.code, ins.err).toBe(0);
    const info = JSON.parse(ins.out);
    expect(info.imports).toEqual(expect.arrayContaining(['wasmdrv.reg_read32', 'wasmdrv.reg_write32']));
    expect(info.notInAbi).toEqual([]);
    expect(info.draftManifest.regions[0].access).toBe('rw');
    expect(info.draftManifest.ports).toBeUndefined();
    // pack finds the folder's build output.
    const pk = wasmdrv(['pack', dir, '--out', join(tmp, 'edu-first.wdrv')]);
    expect(pk.code, pk.err).toBe(0);
  }, 240_000);

  it('scaffolds a uart16550 driver whose build answers through the host API on the simulated UART', async () => {
    const dir = join(tmp, 'myuart');
    expect(wasmdrv(['new', dir, '--device', 'uart16550']).code).toBe(0);
    const built = wasmdrv(['build', dir]);
    expect(built.code, built.err).toBe(0);
    const host = new Host();
    try {
      const drv = await host.load(join(dir, 'build', 'myuart.wasm'), 'sim:uart16550');
      expect(words(await drv.request(1, u32(0x3c)))).toEqual([0x3c]);
      expect(drv.status().stats.faults).toBe(0);
    } finally {
      await host.close();
    }
  }, 240_000);

  it('scaffolds an e1000 driver with the rings declared that probes sim:e1000 and passes its own test', async () => {
    const dir = join(tmp, 'nic');
    const made = wasmdrv(['new', dir, '--device', 'e1000', '--link']);
    expect(made.code, made.err).toBe(0);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    const shipped = JSON.parse(readFileSync(join(root, 'guest-drivers', 'e1000', 'manifest.json'), 'utf8'));
    expect(manifest.name).toBe('nic');
    // The same grant as the shipped e1000 driver: its RX/TX rings (for the ring firewall) and DMA window.
    expect(manifest.rings.map((r: { name: string }) => r.name)).toEqual(['rx', 'tx']);
    expect(manifest.rings).toEqual(shipped.rings);
    expect(manifest.dma).toEqual(shipped.dma);
    const built = wasmdrv(['build', dir]);
    expect(built.code, built.err).toBe(0);
    const t = spawnSync(process.execPath, [join(dir, 'node_modules', 'vitest', 'vitest.mjs'), 'run'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(t.status, t.stdout + t.stderr).toBe(0);
    expect(t.stdout).toMatch(/3 passed/);
    // And from here, under its manifest, on a model with another MAC and the cable pulled.
    const host = new Host();
    try {
      const dev = host.openDevice('sim:e1000', { sim: { mac: '52:54:00:ab:cd:ef' } });
      const logs: string[] = [];
      host.on('log', (e: { message: string }) => logs.push(e.message));
      const drv = await host.load(join(dir, 'build', 'nic.wasm'), dev, {
        name: 'nic',
        manifest: parseManifest(readFileSync(join(dir, 'manifest.json'), 'utf8'), 'manifest.json'),
      });
      const [lo, hi] = words(await drv.request(1));
      expect([lo & 0xff, (lo >>> 8) & 0xff, (lo >>> 16) & 0xff, lo >>> 24, hi & 0xff, hi >>> 8]).toEqual([
        0x52, 0x54, 0x00, 0xab, 0xcd, 0xef,
      ]);
      expect(words(await drv.request(2))).toEqual([1, 1000]);
      expect(logs.join('\n')).toContain('link up');
      // The cable pulled: the model drops STATUS.LU when its thread next runs; the driver reports it.
      e1000SetLink(dev.spec, false);
      let link = words(await drv.request(2));
      for (let i = 0; i < 200 && link[0] !== 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
        link = words(await drv.request(2));
      }
      expect(link).toEqual([0, 0]);
      expect(drv.status().stats.faults).toBe(0);
    } finally {
      await host.close();
    }
    const c = wasmdrv(['new', join(tmp, 'nic-c'), '--device', 'e1000', '--lang', 'c']);
    expect(c.code).toBe(2);
    expect(c.err.split('\n')[0]).toContain('templates exist for --device edu and uart16550');
  }, 240_000);

  for (const lang of ['c', 'rust'] as const) {
    it(`scaffolds edu and uart16550 drivers in ${lang} that build and answer on the simulated devices`, async () => {
      const edu = join(tmp, `edu-${lang}`);
      const made = wasmdrv(['new', edu, '--device', 'edu', '--lang', lang, '--link']);
      expect(made.code, made.err).toBe(0);
      expect(readFileSync(join(edu, lang === 'c' ? 'index.c' : 'src/lib.rs'), 'utf8')).toContain(
        lang === 'c' ? '#include <wasmdrv.h>' : 'use wasmdrv::',
      );
      const built = wasmdrv(['build', edu]);
      expect(built.code, built.err).toBe(0);
      // The folder's own generated test, as `npm test` runs it after the build.
      const t = spawnSync(process.execPath, [join(edu, 'node_modules', 'vitest', 'vitest.mjs'), 'run'], {
        cwd: edu,
        encoding: 'utf8',
        timeout: 120_000,
      });
      expect(t.status, t.stdout + t.stderr).toBe(0);
      expect(t.stdout).toMatch(/3 passed/);
      const uart = join(tmp, `uart-${lang}`);
      expect(wasmdrv(['new', uart, '--device', 'uart16550', '--lang', lang]).code).toBe(0);
      const ub = wasmdrv(['build', uart]);
      expect(ub.code, ub.err).toBe(0);
      const host = new Host();
      try {
        const drv = await host.load(join(uart, 'build', `uart-${lang}.wasm`), 'sim:uart16550');
        expect(words(await drv.request(1, u32(0x3c)))).toEqual([0x3c]);
        expect(words(await drv.request(2))[0] & 0x20).toBe(0x20);
        expect(drv.status().stats.faults).toBe(0);
      } finally {
        await host.close();
      }
      // a manifest-based start has no C/Rust template yet: refused, naming what exists
      const bad = wasmdrv([
        'new',
        join(tmp, `m-${lang}`),
        '--device',
        join(root, 'guest-drivers', 'edu', 'manifest.json'),
        '--lang',
        lang,
      ]);
      expect(bad.code).toBe(2);
      expect(bad.err.split('\n')[0]).toContain('templates exist for --device edu and uart16550');
    }, 240_000);
  }

  it('refuses an existing folder, an unknown device and a missing manifest, naming each (exit 2)', () => {
    const again = wasmdrv(['new', join(tmp, 'edu-first'), '--device', 'edu']);
    expect(again.code).toBe(2);
    expect(again.err.split('\n')[0]).toContain('exists and is not empty');
    const dev = wasmdrv(['new', join(tmp, 'x'), '--device', 'toaster']);
    expect(dev.code).toBe(2);
    expect(dev.err.split('\n')[0]).toContain('--device toaster');
    const man = wasmdrv(['new', join(tmp, 'y'), '--device', '/nonexistent/manifest.json']);
    expect(man.code).toBe(2);
    expect(man.err.split('\n')[0]).toContain('/nonexistent/manifest.json: cannot read');
    const b = wasmdrv(['build', join(tmp, 'nowhere')]);
    expect(b.code).toBe(2);
  });
});
