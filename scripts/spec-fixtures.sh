#!/usr/bin/env bash
# Regenerate test/fixtures/spec-modules.tar.gz: every binary module of the WebAssembly spec test suite
# (github.com/WebAssembly/testsuite, the .wast files at its top level), converted with wabt's
# wast2json, deduplicated by content. test/spec-suite.test.ts feeds each one to the loader.
# Usage: scripts/spec-fixtures.sh <testsuite checkout>   (installs Debian's wabt when it is missing)
set -euo pipefail
src=${1:?usage: scripts/spec-fixtures.sh <path to a WebAssembly/testsuite checkout>}
cd "$(dirname "$0")/.."
out=$PWD/test/fixtures/spec-modules.tar.gz
if ! command -v wast2json >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q wabt >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ok=0; failed=0
for f in "$src"/*.wast; do
  name=$(basename "$f" .wast)
  mkdir -p "$work/json/$name"
  if wast2json --enable-all "$f" -o "$work/json/$name/$name.json" >/dev/null 2>&1; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
done
mkdir -p "$work/mods"
# one file per distinct module, named by its hash
find "$work/json" -name '*.wasm' -print0 | while IFS= read -r -d '' m; do
  cp "$m" "$work/mods/$(sha256sum "$m" | cut -c1-16).wasm"
done
n=$(ls "$work/mods" | wc -l)
tar -C "$work/mods" -czf "$out" --sort=name --owner=0 --group=0 --mtime=@0 .
echo "spec-fixtures: $ok .wast files converted ($failed that wabt $(wast2json --version) cannot read skipped), $n distinct modules, $(du -h "$out" | cut -f1) in $out"
