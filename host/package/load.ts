// Loading a driver package: signature, ABI version, device match, least-privilege grant, license.
// Every refusal names what was wrong, and nothing is left loaded.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ABI_VERSION } from '../abi.ts';
import type { Driver } from '../driver.ts';
import { LoadError } from '../faults.ts';
import type { DeviceHandle, Host } from '../host.ts';
import { customSection, readWasm } from '../wasm.ts';
import { isOpenSource } from './licenses.ts';
import { unconfinedRefusal } from '../devices/confinement.ts';
import { grantFor, matches, parseManifest, type Manifest } from './manifest.ts';
import { checkSignature, loadTrustStore, MANIFEST_SECTION, type SignatureStatus } from './sign.ts';

export interface PackageOptions {
  /** Directory of trusted *.pub keys. Default $WASMDRV_TRUST or ~/.config/wasmdrv/trust. */
  trust?: string;
  /** Development only: load unsigned packages (with a warning). */
  allowUnsigned?: boolean;
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

/** Read a package's manifest and signature status without loading it. Throws LoadError. */
export function readPackage(bytes: Uint8Array, where: string, trustDir = defaultTrustDir()): PackageInfo {
  let info;
  try {
    info = readWasm(bytes);
  } catch (err) {
    throw new LoadError(`${where}: not a valid Wasm module: ${(err as Error).message}`);
  }
  const sec = customSection(bytes, info, MANIFEST_SECTION);
  if (!sec) throw new LoadError(`${where}: not a driver package: no ${MANIFEST_SECTION} section (wasmdrv pack adds one)`);
  let manifest: Manifest;
  try {
    manifest = parseManifest(new TextDecoder().decode(sec), where);
  } catch (err) {
    throw new LoadError((err as Error).message);
  }
  return { manifest, signature: checkSignature(bytes, loadTrustStore(trustDir)), bytes };
}

/** True when the file carries a wasmdrv manifest (a package rather than a bare module). */
export function isPackage(bytes: Uint8Array): boolean {
  try {
    return !!customSection(bytes, readWasm(bytes), MANIFEST_SECTION);
  } catch {
    return false;
  }
}

export function refusalFor(sig: SignatureStatus, where: string, allowUnsigned: boolean): string | undefined {
  switch (sig.status) {
    case 'valid':
      return undefined;
    case 'unsigned':
      return allowUnsigned ? undefined : `${where}: the package is not signed (pass --allow-unsigned to load it for development)`;
    case 'unknown-key':
      return `${where}: signed by key ${sig.key}, which is not in the trust store`;
    case 'invalid':
      return `${where}: signature by key ${sig.key} is invalid: ${sig.reason}`;
  }
}

export async function loadPackage(host: Host, source: string | Uint8Array, device: string | DeviceHandle, o: PackageOptions = {}): Promise<Driver> {
  const where = typeof source === 'string' ? source : 'package';
  let bytes: Uint8Array;
  try {
    bytes = typeof source === 'string' ? new Uint8Array(readFileSync(source)) : source;
  } catch (err) {
    throw new LoadError(`${where}: cannot read: ${(err as Error).message}`);
  }
  const pkg = readPackage(bytes, where, o.trust ?? defaultTrustDir());
  const m = pkg.manifest;
  const refusal = refusalFor(pkg.signature, where, o.allowUnsigned ?? false);
  if (refusal) throw new LoadError(refusal);
  if (pkg.signature.status === 'unsigned') o.onWarning?.(`WARNING: loading UNSIGNED package ${m.name} ${m.version} (--allow-unsigned): its code and manifest are unverified`);
  if (m.abi !== ABI_VERSION) throw new LoadError(`${where}: built for ABI v${m.abi}, this host speaks v${ABI_VERSION}`);
  const dev = typeof device === 'string' ? host.openDevice(device) : device;
  if (!matches(m, dev.spec)) throw new LoadError(`${where}: ${m.name} does not drive device ${dev.spec.id} (${dev.spec.name}); it matches ${JSON.stringify(m.match)}`);
  let granted;
  try {
    granted = grantFor(m, dev.spec, where);
  } catch (err) {
    throw new LoadError((err as Error).message);
  }
  const unconfined = unconfinedRefusal(m, dev.spec, where, o.allowUnconfinedDma);
  if (unconfined) throw new LoadError(unconfined);
  const drv = await host.load(bytes, dev, { name: m.name, grant: granted.grant, limits: granted.limits });
  if (!isOpenSource(m.license)) host.taint(`${m.name} ${m.version}: license "${m.license}" is not open source`);
  return drv;
}
