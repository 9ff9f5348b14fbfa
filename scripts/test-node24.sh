#!/usr/bin/env bash
# The typecheck and the vitest suite under Node 24 (the oldest supported line); `npm test` runs them
# under the project's Node 26. Node 24 comes from the registry's `node` package, installed once into
# node_modules/.cache/node24 (not npx's cache under $HOME: a test runs node as another user, who must be
# able to execute it). Expects `npm run build` to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=node_modules/.cache/node24
if [ ! -x "$dir/node_modules/.bin/node" ]; then
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error node@24 >/dev/null
fi
export PATH="$PWD/$dir/node_modules/.bin:$PATH"
echo "test:node24: $(node --version) ($(command -v node))"
node node_modules/typescript/bin/tsc --noEmit -p tsconfig.json
node node_modules/vitest/vitest.mjs run
