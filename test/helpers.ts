// Shared test helpers: paths of built drivers and a host that is always closed.
import { join } from 'node:path';
import { packageRoot } from '../host/native.ts';
import { encodeArgs, decodeResponse } from '../host/payload.ts';

export const root = packageRoot();
export const driverPath = (name: string) => join(root, 'build', 'drivers', `${name}.wasm`);
export const u32 = (...vals: number[]) => encodeArgs(vals.map((v) => `u32:${v}`));
export const words = (data: Uint8Array) => decodeResponse(data).u32;
