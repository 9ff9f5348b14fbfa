// wasmdrv keygen | pack | sign | verify | inspect — driver packages (host/package/).
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ABI_VERSION, IMPORT_MODULE, importGroup, MEMORY_IMPORT } from '../abi.ts';
import { packageRoot } from '../native.ts';
import { defaultTrustDir, isPackage, readPackage, refusalFor } from '../package/load.ts';
import { describeGrant, grantFor, matches, parseManifest } from '../package/manifest.ts';
import { packDriver } from '../package/pack.ts';
import { generateKeys, signPackage } from '../package/sign.ts';
import { isOpenSource } from '../package/licenses.ts';
import { DEFAULT_LIMITS } from '../grant.ts';
import { checkModule } from '../sandbox/linker.ts';
import { readWasm } from '../wasm/read.ts';
import { Host } from '../host.ts';
import { describeConfinement, manifestConfinement } from '../devices/confinement.ts';

import { describeDrift, grantDrift, type RegisterUseReport, registerUses } from '../package/register-use.ts';
import { action, checkDeviceId, CliError, readUserFile, readUserText } from './common.ts';
import { userModels } from './run.ts';

const read = (path: string, what = 'file') => readUserFile(path, what);

export function register(program: Command): void {
  program
    .command('keygen')
    .summary('an ed25519 key pair for signing packages')
    .option('--out <dir>', 'where to write NAME.key (0600) and NAME.pub', '.')
    .option('--name <name>', "the key files' base name", 'wasmdrv')
    .action(action(cmdKeygen));
  program
    .command('pack')
    .summary('manifest.json + the .wasm -> a driver package (.wdrv)')
    .argument('<dir>', 'a driver folder holding manifest.json')
    .option('--wasm <file>', "the driver binary (default: the folder's build output or its asconfig.json target)")
    .option('--key <key>', 'sign with this private key')
    .option('--out <file>', 'the package file (default NAME-VERSION.wdrv)')
    .action(action(cmdPack));
  program
    .command('sign')
    .summary('sign a package')
    .argument('<package>', 'the .wdrv file')
    .requiredOption('--key <key>', 'the private key')
    .option('--out <file>', 'write the signed package here (default: in place)')
    .action(action(cmdSign));
  program
    .command('verify')
    .summary('check a package before running it: signature, manifest, ABI, grant, device')
    .description(
      'Checks everything that can be known before running: signature, manifest, ABI, the device match and the imports against the grant. Each problem is printed on its own line. Exit 0 when all pass, 1 on any problem with the package, 2 for a usage error (unknown option, missing file, malformed device id).',
    )
    .argument('<package>', 'the .wdrv file')
    .option('--trust <dir>', 'trust store (default $WASMDRV_TRUST or ~/.config/wasmdrv/trust)')
    .option('--device <id>', 'also check that the package drives this device and fits its grant')
    .option('--allow-unsigned', 'an unsigned package is not a problem')
    .action(action(cmdVerify));
  program
    .command('inspect')
    .summary('what a package or a bare .wasm holds: manifest, imports, exports, signature, grants')
    .description(
      'For a package: its manifest, imports, exports, signature and grants in words. For a bare .wasm: its imports and exports and a first draft of the manifest.json whose grant it needs.',
    )
    .argument('<file>', 'a .wdrv package or a .wasm driver')
    .option('--trust <dir>', 'trust store (default $WASMDRV_TRUST or ~/.config/wasmdrv/trust)')
    .option('--json', 'as one JSON object')
    .action(action(cmdInspect));
}

