// `wasmdrv new NAME --device edu|uart16550|e1000|MANIFEST`: a driver folder that builds and passes its test
// right away — manifest.json, index.ts (probe / remove / interrupt / request for that device), a vitest
// test against the simulated device, package.json, README.md. The driver sources come from
// scaffold-as.ts (AssemblyScript) and scaffold-c-rust.ts (C, Rust).

import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { SDK_PACKAGE } from './build.ts';
import { packageRoot } from './native.ts';
import { asTemplate, type Template } from './scaffold-as.ts';
import { langSource } from './scaffold-c-rust.ts';

export interface ScaffoldOptions {
  /** edu, uart16550, e1000, or the path of a manifest.json to start from. */
  device: string;
  lang?: 'as' | 'c' | 'rust';
  /** Link wasmdrv and vitest from this installation into DIR/node_modules (no npm install needed). */
  link?: boolean;
}

export const BUILTIN_DEVICES = ['edu', 'uart16550', 'e1000'] as const;

function testFile(name: string, t: Template): string {
  if (!t.sim) {
    return `// No simulated model matches this driver's manifest: the test checks that the binary is a
// wasmdrv driver (the exports the ABI requires). Add { "sim": "MODEL" } to "match" to test on a model.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('${name}', () => {
  it('exports what the ABI requires', () => {
    const m = new WebAssembly.Module(readFileSync(new URL('../build/${name}.wasm', import.meta.url)));
    const names = WebAssembly.Module.exports(m).map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['probe', 'remove', 'interrupt', 'request', 'io_buffer', 'wasmdrv_abi_version']));
  });
});
`;
  }
  return `// ${name} against wasmdrv's simulated ${t.sim} (run: npm test, which builds first), under the grant
// of manifest.json: a register write or DMA it does not allow is a fault here, as in production.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, parseManifest, type Driver } from 'wasmdrv';

const wasm = fileURLToPath(new URL('../build/${name}.wasm', import.meta.url));
const manifestFile = fileURLToPath(new URL('../manifest.json', import.meta.url));
const manifest = parseManifest(readFileSync(manifestFile, 'utf8'), manifestFile);
const u32 = (...v: number[]) => new Uint8Array(new Uint32Array(v).buffer);
const words = (b: Uint8Array) => Array.from(new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2));

describe('${name} on sim:${t.sim}', () => {
  const host = new Host();
  let drv: Driver;
  beforeAll(async () => {
    ${
      t.simOptions
        ? `const dev = host.openDevice('sim:${t.sim}', { sim: ${JSON.stringify(t.simOptions)} });
    drv = await host.load(wasm, dev, { name: '${name}', manifest });`
        : `drv = await host.load(wasm, 'sim:${t.sim}', { name: '${name}', manifest });`
    }
  });
  afterAll(() => host.close());

${t.test}
  it('ran without a fault', () => {
    expect(drv.status().state).toBe('running');
    expect(drv.status().stats.faults).toBe(0);
  });
});
`;
}

function readme(name: string, t: Template, device: string): string {
  return `# ${name}

A [wasmdrv](${packageRoot()}) driver for ${t.manifest.description ?? device}, written in AssemblyScript against
the \`${SDK_PACKAGE}\` package.

| file | what |
|---|---|
| \`manifest.json\` | what the driver drives (\`match\`) and the grant it needs (regions, ports, DMA, interrupts, limits) |
| \`index.ts\` | the driver: \`probe\`, \`remove\`, \`interrupt\`, \`request\` |
| \`test/driver.test.ts\` | vitest: the driver on wasmdrv's simulated device${t.sim ? ` (\`sim:${t.sim}\`)` : ''} |

\`\`\`sh
npm install          # wasmdrv (host, CLI and ${SDK_PACKAGE}) and vitest; or create with \`wasmdrv new --link\`
npm test             # wasmdrv build . && vitest run
wasmdrv run build/${name}.wasm --device ${t.sim ? `sim:${t.sim}` : 'uioN'} --request 1
wasmdrv pack . --key KEY --out ${name}.wdrv   # a signed package for wasmdrv serve / run
\`\`\`
`;
}

/** Write the folder; returns the files written. Throws if DIR exists and is not empty. */
export function scaffold(
  dirArg: string,
  o: ScaffoldOptions,
): { dir: string; name: string; files: string[]; sim?: string } {
  const dir = resolve(dirArg);
  const name = basename(dir);
  if (!/^[a-z][a-z0-9_-]{0,63}$/.test(name))
    throw new Error(`driver name "${name}": use lower-case letters, digits, - and _ (starting with a letter)`);
  if (existsSync(dir) && readdirSafe(dir).length) throw new Error(`${dir}: exists and is not empty`);
  const t = asTemplate(name, o.device);
  const lang = o.lang && o.lang !== 'as' ? langSource(o.lang, o.device, name) : undefined;
  const root = packageRoot();
  const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const vitestVersion = rootPkg.devDependencies?.vitest ?? '^4.1.0';
  const files: Record<string, string> = {
    'manifest.json': `${JSON.stringify(t.manifest, null, 2)}\n`,
    ...(lang ? lang.files : { 'index.ts': t.source }),
    'test/driver.test.ts': testFile(name, t),
    'package.json': `${JSON.stringify(
      {
        name,
        version: t.manifest.version,
        private: true,
        type: 'module',
        license: t.manifest.license,
        scripts: { build: 'wasmdrv build .', test: 'wasmdrv build . && vitest run' },
        devDependencies: { wasmdrv: `file:${root}`, vitest: vitestVersion },
      },
      null,
      2,
    )}\n`,
    'README.md': lang
      ? readme(name, t, o.device)
          .replace(/^\| `index.ts` \|.*$/m, lang.readme)
          .replace(
            'written in AssemblyScript against\nthe `wasmdrv-sdk` package',
            `written in ${o.lang === 'c' ? 'C' : 'Rust'} (docs/languages.md)`,
          )
      : readme(name, t, o.device),
    '.gitignore': 'build/\nnode_modules/\n*.wdrv\n',
    ...(t.asc && !lang ? { 'asconfig.json': `${JSON.stringify({ options: t.asc }, null, 2)}\n` } : {}),
  };
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  if (o.link) {
    // What `npm install` would do for the two development dependencies, from this installation.
    mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(root, join(dir, 'node_modules', 'wasmdrv'));
    symlinkSync(join(root, 'bin', 'wasmdrv.js'), join(dir, 'node_modules', '.bin', 'wasmdrv'));
    const vitest = join(root, 'node_modules', 'vitest');
    if (existsSync(vitest)) {
      symlinkSync(vitest, join(dir, 'node_modules', 'vitest'));
      symlinkSync(join(vitest, 'vitest.mjs'), join(dir, 'node_modules', '.bin', 'vitest'));
    }
  }
  return { dir, name, files: Object.keys(files), sim: t.sim };
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
