// Shared test helpers: paths of built drivers and a host that is always closed.
import { join } from 'node:path';
import { FaultError } from '../host/faults.ts';
import { packageRoot } from '../host/native.ts';
import { encodeArgs, decodeResponse } from '../host/payload.ts';

export const root = packageRoot();
export const driverPath = (name: string) => join(root, 'build', 'drivers', `${name}.wasm`);
export const u32 = (...vals: number[]) => encodeArgs(vals.map((v) => `u32:${v}`));
export const words = (data: Uint8Array) => decodeResponse(data).u32;

/** The typed fault `fn` throws (anything else is rethrown; no fault at all is an error). */
export function fault(fn: () => void): FaultError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FaultError) return err;
    throw err;
  }
  throw new Error('no fault');
}
