// Package trust (issue 15, class 3): under a trust policy a stripped (bare) module or an unsigned
// package is refused unless allowed by name, a bare one then runs only under the operator's
// manifest (never all-access); ambiguous packages are refused; a hot reload passes the same policy.
// The bystander (the signed edu package) answers throughout.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Host, LoadError, loadPackage, type Fault } from '../../host/index.ts';
import {
  appendSection,
  generateKeys,
  MANIFEST_SECTION,
  signPackage,
  SIGNATURE_SECTION,
  stripSection,
} from '../../host/package/sign.ts';
import { Service } from '../../host/service/daemon.ts';
import { Bystander } from './bystander.ts';
import { driverWat } from './modules.ts';
import { driverPath, root, u32, words } from '../helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-trust-'));
const trust = join(tmp, 'trust');
mkdirSync(trust);
copyFileSync(join(root, '.keys', 'trust', 'dev.pub'), join(trust, 'dev.pub'));
const vendor = generateKeys();
writeFileSync(join(trust, 'vendor.pub'), vendor.publicPem);
const stranger = generateKeys();
const eduManifest = JSON.parse(readFileSync(join(root, 'guest-drivers', 'edu', 'manifest.json'), 'utf8'));
const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
const eduWasm = new Uint8Array(readFileSync(driverPath('edu')));
const pack = (wasm: Uint8Array, manifest: object = eduManifest) => appendSection(wasm, MANIFEST_SECTION, enc(manifest));
const sign = (bytes: Uint8Array, key = vendor) => signPackage(bytes, key.privatePem);
const signedEdu = sign(pack(eduWasm));

let host: Host;
let n = 0;
afterEach(() => host?.close());
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function policyHost(allowUnsigned: string[] = []): Promise<Bystander> {
  host = new Host({ trust: { trust, allowUnsigned } });
  return Bystander.start(host);
}

async function refused(b: Bystander, load: () => Promise<unknown>, loaded = 0): Promise<string> {
  const err = await b.during(() =>
    load().then(
      () => 'loaded',
      (e) => e,
    ),
  );
  expect(err).toBeInstanceOf(LoadError);
  // nothing new left loaded (a refused reload leaves the driver it was for running)
  expect(host.drivers.filter((d) => d.name !== 'bystander').length).toBe(loaded);
  return (err as Error).message;
}

