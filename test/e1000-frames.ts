// Shared by the e1000 tests: the shipped manifest and numbered test frames the simulated NIC carries.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifest } from '../host/package/manifest.ts';
import { root } from './helpers.ts';

export const e1000ManifestPath = join(root, 'guest-drivers', 'e1000', 'manifest.json');
export const e1000Manifest = parseManifest(readFileSync(e1000ManifestPath, 'utf8'), e1000ManifestPath);

/** The other end of the simulated wire. */
export const PEER = [0x02, 0x00, 0x00, 0xaa, 0xbb, 0x99];

/** "02:00:..." as bytes. */
export const macBytes = (mac: string) => mac.split(':').map((h) => parseInt(h, 16));

/** An Ethernet frame from PEER to `dst` whose payload encodes `seq` and is `size` bytes long in all. */
export function frame(dst: number[], seq: number, size = 128): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set(PEER, 6);
  f[12] = 0x88;
  f[13] = 0xb5; // local experimental EtherType
  new DataView(f.buffer).setUint32(14, seq, true);
  for (let i = 18; i < size; i++) f[i] = (seq * 7 + i) & 0xff;
  return f;
}

/** The sequence number frame() put in. */
export const seqOf = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset).getUint32(14, true);
