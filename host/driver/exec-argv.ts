// The parent's Node flags for a thread or process the host starts (a driver worker, the gate compile
// process), without the ones about the parent's own entry: --input-type, and -e/--eval or -p/--print
// with the code they carry. That code is an argument of its own in process.execArgv
// (`node -e CODE` gives ['-e', CODE]): passed on, a forked Node took CODE for its script and died
// before it was ready, every time.

/** `argv` (default process.execArgv) without the entry flags and the values they take. */
export function inheritedExecArgv(argv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (/^(-e|-p|-pe|--eval|--print|--input-type)$/.test(a)) {
      i++; // the value follows as its own argument
      continue;
    }
    if (/^--(input-type|eval|print)=/.test(a)) continue;
    out.push(a);
  }
  return out;
}
