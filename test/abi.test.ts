// The ABI table in host/abi.ts must say exactly what wit/wasmdrv-driver.wit says, and the SDK must
// declare exactly those imports.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { componentEmbed, componentNew, componentWit } from '@bytecodealliance/jco';
import { describe, expect, it } from 'vitest';
import { IMPORTS, OPTIONAL_EXPORTS, REQUIRED_EXPORTS, ABI_VERSION_GLOBAL } from '../host/abi.ts';
import { generateAS, parseWit } from '../scripts/gen-sdk-abi.mjs';
import { root } from './helpers.ts';

const wit = readFileSync(join(root, 'wit', 'wasmdrv-driver.wit'), 'utf8');

/** Every "core: name(params) -> result" line of the WIT, as name -> signature text. */
function witCoreSigs(): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of wit.matchAll(/core: (\w+)\(([^)]*)\)(?: -> (\w+))?/g)) {
    const params = m[2]
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)
      .map((p) => p.split(':').pop()!.trim());
    out.set(m[1], `(${params.join(',')})->(${m[3] ?? ''})`);
  }
  return out;
}

const sigText = (s: { params: readonly string[]; results: readonly string[] }) =>
  `(${s.params.join(',')})->(${s.results.join('')})`;

describe('ABI v1', () => {
  const sigs = witCoreSigs();

  it('lists every host import with the signature the WIT gives', () => {
    const table = Object.values(IMPORTS).flatMap((g) => Object.entries(g));
    expect(table.length).toBeGreaterThan(20);
    for (const [name, sig] of table) {
      expect(sigs.get(name), `WIT core line for ${name}`).toBe(sigText(sig));
    }
  });

  it('lists every export with the signature the WIT gives', () => {
    for (const [name, sig] of Object.entries({ ...REQUIRED_EXPORTS, ...OPTIONAL_EXPORTS })) {
      expect(sigs.get(name), `WIT core line for ${name}`).toBe(sigText(sig));
    }
    expect(wit).toContain(`exported global \`${ABI_VERSION_GLOBAL}\``);
  });

  it('has no WIT core line the host does not implement', () => {
    const known = new Set([
      ...Object.values(IMPORTS).flatMap((g) => Object.keys(g)),
      ...Object.keys(REQUIRED_EXPORTS),
      ...Object.keys(OPTIONAL_EXPORTS),
    ]);
    for (const name of sigs.keys()) expect(known.has(name), name).toBe(true);
  });

  it('the SDK declares exactly the ABI imports, all under "wasmdrv"', () => {
    const sdk = readFileSync(join(root, 'guest-drivers', 'sdk', 'abi.ts'), 'utf8');
    const declared = [...sdk.matchAll(/@external\("(\w+)", "(\w+)"\)/g)].map((m) => `${m[1]}.${m[2]}`).sort();
    const want = Object.values(IMPORTS)
      .flatMap((g) => Object.keys(g))
      .map((n) => `wasmdrv.${n}`)
      .sort();
    expect(declared).toEqual(want);
  });

  it("the AssemblyScript SDK's @external declarations are generated from the WIT and lower to host/abi.ts's types", () => {
    const file = join(root, 'guest-drivers', 'sdk', 'abi.ts');
    const sdk = readFileSync(file, 'utf8');
    expect(sdk, 'guest-drivers/sdk/abi.ts is stale: run node scripts/gen-sdk-abi.mjs').toBe(generateAS(parseWit(wit)));
    // Every declaration's AssemblyScript types, lowered to core types, are the table's row.
    const core: Record<string, 'i32' | 'i64'> = { i32: 'i32', u32: 'i32', usize: 'i32', u64: 'i64', i64: 'i64' };
    const imports = Object.fromEntries(Object.values(IMPORTS).flatMap((g) => Object.entries(g)));
    const decls = [
      ...sdk.matchAll(/^@external\("wasmdrv", "(\w+)"\) export declare function (\w+)\(([^)]*)\): (\w+);$/gm),
    ];
    expect(decls.length).toBe(Object.keys(imports).length);
    for (const [, name, fn, params, result] of decls) {
      expect(fn).toBe(name);
      const lowered = {
        params: params
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean)
          .map((p) => core[p.split(':')[1].trim()]),
        results: result === 'void' ? [] : [core[result]],
      };
      expect(lowered, name).toEqual({ params: [...imports[name].params], results: [...imports[name].results] });
    }
  });

  it('is a valid WIT package: jco parses it and builds the wasmdrv-driver world from it', async () => {
    const embedded = await componentEmbed({ dummy: true, witSource: wit, world: 'wasmdrv-driver' });
    const world = await componentWit(await componentNew(embedded));
    for (const i of ['registers', 'ports', 'irq', 'dma', 'services'])
      expect(world).toContain(`import wasmdrv:driver/${i}@1.0.0;`);
    expect(world).toContain('export wasmdrv:driver/driver@1.0.0;');
    // and a broken spec is refused with the parser's message
    await expect(
      componentEmbed({ dummy: true, witSource: wit.replace('read32: func', 'read32 func'), world: 'wasmdrv-driver' }),
    ).rejects.toThrow("expected ':'");
  });
});
