// Hostile module structure (issue 15, classes 6 and 7): a memory of the driver's own, a second
// memory, tables, any memory index other than 0 in code or data, and import names that live on
// Object.prototype. Each is refused at load with a LoadError naming the problem, before the engine
// compiles anything (Node 20 has no multi-memory, Node 24+ does: the refusal must not depend on it),
// while the bystander answers throughout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, LoadError } from '../../host/index.ts';
import { readWasm } from '../../host/wasm/read.ts';
import { Bystander } from './bystander.ts';
import { rawDriver, type RawDriver } from './modules.ts';
import { root, u32 } from '../helpers.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifest } from '../../host/package/manifest.ts';
import { parseConfig } from '../../host/service/config.ts';
import { encodeArgs } from '../../host/payload.ts';

const host = new Host();
let bystander: Bystander;
let n = 0;
beforeAll(async () => {
  bystander = await Bystander.start(host);
});
afterAll(() => host.close());

async function refused(o: RawDriver | Uint8Array): Promise<string> {
  const bytes = o instanceof Uint8Array ? o : rawDriver(o);
  const err = await bystander.during(() =>
    host.load(bytes, `sim:edu:m${n}`, { name: `hostile${n++}` }).then(
      () => 'loaded',
      (e) => e,
    ),
  );
  expect(err).toBeInstanceOf(LoadError);
  expect(host.drivers.filter((d) => d.name.startsWith('hostile') && d.state === 'running')).toEqual([]);
  return (err as Error).message;
}

const c0 = [0x41, 0x00]; // i32.const 0

describe("the module check: one memory, the host's", () => {
  it('the builder makes a driver that loads and serves (the control)', async () => {
    const drv = await host.load(rawDriver({}), 'sim:edu:control', { name: 'control' });
    expect((await drv.request(0, u32(1))).length).toBe(0);
    await drv.stop();
  });

  it("a module that defines a memory besides importing the host's is refused", async () => {
    expect(await refused({ definedMemories: 1 })).toContain('defines 1 memory of its own');
  });

  it('a module that defines its own memory and imports none is refused', async () => {
    expect(await refused({ definedMemories: 1, memoryImports: 0 })).toContain('defines 1 memory of its own');
  });

  it('a module that imports the memory twice is refused', async () => {
    expect(await refused({ memoryImports: 2 })).toContain('imports 2 memories');
  });

  it('an imported table is refused; two defined tables are refused; one defined table loads', async () => {
    expect(await refused({ tableImport: true })).toContain('import env.table is a table');
    expect(await refused({ definedTables: 2 })).toContain('defines 2 tables');
    const drv = await host.load(rawDriver({ definedTables: 1 }), 'sim:edu:onetable', { name: 'onetable' });
    expect(drv.state).toBe('running');
    await drv.stop();
  });
});

