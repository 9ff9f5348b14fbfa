#!/usr/bin/env node
// The wasmdrv command. The host is TypeScript bundled into dist/ by `npm run build:host`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
if (!existsSync(cli)) {
  console.error(`wasmdrv: ${cli} is missing; run \`npm run build\` first`);
  process.exit(2);
}
await import(cli);
