// Progress on long work (fault campaign, fuzz, bench): a cli-progress bar on stderr, drawn only for
// a person watching. Quiet with --json, when stdout is not a terminal (piped, redirected, a test) and
// under CI (CI set, as CI services and our .ci/run set it): their output is exactly what it was.
import cliProgress from 'cli-progress';

/** Whether a progress bar should be drawn: stdout and stderr are terminals, no --json, not under CI. */
export function progressWanted(
  o: { json?: boolean },
  env: NodeJS.ProcessEnv = process.env,
  streams: { stdout: { isTTY?: boolean }; stderr: { isTTY?: boolean } } = process,
): boolean {
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== '0' && env.CI.toLowerCase() !== 'false';
  return !o.json && !ci && Boolean(streams.stdout.isTTY) && Boolean(streams.stderr.isTTY);
}

export interface Progress {
  /** `value` of the total (ignored without one); `fields` fill the format's {name} slots. */
  update(value: number, fields?: Record<string, string | number>): void;
  /** A line above the bar (a crash found, say) that stays when the bar goes. */
  log(line: string): void;
  /** Remove the bar (the summary that follows is printed as without one). */
  stop(): void;
}

/** Without a bar: updates go nowhere, log lines go to stderr as plain lines. */
const NONE: Progress = {
  update() {},
  log: (line) => process.stderr.write(`${line}\n`),
  stop() {},
};

/**
 * A bar for `label` over `total` steps (undefined: no known end, counters only). `detail` is a
 * cli-progress format fragment with {name} slots filled by update()'s fields. Returns a no-op when
 * progressWanted() says no, so callers need not test.
 */
export function progressBar(label: string, total: number | undefined, detail: string, o: { json?: boolean }): Progress {
  if (!progressWanted(o)) return NONE;
  const known = total !== undefined && Number.isFinite(total) && total > 0;
  // A MultiBar of one: it can print a line above the bar (log), a SingleBar cannot.
  const multi = new cliProgress.MultiBar(
    {
      format: known
        ? `${label} {bar} {percentage}% {value}/{total} · ${detail} · eta {eta_formatted}`
        : `${label} · ${detail} · {duration_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      stopOnComplete: false,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  // Every {name} of detail starts at 0 until the first update fills it.
  const initial = Object.fromEntries([...detail.matchAll(/\{(\w+)\}/g)].map((m) => [m[1], 0]));
  const bar = multi.create(known ? total : 0, 0, initial);
  let stopped = false;
  let drawn = 0;
  return {
    update(value, fields) {
      if (stopped) return;
      bar.update(known ? Math.min(value, total) : 0, fields);
      // Drawn here too, not only on cli-progress's timer: a fuzz job on the main thread keeps the event
      // loop busy between its progress calls, and the timer would never fire.
      const now = Date.now();
      if (now - drawn >= 200) {
        drawn = now;
        multi.update();
      }
    },
    log(line) {
      if (stopped) process.stderr.write(`${line}\n`);
      else {
        multi.log(`${line}\n`);
        multi.update(); // now: a buffered line would be lost if the bar stopped before the next draw
      }
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}
