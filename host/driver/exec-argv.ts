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

let workerArgv: string[] | undefined;

/**
 * Start a worker thread with the parent's flags: inheritedExecArgv(), less those a worker refuses when
 * given explicitly. Left to inherit by default, a worker takes --input-type too and fails to start from a
 * file; given explicitly, V8 and process-wide flags (--max-old-space-size, --expose-gc,
 * --stack-trace-limit, --no-liftoff: V8's apply to every thread anyway) make the constructor throw
 * ERR_WORKER_INVALID_EXEC_ARGV, naming them. Node has no list of the flags a worker takes, so the first
 * refusal names them, they are dropped, and the list that worked is kept for every later worker.
 */
export function withWorkerExecArgv<T>(start: (execArgv: string[]) => T): T {
  let argv = workerArgv ?? inheritedExecArgv();
  for (;;) {
    try {
      const started = start(argv);
      workerArgv = argv;
      return started;
    } catch (err) {
      const refused = refusedFlags(err);
      const left = argv.filter((a) => !refused.has(a));
      if (!refused.size || left.length === argv.length) throw err;
      argv = left;
    }
  }
}

/** The flags an ERR_WORKER_INVALID_EXEC_ARGV names ("... invalid execArgv flags: --a, --b=1"). */
function refusedFlags(err: unknown): Set<string> {
  const e = err as { code?: string; message?: string };
  if (e?.code !== 'ERR_WORKER_INVALID_EXEC_ARGV' || typeof e.message !== 'string') return new Set();
  const at = e.message.indexOf(': ');
  return new Set(
    at < 0
      ? []
      : e.message
          .slice(at + 2)
          .split(', ')
          .map((s) => s.trim()),
  );
}
