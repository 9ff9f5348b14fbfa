// `wasmdrv run --watch`: reload the driver when its .wasm changes, or — when the .wasm is a target in
// asconfig.json — when its source changes (rebuilt with scripts/build-drivers.mjs first).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Driver } from '../driver.ts';
import { packageRoot } from '../native.ts';

export function watchDriver(drv: Driver, wasmPath: string, say: (s: string) => void): () => void {
  const root = packageRoot();
  const abs = resolve(wasmPath);
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let busy = false;

  const target = (() => {
    try {
      const cfg = JSON.parse(readFileSync(join(root, 'asconfig.json'), 'utf8'));
      for (const [name, t] of Object.entries(cfg.targets as Record<string, { entry: string; outFile: string }>)) {
        if (resolve(root, t.outFile) === abs) return { name, sourceDir: dirname(resolve(root, t.entry)) };
      }
    } catch {
      /* no asconfig: watch the binary only */
    }
    return undefined;
  })();

  const reload = async (rebuild: boolean) => {
    if (busy) return;
    busy = true;
    try {
      if (rebuild && target) {
        say(`${target.sourceDir} changed: rebuilding ${target.name}`);
        const ok = await new Promise<boolean>((done) =>
          execFile(process.execPath, [join(root, 'scripts', 'build-drivers.mjs'), target.name], (err, _out, stderr) => {
            if (err) say(`build failed, the running driver stays:\n${stderr}`);
            done(!err);
          }),
        );
        if (!ok) return;
      }
      const r = await drv.reload(new Uint8Array(readFileSync(abs)));
      say(
        r.ok
          ? `reloaded ${abs} in ${r.swapMs.toFixed(2)} ms (${r.restored ? `${r.stateBytes} bytes of state carried over` : 'fresh probe'})`
          : `reload refused, the running driver stays: ${r.error}`,
      );
    } catch (err) {
      say(`reload failed: ${(err as Error).message}`);
    } finally {
      busy = false;
    }
  };
  const schedule = (rebuild: boolean) => {
    clearTimeout(timer);
    timer = setTimeout(() => void reload(rebuild), 150);
  };

  watchers.push(
    watch(
      dirname(abs),
      (_e, f) => f && resolve(dirname(abs), f.toString()) === abs && existsSync(abs) && schedule(false),
    ),
  );
  if (target) watchers.push(watch(target.sourceDir, { recursive: false }, () => schedule(true)));
  say(`watching ${abs}${target ? ` and ${target.sourceDir}` : ''}`);
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
