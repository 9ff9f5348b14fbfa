// Drivers in three languages on one ABI: the edu driver in AssemblyScript, C and Rust answers the same
// requests with the same bytes on the simulated edu, loads as a signed package under the same
// manifest, is contained through the fault campaign's mutants, and runs under the fuzzer. The C and
// Rust SDKs' raw declarations are generated from the WIT and must match host/abi.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseWit, coreSig, OUTPUTS } from '../scripts/gen-sdk-abi.mjs';
import { IMPORTS, OPTIONAL_EXPORTS, REQUIRED_EXPORTS } from '../host/abi.ts';
import { Host, loadPackage } from '../host/index.ts';
import { runCampaign } from '../host/campaign/campaign.ts';
import { fuzzJob } from '../host/fuzz/fuzz.ts';
import { instrument } from '../host/fuzz/instrument.ts';
import { driverPath, root, u32 } from './helpers.ts';

const LANGS = [
  { lang: 'AssemblyScript', name: 'edu' },
  { lang: 'C', name: 'edu-c' },
  { lang: 'Rust', name: 'edu-rust' },
];

/** The requests of guest-drivers/edu/index.ts, each with its payload. */
const REQUESTS: [string, number, Uint8Array][] = [
  ['identify', 1, new Uint8Array()],
  ...[0, 1, 5, 12, 13].map((n) => [`factorial ${n}`, 2, u32(n)] as [string, number, Uint8Array]),
  ['raise 7', 3, u32(7, 0x40)],
  ['dma 1 byte', 4, Uint8Array.of(0x5a)],
  ['dma 4000 bytes', 4, Uint8Array.from({ length: 4000 }, (_, i) => (i * 7) & 0xff)],
  ['dma too large', 4, new Uint8Array(4097)],
  ['liveness', 5, u32(0x12345678)],
  ['stats', 6, new Uint8Array()],
  ['unknown op', 99, new Uint8Array()],
];

/** Every request's outcome: the response bytes, or the RequestError's code and status. */
async function transcript(name: string): Promise<string[]> {
  const host = new Host();
  try {
    const drv = await host.load(driverPath(name), 'sim:edu', { name });
    const out: string[] = [];
    for (const [what, op, payload] of REQUESTS) {
      const r = await drv.request(op, payload).then(
        (b) => Buffer.from(b).toString('hex'),
        (e) => `error ${e.code} ${/status (-?\d+)/.exec(e.message)?.[1]}`,
      );
      out.push(`${what}: ${r}`);
    }
    // hot reload into the same language keeps the driver's counters (state_save / state_restore)
    await drv.reload(readFileSync(driverPath(name)));
    out.push(`stats after reload: ${Buffer.from(await drv.request(6)).toString('hex')}`);
    return out;
  } finally {
    await host.close();
  }
}

describe('one driver in three languages', () => {
  it('the C and Rust SDK declarations are generated from the WIT and match host/abi.ts', () => {
    const fns = parseWit(readFileSync(join(root, 'wit', 'wasmdrv-driver.wit'), 'utf8'));
    for (const [file, gen] of Object.entries(OUTPUTS)) {
      expect(readFileSync(join(root, file), 'utf8'), `${file} is stale: run node scripts/gen-sdk-abi.mjs`).toBe(
        gen(fns),
      );
    }
    const imports = Object.fromEntries(Object.values(IMPORTS).flatMap((g) => Object.entries(g)));
    const exports = { ...REQUIRED_EXPORTS, ...OPTIONAL_EXPORTS };
    const generated = fns.filter((f) => f.iface !== 'driver');
    expect(generated.map((f) => f.core).sort()).toEqual(Object.keys(imports).sort());
    for (const f of generated)
      expect(coreSig(f), f.core).toEqual({
        params: [...imports[f.core].params],
        results: [...imports[f.core].results],
      });
    for (const f of fns.filter((x) => x.iface === 'driver' && x.core in exports)) {
      const want = exports[f.core as keyof typeof exports];
      expect(coreSig(f), f.core).toEqual({ params: [...want.params], results: [...want.results] });
    }
  });

  it('every language answers every request with the same bytes (and the same errors)', async () => {
    const [as, ...others] = await Promise.all(LANGS.map((l) => transcript(l.name)));
    expect(as.find((l) => l.startsWith('factorial 12'))).toBe(
      `factorial 12: ${Buffer.from(u32(479001600)).toString('hex')}`,
    );
    expect(as.find((l) => l.startsWith('unknown op'))).toBe('unknown op: error driver-error -1');
    expect(as.find((l) => l.startsWith('dma too large'))).toBe('dma too large: error driver-error -4');
    for (const [i, t] of others.entries()) expect(t, LANGS[i + 1].lang).toEqual(as);
  });

  it('each loads as a signed package under the edu manifest', async () => {
    const trust = join(root, '.keys', 'trust');
    for (const { name } of LANGS) {
      const host = new Host();
      try {
        const drv = await loadPackage(host, join(root, 'build', 'packages', `${name}.wdrv`), 'sim:edu', { trust });
        expect(Buffer.from(await drv.request(2, u32(5))).readUInt32LE(0), name).toBe(120);
      } finally {
        await host.close();
      }
    }
  });

  for (const { lang, name } of LANGS) {
    it(`${lang}: the fault campaign's mutants are contained and recovered`, async () => {
      const r = await runCampaign({ faults: 200, seed: 5, jobs: 1, trialDeadlineMs: 250, driver: driverPath(name) });
      expect(r.hostCrashes).toBe(0);
      expect(r.outsideGrantWrites).toBe(0);
      expect(r.mutants).toBeGreaterThan(50);
      expect(r.faulted).toBeGreaterThan(10);
      expect(r.unrecovered).toEqual([]);
    }, 60_000);

    it(`${lang}: runs under the fuzzer, gaining coverage, with no crash but fuel-bounded loops`, async () => {
      const r = fuzzJob(await instrument(new Uint8Array(readFileSync(driverPath(name))), name), {
        model: 'edu',
        execs: 2000,
        seed: 11,
      });
      expect(r.execs).toBe(2000);
      expect(r.coverage).toBeGreaterThan(20);
      // Only hangs: a request loop the input drives (raise COUNT) runs out of the fuzzer's per-call fuel,
      // as the real driver would run past its deadline; no trap, no grant violation.
      for (const c of r.crashList) expect(c.kind, c.message).toBe('deadline');
    }, 60_000);
  }
});
