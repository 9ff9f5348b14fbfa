// The SPDX packages ship no types: what host/package/licenses.ts uses of them.
declare module 'spdx-expression-parse' {
  const parse: (expression: string) => unknown;
  export default parse;
}
declare module 'spdx-correct' {
  const correct: (license: string) => string | null;
  export default correct;
}
declare module 'spdx-license-list' {
  const list: Record<string, { name: string; url: string; osiApproved: boolean }>;
  export default list;
}
