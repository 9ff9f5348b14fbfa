#!/usr/bin/env node
// The wasmdrv command. The host is TypeScript bundled into dist/ by `npm run build:host`.
// It needs Node >= 24 (Wasm multi-memory: the register gate is compiled into the driver). The check
// comes before anything of the host is imported, so an older Node prints one line, not a V8 error.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MIN_NODE = 24;
if (Number(process.versions.node.split('.')[0]) < MIN_NODE) {
  console.error(
    `wasmdrv: needs Node.js ${MIN_NODE} or newer, this is ${process.version}; run it with the project's own Node: \`npx wasmdrv ...\` (or \`node_modules/.bin/node bin/wasmdrv.js ...\`) after \`npm install\``,
  );
  process.exit(1);
}

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
if (!existsSync(cli)) {
  console.error(`wasmdrv: ${cli} is missing; run \`npm run build\` first`);
  process.exit(2);
}
await import(cli);
