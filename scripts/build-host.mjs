// Bundle the TypeScript host into dist/ with esbuild (npm run build:host). The worker entry is its own
// bundle because each driver runs it in a worker thread; gate-compiler.js because the host forks it as
// its compile process (host/driver/gate-compiler.ts). npm packages stay external.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
await build({
  absWorkingDir: root,
  entryPoints: {
    cli: 'host/cli.ts',
    index: 'host/index.ts',
    worker: 'host/sandbox/worker.ts',
    'campaign-worker': 'host/campaign/worker.ts',
    'fuzz-worker': 'host/fuzz/worker.ts',
    'gate-compiler': 'host/driver/gate-compiler-worker.ts',
  },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
