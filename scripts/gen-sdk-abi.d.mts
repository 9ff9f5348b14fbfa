// Types for scripts/gen-sdk-abi.mjs (imported by test/languages.test.ts).
export interface WitFunction {
  iface: string;
  wit: string;
  core: string;
  params: { name: string; type: string }[];
  result: string | null;
  doc: string[];
}
export function parseWit(text: string): WitFunction[];
export function coreSig(f: WitFunction): { params: string[]; results: string[] };
export function generateC(fns: WitFunction[]): string;
export function generateRust(fns: WitFunction[]): string;
export function generateAS(fns: WitFunction[]): string;
export function asResult(f: WitFunction): string;
export const OUTPUTS: Record<string, (fns: WitFunction[]) => string>;
