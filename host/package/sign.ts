// Package sections and ed25519 signatures (node:crypto).
//
// A package is the driver's core Wasm module with two custom sections:
//   "wasmdrv.manifest"   the manifest, JSON
//   "wasmdrv.signature"  {"alg":"ed25519","key":"<key id>","sig":"<base64>"} over every byte of the
//                        file except this section (so the code and the manifest are both covered)
// Custom sections do not change what the module does, so a package runs like its plain .wasm.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readWasm, customSection } from '../wasm.ts';

export const MANIFEST_SECTION = 'wasmdrv.manifest';
export const SIGNATURE_SECTION = 'wasmdrv.signature';

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

export function appendSection(bytes: Uint8Array, name: string, payload: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const body = [...leb(nameBytes.length), ...nameBytes];
  const size = body.length + payload.length;
  const head = Uint8Array.from([0, ...leb(size), ...body]);
  const out = new Uint8Array(bytes.length + head.length + payload.length);
  out.set(bytes, 0);
  out.set(head, bytes.length);
  out.set(payload, bytes.length + head.length);
  return out;
}

/** The module with every custom section called `name` removed. */
export function stripSection(bytes: Uint8Array, name: string): Uint8Array {
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let at = 8;
  while (at < bytes.length) {
    const start = at;
    const id = bytes[at++];
    let size = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[at++];
      size += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    const end = at + size;
    let keep = true;
    if (id === 0) {
      let nlen = 0;
      let s2 = 0;
      let p = at;
      for (;;) {
        const b = bytes[p++];
        nlen += (b & 0x7f) * 2 ** s2;
        s2 += 7;
        if (!(b & 0x80)) break;
      }
      keep = new TextDecoder().decode(bytes.subarray(p, p + nlen)) !== name;
    }
    if (keep) parts.push(bytes.subarray(start, end));
    at = end;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
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
  const data = stripSection(bytes, SIGNATURE_SECTION);
  const sig = sign(null, data, key);
  const payload = new TextEncoder().encode(JSON.stringify({ alg: 'ed25519', key: keyId(key), sig: sig.toString('base64') }));
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
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.pub')).sort()) {
      const file = join(dir, f);
      let key: KeyObject;
      try {
        key = createPublicKey(readFileSync(file));
      } catch (err) {
        throw new Error(`trust store ${file}: not a public key: ${(err as Error).message}`);
      }
      if (key.asymmetricKeyType !== 'ed25519') throw new Error(`trust store ${file}: ${key.asymmetricKeyType} key, wasmdrv trusts ed25519 keys only`);
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

export function checkSignature(bytes: Uint8Array, trust: TrustStore): SignatureStatus {
  const sec = customSection(bytes, readWasm(bytes), SIGNATURE_SECTION);
  if (!sec) return { status: 'unsigned' };
  let s: { alg?: string; key?: string; sig?: string };
  try {
    s = JSON.parse(new TextDecoder().decode(sec));
  } catch {
    return { status: 'invalid', key: '?', reason: 'the signature section is not JSON' };
  }
  if (s.alg !== 'ed25519' || typeof s.key !== 'string' || typeof s.sig !== 'string') {
    return { status: 'invalid', key: String(s.key), reason: 'the signature section is malformed' };
  }
  const trusted = trust.keys.get(s.key);
  if (!trusted) return { status: 'unknown-key', key: s.key };
  const ok = verify(null, stripSection(bytes, SIGNATURE_SECTION), trusted.key, Buffer.from(s.sig, 'base64'));
  return ok
    ? { status: 'valid', key: s.key, file: trusted.file }
    : { status: 'invalid', key: s.key, reason: 'the signature does not match the contents (tampered code or manifest, or signed with another key)' };
}
