// binaryen for the fuzzer's instrumenter: loaded once, on first use.

export type Binaryen = typeof import('binaryen').default;
export type BinaryenModule = ReturnType<Binaryen['readBinary']>;
let loaded: Binaryen | undefined;

/** binaryen is large (its own Wasm build): loaded on first use, only by the fuzzer. */
export async function loadBinaryen(): Promise<Binaryen> {
  return (loaded ??= (await import('binaryen')).default);
}