async function cmdKeygen(values: { out: string; name: string }): Promise<number> {
  const k = generateKeys();
  mkdirSync(values.out!, { recursive: true });
  const keyFile = join(values.out!, `${values.name}.key`);
  const pubFile = join(values.out!, `${values.name}.pub`);
  if (existsSync(keyFile)) throw new CliError(`${keyFile} exists: refusing to overwrite a private key`);
  writeFileSync(keyFile, k.privatePem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(pubFile, k.publicPem);
  console.log(`key ${k.id}: private ${keyFile} (keep it secret), public ${pubFile} (put it in a trust store)`);
  return 0;
}

/** The asconfig.json target whose entry lives in `dir`: its outFile is the driver's .wasm. */
function wasmFor(dir: string, name: string): string | undefined {
  const built = join(dir, 'build', `${name}.wasm`);
  if (existsSync(built)) return built;
  const root = packageRoot();
  try {
    const cfg = JSON.parse(readFileSync(join(root, 'asconfig.json'), 'utf8'));
    for (const t of Object.values(cfg.targets as Record<string, { entry: string; outFile: string }>)) {
      if (resolve(root, dirname(t.entry)) === resolve(dir)) return resolve(root, t.outFile);
    }
  } catch {
    /* no asconfig */
  }
  return undefined;
}

async function cmdPack(dir: string, values: { wasm?: string; out?: string; key?: string }): Promise<number> {
  const manifestPath = join(dir, 'manifest.json');
  const manifestText = readUserText(manifestPath, 'manifest');
  const m = parseManifest(manifestText, manifestPath);
  const wasm = values.wasm ?? wasmFor(dir, m.name);
  if (!wasm)
    throw new CliError(
      `${dir}: no --wasm given, no build output (wasmdrv build ${dir}) and no asconfig.json target builds from this directory`,
    );
  const input = read(wasm, 'driver file');
  const key = values.key === undefined ? undefined : readUserText(values.key, 'key file');
  let bytes: Uint8Array;
  try {
    bytes = packDriver(input, m, key, wasm);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  for (const line of describeDrift(grantDrift(m, await registerUses(input)))) console.error(`pack: warning: ${line}`);
  const out = values.out ?? `${m.name}-${m.version}.wdrv`;
  mkdirSync(dirname(resolve(out)), { recursive: true });
  writeFileSync(out, bytes);
  console.log(
    `packed ${m.name} ${m.version} from ${wasm} into ${out} (${bytes.length} bytes${values.key ? ', signed' : ', unsigned'})`,
  );
  return 0;
}

async function cmdSign(file: string, values: { key: string; out?: string }): Promise<number> {
  const signed = signPackage(read(file, 'package'), readUserText(values.key, 'key file'));
  writeFileSync(values.out ?? file, signed);
  console.log(`signed ${values.out ?? file}`);
  return 0;
}

/** verify: signature, manifest, ABI, imports against the grant, and (with --device) the device. */
async function cmdVerify(
  where: string,
  values: { trust?: string; device?: string; allowUnsigned?: boolean },
): Promise<number> {
  if (values.device) checkDeviceId(values.device, userModels());
  const bytes = read(where, 'package');
  let pkg: ReturnType<typeof readPackage>;
  try {
    pkg = readPackage(bytes, where, values.trust ?? defaultTrustDir());
  } catch (err) {
    console.error(`verify: ${(err as Error).message}`);
    return 1;
  }
  const problems: string[] = [];
  const refusal = refusalFor(pkg.signature, where, values.allowUnsigned ?? false);
  if (refusal) problems.push(refusal);
  if (pkg.manifest.abi !== ABI_VERSION)
    problems.push(`${where}: built for ABI v${pkg.manifest.abi}, this host speaks v${ABI_VERSION}`);
  if (values.device) {
    const host = new Host();
    try {
      const dev = host.openDevice(values.device);
      if (!matches(pkg.manifest, dev.spec))
        problems.push(`${where}: ${pkg.manifest.name} does not drive device ${dev.spec.id}`);
      else {
        const g = grantFor(pkg.manifest, dev.spec, where);
        checkModule(
          pkg.bytes,
          { regions: dev.spec.regions, ports: dev.spec.ports, dmaCount: dev.spec.dma.length, hasIrq: !!dev.spec.irq },
          g.grant,
          { ...DEFAULT_LIMITS, ...g.limits },
          where,
        );
      }
    } catch (err) {
      problems.push((err as Error).message);
    } finally {
      await host.close();
    }
  }
  for (const p of problems) console.error(`verify: ${p}`);
  if (!problems.length)
    console.log(
      `${where}: ${pkg.manifest.name} ${pkg.manifest.version}: signature ${pkg.signature.status}${pkg.signature.status === 'valid' ? ` (key ${pkg.signature.key})` : ''}, manifest valid${values.device ? `, fits ${values.device}` : ''}`,
    );
  return problems.length ? 1 : 0;
}

/**
 * A first draft of the manifest a bare driver needs, from what it imports: register imports want a
 * region (read-only unless it writes), port imports a port range, irq_* interrupts, dma_* a window.
 * Sizes, offsets and the match cannot be read from the binary: the draft marks them to fill in.
 */
export function draftManifest(
  name: string,
  imports: { module: string; name: string }[],
  uses?: RegisterUseReport,
): Record<string, unknown> {
  const names = new Set(imports.filter((i) => i.module === IMPORT_MODULE).map((i) => i.name));
  const has = (re: RegExp) => [...names].some((n) => re.test(n));
  const draft: Record<string, unknown> = {
    name: name.replace(/[^a-z0-9_-]/gi, '-').toLowerCase(),
    version: '0.1.0',
    license: 'FILL-IN (an SPDX id, e.g. Apache-2.0)',
    abi: ABI_VERSION,
    description: 'FILL-IN',
    match: [
      { sim: 'FILL-IN (a model), or { "pci": { "vendor": "0x....", "device": "0x...." } } or { "uio": "name" }' },
    ],
  };
  if (has(/^reg_/)) {
    // The registers its code writes with constant offsets (host/package/register-use.ts): the least
    // grant it can run with, unless some write computes its offset at run time.
    const writes = new Map<string, { offset: string; width: number }>();
    for (const u of uses?.uses ?? [])
      if (u.kind === 'write')
        writes.set(`${u.offset}/${u.width}`, { offset: `0x${u.offset.toString(16).padStart(4, '0')}`, width: u.width });
    const end = Math.max(0, ...(uses?.uses ?? []).map((u) => u.offset + u.width));
    const writable =
      writes.size && !uses?.dynamic.some((d) => d.kind === 'write')
        ? [...writes.values()].sort((a, b) => Number(a.offset) - Number(b.offset))
        : [{ offset: 'FILL-IN', width: 4 }];
    draft.regions = [
      {
        index: 0,
        size: `FILL-IN (the region's size; its code touches bytes below 0x${end.toString(16)})`,
        access: has(/^reg_write/) ? 'rw' : 'r',
        ...(has(/^reg_write/) ? { writable } : {}),
      },
    ];
  }
  if (has(/^io_/)) draft.ports = [{ index: 0, size: 8, access: has(/^io_out/) ? 'rw' : 'r' }];
  if (has(/^dma_/)) draft.dma = { windows: 1 };
  if (has(/^irq_/)) draft.interrupts = true;
  return draft;
}

async function inspectModule(file: string, bytes: Uint8Array, json: boolean): Promise<number> {
  let info: ReturnType<typeof readWasm>;
  try {
    info = readWasm(bytes);
  } catch (err) {
    throw new CliError(`${file}: not a valid Wasm module: ${(err as Error).message}`);
  }
  const foreign = info.imports.filter(
    (i) =>
      !(i.module === IMPORT_MODULE && importGroup(i.name)) &&
      !(i.module === MEMORY_IMPORT.module && i.name === MEMORY_IMPORT.name),
  );
  const groups = [
    ...new Set(info.imports.map((i) => (i.module === IMPORT_MODULE ? importGroup(i.name) : undefined)).filter(Boolean)),
  ];
  const draft = draftManifest(basename(file).replace(/\.wasm$/, ''), info.imports, await registerUses(bytes));
  const out = {
    file,
    size: bytes.length,
    package: false,
    imports: info.imports.map((i) => `${i.module}.${i.name}`),
    exports: info.exports.map((e) => e.name),
    importGroups: groups,
    notInAbi: foreign.map((i) => `${i.module}.${i.name}`),
    draftManifest: draft,
  };
  if (json) {
    console.log(JSON.stringify(out));
    return 0;
  }
  console.log(`${file}: a bare driver module (no manifest: not a package)`);
  console.log(`  size       ${bytes.length} bytes`);
  console.log(`  imports    ${out.imports.join(' ')}`);
  console.log(`  exports    ${out.exports.join(' ')}`);
  console.log(`  needs      ${groups.join(', ') || 'nothing beyond memory'}`);
  if (foreign.length) console.log(`  NOT IN THE ABI (it will be refused): ${out.notInAbi.join(' ')}`);
  console.log(`  a first draft of its manifest.json (fill in the FILL-IN fields, then wasmdrv pack):`);
  for (const l of JSON.stringify(draft, null, 2).split('\n')) console.log(`    ${l}`);
  return 0;
}

async function cmdInspect(file: string, values: { trust?: string; json?: boolean }): Promise<number> {
  const bytes = read(file);
  if (!isPackage(bytes)) return inspectModule(file, bytes, !!values.json);
  const pkg = readPackage(bytes, file, values.trust ?? defaultTrustDir());
  const info = readWasm(bytes);
  const m = pkg.manifest;
  const out = {
    name: m.name,
    version: m.version,
    license: m.license,
    openSource: isOpenSource(m.license),
    abi: m.abi,
    description: m.description,
    match: m.match,
    size: bytes.length,
    signature: pkg.signature,
    imports: info.imports.map((i) => `${i.module}.${i.name}`),
    exports: info.exports.map((e) => e.name),
    grants: describeGrant(m),
    limits: { ...DEFAULT_LIMITS, ...m.limits },
    dmaConfinement: manifestConfinement(m),
    registerDrift: describeDrift(grantDrift(m, await registerUses(bytes))),
  };
  if (values.json) {
    console.log(JSON.stringify(out));
    return 0;
  }
  console.log(`${m.name} ${m.version} — ${m.description ?? ''}`);
  console.log(`  license    ${m.license}${out.openSource ? '' : ' (not open source: loading it taints the host)'}`);
  console.log(`  ABI        v${m.abi}`);
  console.log(`  size       ${bytes.length} bytes (${basename(file)})`);
  console.log(`  signature  ${pkg.signature.status}${'key' in pkg.signature ? ` (key ${pkg.signature.key})` : ''}`);
  console.log(
    `  drives     ${m.match.map((x) => (x.pci ? `pci ${x.pci.vendor}:${x.pci.device}` : x.uio ? `uio "${x.uio}"` : `sim:${x.sim}`)).join(', ')}`,
  );
  console.log(`  imports    ${out.imports.join(' ')}`);
  console.log(`  exports    ${out.exports.join(' ')}`);
  console.log('  grants');
  for (const g of out.grants) console.log(`    ${g}`);
  console.log(`  code/grant ${out.registerDrift.length ? 'DRIFT:' : 'the registers its code uses match the grant'}`);
  for (const d of out.registerDrift) console.log(`    ${d}`);
  console.log(
    `  limits     ${Object.entries(out.limits)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  console.log(
    `  DMA        on vfio devices ${describeConfinement(out.dmaConfinement.vfio)}; on uio (PCI) devices ${describeConfinement(out.dmaConfinement.uio)}${out.dmaConfinement.uio === 'none' ? ' (refused unless --allow-unconfined-dma ' + m.name + ')' : ''}`,
  );
  return 0;
}
