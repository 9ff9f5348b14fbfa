// npm install's step for the addon: use the prebuilt binary in native/prebuilds/ (no compiler needed)
// when it was built from the current native/ sources, else compile with node-gyp. node-gyp-build checks
// finds the binary for this platform; if none loads, this compiles.
// `npm run native:prebuild` rebuilds the binary (prebuildify) and records the sources' hash beside it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = join(root, 'native');
const stamp = join(native, 'prebuilds', 'linux-x64', 'SOURCES.sha256');

export function sourcesHash() {
  const h = createHash('sha256');
  for (const f of ['binding.gyp', 'src/addon.cc']) h.update(readFileSync(join(native, f)));
  return h.digest('hex');
}

const bin = (name) => join(root, 'node_modules', '.bin', name);
const mode = process.argv[2];
if (mode === '--prebuild') {
  execFileSync(bin('prebuildify'), ['--napi', '--strip'], { cwd: native, stdio: 'inherit' });
  writeFileSync(stamp, `${sourcesHash()}\n`);
  console.log(`prebuild: native/prebuilds/linux-x64 (sources ${sourcesHash().slice(0, 12)})`);
} else if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === sourcesHash() && loads()) {
  console.log('install-native: using the prebuilt addon (native/prebuilds/linux-x64)');
} else {
  console.log('install-native: no usable prebuild for the current native/ sources: compiling with node-gyp');
  // build-native.mjs picks the running Node's own headers (a global npmrc nodedir may name another's).
  execFileSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { cwd: root, stdio: 'inherit' });
}

/** node-gyp-build finds a binary for this platform and it loads. */
function loads() {
  try {
    const require = createRequire(import.meta.url);
    require(require('node-gyp-build').path(native));
    return true;
  } catch (err) {
    console.log(`install-native: the prebuild does not load here: ${err.message.split('\n')[0]}`);
    return false;
  }
}