describe('bare modules and unsigned packages under a trust policy', () => {
  it('a signed package with both sections stripped is a bare module: refused through host.load', async () => {
    const b = await policyHost();
    const bare = stripSection(stripSection(signedEdu, SIGNATURE_SECTION), MANIFEST_SECTION);
    expect(await refused(b, () => host.load(bare, 'sim:edu:t1', { name: 'edu' }))).toContain(
      'a bare module (no wasmdrv.manifest section, unsigned)',
    );
  });

  it('the same bare module through loadPackage on a host without a policy: refused', async () => {
    host = new Host();
    const b = await Bystander.startSigned(host);
    const bare = stripSection(stripSection(signedEdu, SIGNATURE_SECTION), MANIFEST_SECTION);
    expect(await refused(b, () => loadPackage(host, bare, 'sim:edu:t2', { trust }))).toContain('a bare module');
  });

  it('only the signature stripped: an unsigned package, refused unless allowed by that name', async () => {
    const b = await policyHost(['other']);
    const unsigned = stripSection(signedEdu, SIGNATURE_SECTION);
    expect(await refused(b, () => host.load(unsigned, 'sim:edu:t3'))).toContain('"edu" is not allowed unsigned');
  });

  it("a bare module allowed by name still needs the operator's manifest, and then runs under that grant, not all-access", async () => {
    const b = await policyHost(['peek']);
    // reads offset 0x1000 of BAR0: inside the device, outside a 0x100-byte grant
    const peek = driverWat({
      imports: '(import "wasmdrv" "reg_read32" (func $rd (param i32 i32) (result i32)))',
      request: '(drop (call $rd (i32.const 0) (i32.const 0x1000))) (i32.const 0)',
    });
    expect(await refused(b, () => host.load(peek, 'sim:edu:t4', { name: 'peek' }))).toContain(
      "needs the operator's manifest for its grant",
    );
    const manifest = {
      ...eduManifest,
      name: 'peek',
      regions: [{ index: 0, size: '0x100', access: 'r' }],
      interrupts: false,
      dma: undefined,
    };
    const drv = await host.load(peek, 'sim:edu:t4b', { name: 'peek', manifest, restart: false });
    const fault = new Promise<Fault>((resolve) => drv.once('fault', resolve));
    await b.during(() => drv.request(1).catch(() => {}));
    const f = await fault;
    expect(f.kind).toBe('register-out-of-bounds');
    expect(f.message).toContain('offset 0x1000');
  });

  it('the daemon with a trust store refuses a bare module in its config', async () => {
    const bareFile = join(tmp, 'bare.wasm');
    writeFileSync(bareFile, stripSection(stripSection(signedEdu, SIGNATURE_SECTION), MANIFEST_SECTION));
    const svc = new Service({
      socket: join(tmp, 's.sock'),
      trust,
      drivers: [{ name: 'edu', driver: bareFile, device: 'sim:edu' }],
    });
    const err = await svc.start().catch((e) => e);
    await svc.close();
    expect(err).toBeInstanceOf(LoadError);
    expect(err.message).toContain('a bare module');
  });

  it('the CLI with --trust refuses a stripped module, naming it, exit 1 (a refused driver is a failed operation)', () => {
    const bareFile = join(tmp, 'stripped.wasm');
    writeFileSync(bareFile, stripSection(stripSection(signedEdu, SIGNATURE_SECTION), MANIFEST_SECTION));
    const r = spawnSync(
      process.execPath,
      [
        join(root, 'bin', 'wasmdrv.js'),
        'run',
        bareFile,
        '--device',
        'sim:edu',
        '--trust',
        trust,
        '--request',
        '2 u32:5',
      ],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toContain(`${bareFile}: a bare module`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.status).toBe(1);
  });
});

describe('ambiguous packages', () => {
  it('two manifest sections (signed over both) are refused', async () => {
    const b = await policyHost();
    const two = sign(
      appendSection(
        pack(eduWasm),
        MANIFEST_SECTION,
        enc({ ...eduManifest, regions: [{ index: 0, size: '0x100000', access: 'rw' }] }),
      ),
    );
    expect(await refused(b, () => host.load(two, `sim:edu:a${n++}`))).toContain(
      'ambiguous package: 2 wasmdrv.manifest sections',
    );
  });

  it('two signature sections are refused', async () => {
    const b = await policyHost();
    const sig = signedEdu.subarray(stripSection(signedEdu, SIGNATURE_SECTION).length);
    const two = new Uint8Array([...signedEdu, ...sig]);
    expect(await refused(b, () => host.load(two, `sim:edu:a${n++}`))).toContain('2 wasmdrv.signature sections');
  });

  it('a section after the signature (not covered by it) is refused', async () => {
    const b = await policyHost();
    const after = appendSection(signedEdu, 'extra', enc('hello'));
    expect(await refused(b, () => host.load(after, `sim:edu:a${n++}`))).toContain(
      'section(s) after wasmdrv.signature would not be covered',
    );
  });

  it('an unknown wasmdrv.* section is refused', async () => {
    const b = await policyHost();
    const odd = sign(appendSection(pack(eduWasm), 'wasmdrv.grant', enc({ all: true })));
    expect(await refused(b, () => host.load(odd, `sim:edu:a${n++}`))).toContain(
      'unknown package section "wasmdrv.grant"',
    );
  });

  it('a signature by an untrusted key, and a tampered one, are refused', async () => {
    const b = await policyHost();
    expect(await refused(b, () => host.load(sign(pack(eduWasm), stranger), `sim:edu:a${n++}`))).toContain(
      'which is not in the trust store',
    );
    const t = sign(pack(eduWasm));
    t[300] ^= 1;
    expect(await refused(b, () => host.load(t, `sim:edu:a${n++}`))).toContain('is invalid');
  });
});

describe('hot reload passes the same policy', () => {
  async function running() {
    const b = await policyHost();
    const drv = await host.load(signedEdu, `sim:edu:r${n++}`);
    expect(words(await drv.request(2, u32(6)))).toEqual([720]);
    return { b, drv };
  }

  it('a bare module cannot replace a signed driver', async () => {
    const { b, drv } = await running();
    expect(await refused(b, () => drv.reload(eduWasm), 1)).toContain('reload: a bare module');
    expect(words(await drv.request(2, u32(7)))).toEqual([5040]);
  });

  it('an unsigned package, or one signed by a stranger, cannot replace it', async () => {
    const { b, drv } = await running();
    expect(await refused(b, () => drv.reload(pack(eduWasm)), 1)).toContain('the package is not signed');
    expect(await refused(b, () => drv.reload(sign(pack(eduWasm), stranger)), 1)).toContain('not in the trust store');
  });

  it('a signed package for another device, or asking for another grant, cannot replace it', async () => {
    const { b, drv } = await running();
    const uart = sign(pack(eduWasm, { ...eduManifest, match: [{ sim: 'uart16550' }] }));
    expect(await refused(b, () => drv.reload(uart), 1)).toContain('does not drive device');
    const wider = sign(
      pack(eduWasm, { ...eduManifest, regions: [{ ...eduManifest.regions[0], writable: undefined }] }),
    );
    expect(await refused(b, () => drv.reload(wider), 1)).toContain('asks for another grant');
    expect(drv.state).toBe('running');
  });

  it('a package that passes the same policy reloads', async () => {
    const { drv } = await running();
    const r = await drv.reload(sign(pack(eduWasm)));
    expect(r.ok, r.error).toBe(true);
    expect(words(await drv.request(2, u32(8)))).toEqual([40320]);
  });
});
