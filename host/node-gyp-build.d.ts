// node-gyp-build ships no types: the two calls the host makes.
declare module 'node-gyp-build' {
  const load: {
    (dir: string): unknown;
    /** The path of the binary it would load from `dir` (build/Release, else prebuilds/<platform>-<arch>). */
    path(dir: string): string;
  };
  export default load;
}
