// Driver packages: signatures against a trust store, manifests, least-privilege grants, the DMA
// firewall, license taint, and the pack/sign/verify/inspect commands. Every refusal names what was
// wrong and leaves nothing loaded.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Host, LoadError, loadPackage, type Fault } from '../host/index.ts';
import {
  appendSection,
  generateKeys,
  MANIFEST_SECTION,
  signPackage,
  SIGNATURE_SECTION,
  stripSection,
} from '../host/package/sign.ts';
import { driverPath, root, u32, words } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-pkg-'));
const trust = join(tmp, 'trust');
const trusted = generateKeys();
const stranger = generateKeys();
const eduManifest = JSON.parse(readFileSync(join(root, 'guest-drivers', 'edu', 'manifest.json'), 'utf8'));

function pack(wasm: string, manifest: object): Uint8Array {
  return appendSection(
    new Uint8Array(readFileSync(driverPath(wasm))),
    MANIFEST_SECTION,
    new TextEncoder().encode(JSON.stringify(manifest)),
  );
}
const signed = (bytes: Uint8Array, key = trusted) => signPackage(bytes, key.privatePem);

let host: Host;
beforeAll(() => {
  spawnSync('mkdir', ['-p', trust]);
  writeFileSync(join(trust, 'vendor.pub'), trusted.publicPem);
});
afterEach(() => host?.close());
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function refusal(bytes: Uint8Array, device = 'sim:edu', opts = {}): Promise<string> {
  host = new Host();
  const err = await loadPackage(host, bytes, device, { trust, ...opts }).catch((e) => e);
  expect(err).toBeInstanceOf(LoadError);
  expect(host.drivers.length).toBe(0); // nothing left loaded
  return err.message;
}

describe('driver packages', () => {
  it('a signed edu package loads with its grants and serves, DMA round trip included', async () => {
    host = new Host();
    const drv = await loadPackage(host, signed(pack('edu', eduManifest)), 'sim:edu', { trust });
    expect(words(await drv.request(2, u32(12)))).toEqual([479001600]);
    const data = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect([...(await drv.request(4, data))]).toEqual([...data]);
    expect(host.status().tainted).toBe(false);
  });

  it('a tampered binary is refused', async () => {
    const pkg = signed(pack('edu', eduManifest));
    pkg[200] ^= 0x01;
    expect(await refusal(pkg)).toMatch(/signature by key \w+ is invalid: the signature does not match the contents/);
  });

  it('a tampered manifest is refused', async () => {
    const pkg = signed(pack('edu', eduManifest));
    const text = new TextDecoder('latin1').decode(pkg);
    const at = text.indexOf('"0x100"');
    pkg.set(new TextEncoder().encode('"0x200"'), at);
    expect(await refusal(pkg)).toContain('is invalid: the signature does not match');
  });

  it('a signature made with another key under a trusted key id is refused', async () => {
    const good = signed(pack('edu', eduManifest));
    const theirs = signed(pack('edu', eduManifest), stranger);
    const sig = JSON.parse(new TextDecoder().decode(theirs.subarray(theirs.lastIndexOf(0x7b))));
    const forged = appendSection(
      stripSection(good, SIGNATURE_SECTION),
      SIGNATURE_SECTION,
      new TextEncoder().encode(JSON.stringify({ ...sig, key: trusted.id })),
    );
    expect(await refusal(forged)).toContain(`signature by key ${trusted.id} is invalid`);
  });

  it('a key that is not in the trust store is refused', async () => {
    expect(await refusal(signed(pack('edu', eduManifest), stranger))).toContain(
      `signed by key ${stranger.id}, which is not in the trust store`,
    );
  });

  it('an unsigned package loads only with the development flag, with a warning', async () => {
    expect(await refusal(pack('edu', eduManifest))).toContain('the package is not signed (pass --allow-unsigned');
    host = new Host();
    const warnings: string[] = [];
    const drv = await loadPackage(host, pack('edu', eduManifest), 'sim:edu', {
      trust,
      allowUnsigned: ['edu'],
      onWarning: (w) => warnings.push(w),
    });
    expect(drv.state).toBe('running');
    expect(warnings[0]).toContain('UNSIGNED package edu 0.1.0');
  });

  it('a manifest asking for more than the device has is refused', async () => {
    const big = { ...eduManifest, regions: [{ ...eduManifest.regions[0], size: '0x200000' }] };
    expect(await refusal(signed(pack('edu', big)))).toContain(
      'asks for more than device sim:edu has: region 0 size 0x200000',
    );
    const twoWindows = { ...eduManifest, dma: { windows: 2 } };
    expect(await refusal(signed(pack('edu', twoWindows)))).toContain('2 DMA window(s) (the device has 1)');
  });

  it('an import the grant does not allow is refused at load by name', async () => {
    const noIrq = { ...eduManifest, interrupts: false };
    expect(await refusal(signed(pack('edu', noIrq)))).toContain(
      'import wasmdrv.irq_wait is not granted (the grant does not allow irq)',
    );
  });

  it('a package for another device, and an invalid manifest, are refused naming the field', async () => {
    expect(await refusal(signed(pack('edu', eduManifest)), 'sim:uart16550')).toContain(
      'edu does not drive device sim:uart16550',
    );
    const bad = { ...eduManifest, regions: [{ ...eduManifest.regions[0], access: 'write-everything' }] };
    expect(await refusal(signed(pack('edu', bad)))).toContain(
      'invalid manifest: regions.0.access: must be equal to one of the allowed values',
    );
  });

  it('the DMA firewall refuses a bus address outside the window; the write policy refuses other registers', async () => {
    host = new Host();
    const manifest = { ...eduManifest, name: 'broken' };
    const faultOf = async (op: number, dev: string): Promise<Fault> => {
      const drv = await loadPackage(host, signed(pack('test/broken', manifest)), dev, { trust });
      const f = new Promise<Fault>((resolve) => drv.once('fault', resolve));
      await drv.request(op).catch(() => {});
      return f;
    };
    const dma = await faultOf(19, 'sim:edu:fw1');
    expect(dma.kind).toBe('dma-firewall');
    expect(dma.message).toContain(
      'RAM side source 0x80 = 0x7fff0000, bytes [0x7fff0000, 0x7fff0010) is not inside one granted DMA window',
    );
    const policy = await faultOf(20, 'sim:edu:fw2');
    expect(policy.kind, policy.message).toBe('access-denied');
    expect(policy.message).toContain('offset 0x10 width 4: not a writable register under the grant');
  });

  it('a driver without an open-source license taints the host', async () => {
    host = new Host();
    await loadPackage(host, signed(pack('edu', { ...eduManifest, license: 'LicenseRef-Proprietary' })), 'sim:edu', {
      trust,
    });
    expect(host.status()).toMatchObject({
      tainted: true,
      taints: ['edu 0.1.0: license "LicenseRef-Proprietary" is not open source'],
    });
  });
});