describe('the module check: every memory index the code and data use', () => {
  it('i32.load with the multi-memory flag naming memory 1', async () => {
    expect(await refused({ request: [...c0, 0x28, 0x42, 0x01, 0x00, 0x0b] })).toMatch(
      /a load or store at byte \d+ uses memory index 1/,
    );
  });

  it('i64.store naming memory 3, at an offset', async () => {
    expect(await refused({ request: [...c0, 0x42, 0x00, 0x37, 0x43, 0x03, 0x10, ...c0, 0x0b] })).toMatch(
      /a load or store at byte \d+ uses memory index 3/,
    );
  });

  it('memory.size 1 and memory.grow 2', async () => {
    expect(await refused({ request: [0x3f, 0x01, 0x0b] })).toContain('memory.size');
    expect(await refused({ request: [0x41, 0x01, 0x40, 0x02, 0x0b] })).toMatch(
      /memory.grow at byte \d+ uses memory index 2/,
    );
  });

  it('memory.fill 1 and memory.copy from memory 1', async () => {
    expect(await refused({ request: [...c0, ...c0, ...c0, 0xfc, 11, 0x01, ...c0, 0x0b] })).toContain('memory.fill');
    expect(await refused({ request: [...c0, ...c0, ...c0, 0xfc, 10, 0x00, 0x01, ...c0, 0x0b] })).toContain(
      'memory.copy',
    );
  });

  it('an active data segment in memory 1', async () => {
    expect(await refused({ data: [[0x02, 0x01, ...c0, 0x0b, 0x01, 0xaa]] })).toContain('an active data segment');
  });

  it('a load naming memory 1 deep inside block, loop and if/else (the decoder stays in step)', async () => {
    const body = [
      0x02,
      0x40,
      0x03,
      0x40,
      ...c0,
      0x04,
      0x7f,
      ...c0,
      0x28,
      0x42,
      0x01,
      0x04,
      0x05,
      0x41,
      0x01,
      0x0b,
      0x1a,
      0x0b,
      0x0b,
      ...c0,
      0x0b,
    ];
    expect(await refused({ request: body })).toMatch(/a load or store at byte \d+ uses memory index 1/);
  });

  it('a SIMD load and an atomic load naming memory 1', async () => {
    expect(await refused({ request: [...c0, 0xfd, 0x00, 0x44, 0x01, 0x00, 0x1a, ...c0, 0x0b] })).toContain(
      'a SIMD load or store',
    );
    expect(await refused({ request: [...c0, 0xfe, 0x10, 0x42, 0x01, 0x00, 0x0b] })).toContain('an atomic access');
  });

  it('an instruction the reader does not know is refused, not skipped', async () => {
    expect(await refused({ request: [0xd5, 0x00, ...c0, 0x0b] })).toMatch(
      /not a valid Wasm module: unknown instruction 0xd5/,
    );
  });

  it('the shipped drivers use memory 0 only and define no memory or table', async () => {
    const { readFileSync } = await import('node:fs');
    const { driverPath } = await import('../helpers.ts');
    for (const d of ['edu', 'uart16550', 'bench']) {
      const info = readWasm(new Uint8Array(readFileSync(driverPath(d))));
      expect({ d, mem: info.definedMemories, imp: info.importedMemories, other: info.otherMemoryUses }).toEqual({
        d,
        mem: 0,
        imp: 1,
        other: [],
      });
    }
  });
});

describe('untrusted names against host tables', () => {
  for (const name of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'valueOf']) {
    it(`an import called wasmdrv.${name} is a LoadError naming it`, async () => {
      expect(await refused({ imports: { [name]: [0, 0] } })).toContain(
        `import wasmdrv.${name} is not part of the wasmdrv ABI`,
      );
    });
  }

  it('manifest and daemon config fields called __proto__ or constructor are unknown fields; payload types too', () => {
    const m = JSON.parse(readFileSync(join(root, 'guest-drivers', 'edu', 'manifest.json'), 'utf8'));
    const withProto = JSON.stringify(m).replace('{', '{"__proto__":{"regions":[]},');
    expect(() => parseManifest(withProto, 'm.json')).toThrow(
      'm.json: invalid manifest: (top level): unknown field "__proto__"',
    );
    const limits = JSON.stringify({ ...m, limits: { constructor: 1 } });
    expect(() => parseManifest(limits, 'm.json')).toThrow('limits: unknown field "constructor"');
    expect(() =>
      parseConfig('{"socket":"/s","drivers":[{"name":"a","driver":"a","device":"sim:edu","__proto__":{}}]}', 'c.json'),
    ).toThrow('drivers.0.__proto__: unknown field');
    expect(() => encodeArgs(['toString:1'])).toThrow('"toString:1" is not a number');
  });

  it('a simulated model called toString or __proto__ is an unknown model, not a TypeError', () => {
    expect(() => host.openDevice('sim:toString')).toThrow('unknown simulated device model "toString"');
    expect(() => host.openDevice('sim:__proto__')).toThrow('unknown simulated device model "__proto__"');
  });
});
