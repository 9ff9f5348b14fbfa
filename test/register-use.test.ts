// A grant cannot drift from its code: the registers each shipped driver's Wasm touches (read
// statically, host/package/register-use.ts) are exactly what its manifest grants, and a manifest that
// grants too little or too much is named register by register.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../host/package/manifest.ts';
import { describeDrift, grantDrift, registerUses } from '../host/package/register-use.ts';
import { driverPath, root } from './helpers.ts';

const manifest = (name: string): Manifest =>
  JSON.parse(readFileSync(join(root, 'guest-drivers', name, 'manifest.json'), 'utf8'));
const wasm = (name: string) => readFileSync(driverPath(name));

describe('register use against the grant', () => {
  for (const [driver, m] of [
    ['e1000', 'e1000'],
    ['edu', 'edu'],
    ['uart16550', 'uart16550'],
    ['edu-c', 'edu'],
    ['edu-rust', 'edu'],
  ]) {
    it(`${driver}: its code and its manifest agree`, async () => {
      const uses = await registerUses(wasm(driver));
      const drift = grantDrift(manifest(m), uses);
      expect(describeDrift(drift)).toEqual([]);
      expect(uses.dynamic).toEqual([]);
      // Every writable register the manifest lists is written by the code (least privilege, both ways).
      const writable = manifest(m).regions?.flatMap((r) => r.writable ?? []) ?? [];
      for (const w of writable)
        expect(uses.uses.some((u) => u.kind === 'write' && u.offset === Number(w.offset) && u.width === w.width)).toBe(
          true,
        );
    });
  }

  it('finds the e1000 doorbell through the SDK and edu 64-bit DMA registers in C, AS and Rust alike', async () => {
    const e1000 = await registerUses(wasm('e1000'));
    expect(e1000.uses.some((u) => u.kind === 'write' && u.offset === 0x3818 && u.width === 4)).toBe(true);
    // Region#clearBits32 forwards its offset parameter: followed to the constant its caller passes.
    expect(e1000.uses.some((u) => u.kind === 'read' && u.offset === 0x00 && u.width === 4)).toBe(true);
    for (const d of ['edu', 'edu-c', 'edu-rust']) {
      const edu = await registerUses(wasm(d));
      const writes = new Set(
        edu.uses.filter((u) => u.kind === 'write').map((u) => `${u.offset.toString(16)}/${u.width}`),
      );
      expect([...writes].sort()).toEqual(['20/4', '4/4', '60/4', '64/4', '8/4', '80/8', '88/8', '90/8', '98/8']);
    }
  });

  it('names a register the grant refuses and one it grants in vain', async () => {
    const m = manifest('e1000');
    const region = m.regions![0];
    region.writable = region.writable!.filter((w) => w.offset !== '0x3818');
    region.writable.push({ offset: '0x0c00', width: 4 });
    const lines = describeDrift(grantDrift(m, await registerUses(wasm('e1000'))));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^register write of 0x3818\/32 \(in .*send\) is refused by the manifest: 0x3818\/32 is not among/,
    );
    expect(lines[1]).toMatch(/register 0xc00\/32 be written, but no write in the code reaches it: drop it/);
  });

  it('a region too small and a read-only region refuse the accesses past them', async () => {
    const m = manifest('edu');
    m.regions![0].size = '0x80';
    const small = grantDrift(m, await registerUses(wasm('edu')));
    expect(small.refused.map((r) => `${r.use.kind} 0x${r.use.offset.toString(16)}`).sort()).toEqual([
      'read 0x98',
      'write 0x80',
      'write 0x88',
      'write 0x90',
      'write 0x98',
    ]);
    expect(small.refused[0].why).toMatch(/past the region's 0x80 bytes/);
    const ro = manifest('edu');
    ro.regions![0].access = 'r';
    delete ro.regions![0].writable;
    delete ro.regions![0].dmaEngines;
    expect(
      grantDrift(ro, await registerUses(wasm('edu'))).refused.every((r) => r.why === 'the region is read-only'),
    ).toBe(true);
  });

  it('reports offsets computed at run time instead of guessing them', async () => {
    const uses = await registerUses(wasm('test/broken'));
    expect(uses.dynamic.some((d) => d.kind === 'write' && /broken\/request/.test(d.in))).toBe(true);
    const m = manifest('edu');
    m.regions![0].writable!.push({ offset: '0x0c', width: 4 });
    expect(describeDrift(grantDrift(m, uses)).at(-1)).toMatch(/some writes compute their offset at run time/);
  });

  it('pack warns about drift; inspect of a bare module drafts the writable list from the code', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wasmdrv-drift-'));
    try {
      const m = manifest('e1000');
      m.regions![0].writable!.push({ offset: '0x0c00', width: 4 });
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
      const bin = join(root, 'bin', 'wasmdrv.js');
      const pack = spawnSync(
        process.execPath,
        [bin, 'pack', dir, '--wasm', driverPath('e1000'), '--out', join(dir, 'x.wdrv')],
        {
          encoding: 'utf8',
        },
      );
      expect(pack.status).toBe(0);
      expect(pack.stderr).toMatch(/^pack: warning: the manifest lets region 0's register 0xc00\/32 be written/m);
      const inspect = spawnSync(process.execPath, [bin, 'inspect', driverPath('e1000'), '--json'], {
        encoding: 'utf8',
      });
      expect(inspect.status).toBe(0);
      const draft = JSON.parse(inspect.stdout).draftManifest;
      const want = manifest('e1000').regions![0].writable!.map((w) => [Number(w.offset), w.width]);
      const got = draft.regions[0].writable.map((w: { offset: string; width: number }) => [Number(w.offset), w.width]);
      expect(got).toEqual(want.sort((a, b) => a[0] - b[0]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