describe('wasmdrv keygen / pack / sign / verify / inspect', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(root, 'bin', 'wasmdrv.js'), ...args], { encoding: 'utf8', cwd: tmp });

  it('packs, signs, verifies and inspects; verify exits non-zero on every refusal', () => {
    expect(cli('keygen', '--out', join(tmp, 'keys'), '--name', 'me').status).toBe(0);
    const pkg = join(tmp, 'edu.wdrv');
    expect(cli('pack', join(root, 'guest-drivers', 'edu'), '--out', pkg).status).toBe(0);
    const unsigned = cli('verify', pkg, '--trust', join(tmp, 'keys'));
    expect(unsigned.status).toBe(1);
    expect(unsigned.stderr).toContain('the package is not signed');
    expect(cli('sign', pkg, '--key', join(tmp, 'keys', 'me.key')).status).toBe(0);
    const ok = cli('verify', pkg, '--trust', join(tmp, 'keys'), '--device', 'sim:edu');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('signature valid');
    expect(cli('verify', pkg, '--trust', trust).stderr).toContain('which is not in the trust store');
    const wrongDevice = cli('verify', pkg, '--trust', join(tmp, 'keys'), '--device', 'sim:uart16550');
    expect(wrongDevice.status).toBe(1);
    const bytes = readFileSync(pkg);
    bytes[300] ^= 0xff;
    writeFileSync(join(tmp, 'tampered.wdrv'), bytes);
    const tampered = cli('verify', join(tmp, 'tampered.wdrv'), '--trust', join(tmp, 'keys'));
    expect(tampered.status).not.toBe(0);
    const inspect = cli('inspect', pkg, '--trust', join(tmp, 'keys'));
    expect(inspect.status).toBe(0);
    expect(inspect.stdout).toContain('may read and write BAR0 bytes 0x00–0xff');
    expect(inspect.stdout).toContain('may start DMA into its 1 window(s)');
    expect(inspect.stdout).toContain('may wait for interrupts');
    expect(inspect.stdout).toContain('signature  valid');
  });

  it('the shipped uart16550 package loads with its grant (port I/O only)', async () => {
    host = new Host();
    const drv = await loadPackage(host, join(root, 'build', 'packages', 'uart16550.wdrv'), 'sim:uart16550', {
      trust: join(root, '.keys', 'trust'),
    });
    expect(words(await drv.request(1, new TextEncoder().encode('hi')))).toEqual([2]);
  });
});
