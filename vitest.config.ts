import { defineConfig } from 'vitest/config';

// Drivers run in worker threads spawned from dist/worker.js (built by `npm run build`), and the
// native addon holds per-thread state, so test files run in child processes.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/vm/**'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
