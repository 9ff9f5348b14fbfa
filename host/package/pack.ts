// Packing a driver: its core Wasm module plus the manifest section, signed when a key is given.
// `wasmdrv pack` and the packaging script (scripts/build-packages.mjs, through dist/index.js) both
// call packDriver, so a shipped package is made exactly as a user's.

import { readWasm } from '../wasm/read.ts';
import type { Manifest } from './manifest.ts';
import { appendSection, MANIFEST_SECTION, SIGNATURE_SECTION, signPackage, stripSection } from './sign.ts';

/**
 * The package of `wasm` under `manifest` (a parsed manifest): any manifest or signature sections the
 * binary already carries are dropped, the manifest goes in as JSON, and with `privatePem` the result
 * is signed. Throws Error naming `where` when `wasm` is not a Wasm module.
 */
export function packDriver(wasm: Uint8Array, manifest: Manifest, privatePem?: string, where = 'driver'): Uint8Array {
  try {
    readWasm(wasm);
  } catch (err) {
    throw new Error(`${where}: not a valid Wasm module: ${(err as Error).message}`);
  }
  let bytes = stripSection(stripSection(wasm, MANIFEST_SECTION), SIGNATURE_SECTION);
  bytes = appendSection(bytes, MANIFEST_SECTION, new TextEncoder().encode(JSON.stringify(manifest)));
  return privatePem === undefined ? bytes : signPackage(bytes, privatePem);
}
