// Package sections and ed25519 signatures (node:crypto).
//
// A package is the driver's core Wasm module with two custom sections:
//   "wasmdrv.manifest"   the manifest, JSON
//   "wasmdrv.signature"  {"alg":"ed25519","key":"<key id>","sig":"<base64>"} over every byte of the
//                        file except this section (so the code and the manifest are both covered)
// Custom sections do not change what the module does, so a package runs like its plain .wasm.

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readWasm, type WasmInfo } from '../wasm/read.ts';
import { appendCustomSection, withoutCustomSections } from '../wasm/write.ts';

export const MANIFEST_SECTION = 'wasmdrv.manifest';
export const SIGNATURE_SECTION = 'wasmdrv.signature';

/** Append a custom section (the package's manifest or signature) after the module's last section. */
export const appendSection = appendCustomSection;

/** The module with every custom section called `name` removed (sections as readWasm finds them). */
export const stripSection = (bytes: Uint8Array, name: string): Uint8Array => withoutCustomSections(bytes, name);

/**
 * The bytes a signature covers: the package without its signature section, cut by
 * withoutCustomSections from the sections readWasm found. signPackage signs exactly these and
 * checkSignature verifies exactly these, so one parser locates the signature and the signed bytes.
 */
function signedBytes(bytes: Uint8Array, info: WasmInfo): Uint8Array {
  return withoutCustomSections(bytes, SIGNATURE_SECTION, info);
}

export interface PackageSections {
  info: WasmInfo;
  /** The manifest section's payload, when there is one. */
  manifest?: Uint8Array;
  /**
   * The signature section's payload, and the bytes it signs: the package without it (it is the last
   * section, so these are the bytes before it).
   */
  signature?: { payload: Uint8Array; signed: Uint8Array };
}

/**
 * The package's sections as the one parser (readWasm) finds them, refusing every ambiguous artefact:
 * two manifests, two signatures, a signature that is not the last section (bytes after it would be
 * unsigned), a signature without a manifest, or another "wasmdrv.*" section this host does not know.
 * The signature is verified over exactly the bytes located here. Throws Error naming the problem.
 */
export function packageSections(bytes: Uint8Array, where: string): PackageSections {
  let info: WasmInfo;
  try {
    info = readWasm(bytes);
  } catch (err) {
    throw new Error(`${where}: not a valid Wasm module: ${(err as Error).message}`);
  }
  const ours = info.sections.filter((sec) => sec.id === 0 && sec.name?.startsWith('wasmdrv.'));
  for (const sec of ours) {
    if (sec.name !== MANIFEST_SECTION && sec.name !== SIGNATURE_SECTION)
      throw new Error(
        `${where}: unknown package section "${sec.name}" (this host knows ${MANIFEST_SECTION} and ${SIGNATURE_SECTION})`,
      );
  }
  const manifests = ours.filter((sec) => sec.name === MANIFEST_SECTION);
  const signatures = ours.filter((sec) => sec.name === SIGNATURE_SECTION);
  if (manifests.length > 1)
    throw new Error(`${where}: ambiguous package: ${manifests.length} ${MANIFEST_SECTION} sections`);
  if (signatures.length > 1)
    throw new Error(`${where}: ambiguous package: ${signatures.length} ${SIGNATURE_SECTION} sections`);
  const out: PackageSections = { info };
  const payload = (sec: (typeof ours)[number]) => {
    const c = info.customSections.find((x) => x.offset > sec.start && x.offset < sec.end)!;
    return bytes.subarray(c.offset, c.offset + c.size);
  };
  if (manifests[0]) out.manifest = payload(manifests[0]);
  const sig = signatures[0];
  if (sig) {
    if (sig !== info.sections[info.sections.length - 1]) {
      throw new Error(
        `${where}: ambiguous package: ${info.sections.length - 1 - info.sections.indexOf(sig)} section(s) after ${SIGNATURE_SECTION} would not be covered by the signature`,
      );
    }
    if (!out.manifest)
      throw new Error(`${where}: ambiguous package: signed, but it has no ${MANIFEST_SECTION} section`);
    out.signature = { payload: payload(sig), signed: signedBytes(bytes, info) };
  }
  return out;
}

export function keyId(key: KeyObject): string {
  const der = (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

export function generateKeys(): { privatePem: string; publicPem: string; id: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    id: keyId(publicKey),
  };
}

export function signPackage(bytes: Uint8Array, privatePem: string): Uint8Array {
  const key = createPrivateKey(privatePem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`signing key is ${key.asymmetricKeyType}, not ed25519`);
  const data = signedBytes(bytes, readWasm(bytes));
  const sig = sign(null, data, key);
  const payload = new TextEncoder().encode(
    JSON.stringify({ alg: 'ed25519', key: keyId(key), sig: sig.toString('base64') }),
  );
  return appendSection(data, SIGNATURE_SECTION, payload);
}

export interface TrustStore {
  keys: Map<string, { key: KeyObject; file: string }>;
  dir: string;
}

/** Every *.pub (PEM, SPKI) in `dir`. A missing directory is an empty store. */
export function loadTrustStore(dir: string): TrustStore {
  const keys = new Map<string, { key: KeyObject; file: string }>();
  if (existsSync(dir)) {
    for (const f of readdirSync(dir)
      .filter((n) => n.endsWith('.pub'))
      .sort()) {
      const file = join(dir, f);
      let key: KeyObject;
      try {
        key = createPublicKey(readFileSync(file));
      } catch (err) {
        throw new Error(`trust store ${file}: not a public key: ${(err as Error).message}`);
      }
      if (key.asymmetricKeyType !== 'ed25519')
        throw new Error(`trust store ${file}: ${key.asymmetricKeyType} key, wasmdrv trusts ed25519 keys only`);
      keys.set(keyId(key), { key, file });
    }
  }
  return { keys, dir };
}

export type SignatureStatus =
  | { status: 'valid'; key: string; file: string }
  | { status: 'unsigned' }
  | { status: 'unknown-key'; key: string }
  | { status: 'invalid'; key: string; reason: string };

/** Check the signature of a package whose sections packageSections() located (throws on an ambiguous one). */
export function checkSignature(bytes: Uint8Array | PackageSections, trust: TrustStore): SignatureStatus {
  const found = bytes instanceof Uint8Array ? packageSections(bytes, 'package') : bytes;
  if (!found.signature) return { status: 'unsigned' };
  let s: { alg?: string; key?: string; sig?: string };
  try {
    s = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(found.signature.payload));
  } catch {
    return { status: 'invalid', key: '?', reason: 'the signature section is not JSON' };
  }
  if (!s || typeof s !== 'object' || s.alg !== 'ed25519' || typeof s.key !== 'string' || typeof s.sig !== 'string') {
    return {
      status: 'invalid',
      key: String(s && typeof s === 'object' ? s.key : '?'),
      reason: 'the signature section is malformed',
    };
  }
  const trusted = trust.keys.get(s.key);
  if (!trusted) return { status: 'unknown-key', key: s.key };
  const ok = verify(null, found.signature.signed, trusted.key, Buffer.from(s.sig, 'base64'));
  return ok
    ? { status: 'valid', key: s.key, file: trusted.file }
    : {
        status: 'invalid',
        key: s.key,
        reason: 'the signature does not match the contents (tampered code or manifest, or signed with another key)',
      };
}
