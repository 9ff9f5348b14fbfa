// Loading a driver package: signature, ABI version, device match, least-privilege grant, license.
// Every refusal names what was wrong, and nothing is left loaded.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ABI_VERSION } from '../abi.ts';
import type { Driver, DriverOptions } from '../driver.ts';
import { LoadError } from '../faults.ts';
import type { DeviceHandle, DeviceSpec } from '../device-spec.ts';
import { checkLimitCaps, type Grant, type Limits } from '../grant.ts';
import { readWasm } from '../wasm/read.ts';
import { isOpenSource } from './licenses.ts';
import { unconfinedRefusal } from '../devices/confinement.ts';
import { grantFor, matches, parseManifest, type Manifest } from './manifest.ts';
import {
  checkSignature,
  loadTrustStore,
  MANIFEST_SECTION,
  packageSections,
  type PackageSections,
  type SignatureStatus,
} from './sign.ts';

export interface PackageOptions {
  /** Directory of trusted *.pub keys. Default $WASMDRV_TRUST or ~/.config/wasmdrv/trust. */
  trust?: string;
  /**
   * Drivers, by name, that may load without a valid signature: an unsigned package (its manifest's
   * grant, or `manifest`'s) or a bare module (only with `manifest`). Never a wildcard: each is named.
   */
  allowUnsigned?: string[];
  /**
   * The operator's own manifest: the explicit grant a bare module runs under (required for one: a
   * module without a manifest never gets the all-access default), or a narrower one for an unsigned package.
   */
  manifest?: Manifest;
  /** The operator's name for the driver (default: its manifest's). allowUnsigned matches this name. */
  name?: string;
  onWarning?: (message: string) => void;
  /** Package names the operator allows onto a device whose DMA nothing confines (host/devices/confinement.ts). */
  allowUnconfinedDma?: string[];
}

export function defaultTrustDir(): string {
  return process.env.WASMDRV_TRUST ?? join(homedir(), '.config', 'wasmdrv', 'trust');
}

export interface PackageInfo {
  manifest: Manifest;
  signature: SignatureStatus;
  bytes: Uint8Array;
}

function manifestOf(payload: Uint8Array, where: string): Manifest {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    throw new LoadError(`${where}: the ${MANIFEST_SECTION} section is not UTF-8`);
  }
  try {
    return parseManifest(text, where);
  } catch (err) {
    throw new LoadError((err as Error).message);
  }
}

function sectionsOf(bytes: Uint8Array, where: string): PackageSections {
  try {
    return packageSections(bytes, where);
  } catch (err) {
    throw new LoadError((err as Error).message);
  }
}

/** Read a package's manifest and signature status without loading it. Throws LoadError. */
export function readPackage(bytes: Uint8Array, where: string, trustDir = defaultTrustDir()): PackageInfo {
  const found = sectionsOf(bytes, where);
  if (!found.manifest)
    throw new LoadError(`${where}: not a driver package: no ${MANIFEST_SECTION} section (wasmdrv pack adds one)`);
  return {
    manifest: manifestOf(found.manifest, where),
    signature: checkSignature(found, loadTrustStore(trustDir)),
    bytes,
  };
}

/** True when the file carries a wasmdrv manifest (a package rather than a bare module). */
export function isPackage(bytes: Uint8Array): boolean {
  try {
    return readWasm(bytes).customSections.some((c) => c.name === MANIFEST_SECTION);
  } catch {
    return false;
  }
}

export function refusalFor(sig: SignatureStatus, where: string, allowUnsigned: boolean): string | undefined {
  switch (sig.status) {
    case 'valid':
      return undefined;
    case 'unsigned':
      return allowUnsigned
        ? undefined
        : `${where}: the package is not signed (pass --allow-unsigned NAME to load it for development)`;
    case 'unknown-key':
      return `${where}: signed by key ${sig.key}, which is not in the trust store`;
    case 'invalid':
      return `${where}: signature by key ${sig.key} is invalid: ${sig.reason}`;
  }
}

/** What the trust policy admitted: the driver's name, grant and limits, and how. */
export interface Admission {
  name: string;
  manifest: Manifest;
  grant: Grant;
  limits: Partial<Limits>;
  signature: SignatureStatus;
  /** True for a bare module (no manifest of its own) running under the operator's manifest. */
  bare: boolean;
}

/**
 * The trust policy, in one place: every load and every reload under a policy goes through here.
 * A signed package must verify against the trust store; an unsigned package or a bare module loads
 * only if the operator allowed it by name, and a bare module only under the operator's manifest.
 * Then ABI, device match, grant against the device, and the limits against the host's caps.
 */
export function admit(bytes: Uint8Array, where: string, dev: DeviceSpec, o: PackageOptions, caps: Limits): Admission {
  const found = sectionsOf(bytes, where);
  const own = found.manifest ? manifestOf(found.manifest, where) : undefined;
  const signature = own
    ? checkSignature(found, loadTrustStore(o.trust ?? defaultTrustDir()))
    : ({ status: 'unsigned' } as const);
  const name = o.name ?? o.manifest?.name ?? own?.name;
  const allowed = name !== undefined && (o.allowUnsigned ?? []).includes(name);
  let m: Manifest;
  if (!own) {
    if (!allowed) {
      throw new LoadError(
        `${where}: a bare module (no ${MANIFEST_SECTION} section, unsigned): under a trust policy it loads only if the operator allows it by name (--allow-unsigned NAME, allowUnsigned: [NAME])${name ? `; "${name}" is not allowed` : ''}`,
      );
    }
    if (!o.manifest)
      throw new LoadError(
        `${where}: bare module ${name} is allowed unsigned, but needs the operator's manifest for its grant (--manifest FILE); it never gets the all-access default`,
      );
    m = o.manifest;
  } else if (signature.status === 'unsigned' && allowed) {
    m = o.manifest ?? own;
  } else {
    const refusal = refusalFor(signature, where, false);
    if (refusal)
      throw new LoadError(
        signature.status === 'unsigned' && name ? `${refusal}; "${name}" is not allowed unsigned` : refusal,
      );
    m = own;
  }
  if (signature.status !== 'valid')
    o.onWarning?.(
      `WARNING: loading UNSIGNED ${own ? 'package' : 'bare module'} ${name} ${m.version} (allowed unsigned by name): its code${own ? ' and manifest are' : ' is'} unverified`,
    );
  if (m.abi !== ABI_VERSION) throw new LoadError(`${where}: built for ABI v${m.abi}, this host speaks v${ABI_VERSION}`);
  if (!matches(m, dev))
    throw new LoadError(
      `${where}: ${m.name} does not drive device ${dev.id} (${dev.name}); it matches ${JSON.stringify(m.match)}`,
    );
  let granted;
  try {
    granted = grantFor(m, dev, where);
  } catch (err) {
    throw new LoadError((err as Error).message);
  }
  checkLimitCaps(granted.limits, caps, where);
  const unconfined = unconfinedRefusal(m, dev, where, o.allowUnconfinedDma);
  if (unconfined) throw new LoadError(unconfined);
  return { name: name ?? m.name, manifest: m, grant: granted.grant, limits: granted.limits, signature, bare: !own };
}

const same = (a: unknown, b: unknown) =>
  JSON.stringify(a, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)) ===
  JSON.stringify(b, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));

export interface LoadOptions extends Partial<DriverOptions> {
  /** Under a trust policy: the operator's manifest, the grant of a bare module allowed by name (package/load.ts). */
  manifest?: Manifest;
}

/**
 * What loading a package needs of the Host (host/host.ts implements it). An interface here, not an
 * import of host.ts: the Host calls loadAdmitted for every load under a trust policy, so importing it
 * back would make the two files a cycle.
 */
export interface PackageHost {
  readonly limitCaps: Limits;
  openDevice(id: string): DeviceHandle;
  loadChecked(driver: Uint8Array, dev: DeviceHandle, opts: LoadOptions): Promise<Driver>;
  taint(reason: string): void;
}

/**
 * Admit, then load under what was admitted. The driver keeps the policy for its reloads: a new
 * module must pass the same policy on the same device, under the same name, grant and limits.
 */
export async function loadAdmitted(
  host: PackageHost,
  bytes: Uint8Array,
  dev: DeviceHandle,
  where: string,
  o: PackageOptions,
  load: LoadOptions = {},
): Promise<Driver> {
  const a = admit(bytes, where, dev.spec, o, host.limitCaps);
  const admitReload = (next: Uint8Array): void => {
    const b = admit(next, `${a.name}: reload`, dev.spec, { ...o, name: a.name, onWarning: undefined }, host.limitCaps);
    if (b.name !== a.name) throw new LoadError(`${a.name}: reload: the new package is ${b.name}, not ${a.name}`);
    if (!same(b.grant, a.grant) || !same(b.limits, a.limits))
      throw new LoadError(
        `${a.name}: reload: the new package asks for another grant or other limits; stop the driver and load it instead`,
      );
  };
  // The operator's own limits (--deadline, LoadOptions.limits) override the manifest's; the grant is the admitted one.
  const drv = await host.loadChecked(bytes, dev, {
    ...load,
    name: a.name,
    grant: a.grant,
    limits: { ...a.limits, ...load.limits },
    admitReload,
  });
  if (!isOpenSource(a.manifest.license))
    host.taint(`${a.manifest.name} ${a.manifest.version}: license "${a.manifest.license}" is not open source`);
  return drv;
}

export async function loadPackage(
  host: PackageHost,
  source: string | Uint8Array,
  device: string | DeviceHandle,
  o: PackageOptions = {},
): Promise<Driver> {
  const where = typeof source === 'string' ? source : 'package';
  let bytes: Uint8Array;
  try {
    bytes = typeof source === 'string' ? new Uint8Array(readFileSync(source)) : source;
  } catch (err) {
    throw new LoadError(`${where}: cannot read: ${(err as Error).message}`);
  }
  const dev = typeof device === 'string' ? host.openDevice(device) : device;
  return loadAdmitted(host, bytes, dev, where, o);
}
