// Hand-built hostile drivers: from WebAssembly text through binaryen.js (behaviour: floods, spins,
// names), or byte by byte with the project's own encoders (structure: memories, tables, memory
// indices that no text format or engine would let through).
import binaryen from 'binaryen';
import { encodeSection, name, sleb, uleb, vec } from '../../host/wasm/write.ts';

/** Compile WebAssembly text (with binaryen: bulk memory, sign extension, mutable globals). */
export function wat(text: string): Uint8Array {
  const m = binaryen.parseText(text);
  try {
    m.setFeatures(
      binaryen.Features.MVP |
        binaryen.Features.BulkMemory |
        binaryen.Features.SignExt |
        binaryen.Features.MutableGlobals |
        binaryen.Features.MultiMemory,
    );
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/**
 * A complete driver in text: the ABI's exports around the given request and interrupt bodies.
 * Memory: 3 pages; io buffer 256 bytes at 1024; dma_area the 64 KiB at 0x10000 (sim:edu's window).
 */
export function driverWat(o: {
  imports?: string;
  request?: string;
  interrupt?: string;
  probe?: string;
  start?: string;
  extra?: string;
}): Uint8Array {
  return wat(`(module
  (import "env" "memory" (memory 3))
  ${o.imports ?? ''}
  (global (export "wasmdrv_abi_version") i32 (i32.const 1))
  (func (export "probe") (result i32) ${o.probe ?? '(i32.const 0)'})
  (func (export "remove"))
  (func (export "interrupt") (param $count i32) (local $i i32) ${o.interrupt ?? ''})
  (func (export "request") (param $op i32) (param $len i32) (result i32) (local $i i32) ${o.request ?? '(i32.const 0)'})
  (func (export "io_buffer") (result i32) (i32.const 1024))
  (func (export "io_buffer_size") (result i32) (i32.const 256))
  (func (export "dma_area") (result i32) (i32.const 65536))
  (func (export "dma_area_size") (result i32) (i32.const 65536))
  ${o.start ? `(func $start ${o.start}) (start $start)` : ''}
  ${o.extra ?? ''}
)`);
}

/** `(loop ... )` that runs `body` `n` times with local $i. */
export const times = (n: number, body: string) =>
  `(local.set $i (i32.const 0)) (loop $again ${body} (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $again (i32.lt_u (local.get $i) (i32.const ${n}))))`;

// --- byte level --------------------------------------------------------------------------------------

const I32 = 0x7f;

export interface RawDriver {
  /** Import the host's env.memory this many times (default 1). */
  memoryImports?: number;
  /** Memories the module defines itself (default 0). */
  definedMemories?: number;
  /** Import a table (env.table). */
  tableImport?: boolean;
  /** Tables the module defines (default 0). */
  definedTables?: number;
  /** Extra imports from "wasmdrv": name -> [params, results] (i32 only). */
  imports?: Record<string, [number, number]>;
  /** The request function's body: (op i32, len i32) -> i32, ending with 0x0b. */
  request?: number[];
  /** Data segments: raw bytes of each (flags, [memidx], expr, bytes). */
  data?: number[][];
}

/** A driver module written byte by byte, for structures no text format would produce. */
export function rawDriver(o: RawDriver): Uint8Array {
  // types: 0 ()->i32, 1 ()->(), 2 (i32)->(), 3 (i32,i32)->i32, then one per extra import
  const types: number[][] = [
    [0x60, 0, 1, I32],
    [0x60, 0, 0],
    [0x60, 1, I32, 0],
    [0x60, 2, I32, I32, 1, I32],
  ];
  const imports: number[][] = [];
  for (const [fn, [p, r]] of Object.entries(o.imports ?? {})) {
    imports.push([...name('wasmdrv'), ...name(fn), 0x00, ...uleb(types.length)]);
    types.push([0x60, ...uleb(p), ...Array(p).fill(I32), ...uleb(r), ...Array(r).fill(I32)]);
  }
  for (let i = 0; i < (o.memoryImports ?? 1); i++) imports.push([...name('env'), ...name('memory'), 0x02, 0x00, 3]);
  if (o.tableImport) imports.push([...name('env'), ...name('table'), 0x01, 0x70, 0x00, 1]);
  const nImportedFns = Object.keys(o.imports ?? {}).length;
  // functions: probe, remove, interrupt, request, io_buffer, io_buffer_size, dma_area, dma_area_size
  const funcTypes = [0, 1, 2, 3, 0, 0, 0, 0];
  const bodies = [
    [0x41, 0x00, 0x0b],
    [0x0b],
    [0x0b],
    o.request ?? [0x41, 0x00, 0x0b],
    [0x41, ...sleb(1024), 0x0b],
    [0x41, ...sleb(256), 0x0b],
    [0x41, ...sleb(65536), 0x0b],
    [0x41, ...sleb(65536), 0x0b],
  ].map((b) => {
    const body = [0x00, ...b]; // no locals
    return [...uleb(body.length), ...body];
  });
  const exportNames = [
    'probe',
    'remove',
    'interrupt',
    'request',
    'io_buffer',
    'io_buffer_size',
    'dma_area',
    'dma_area_size',
  ];
  const exports = exportNames.map((n, i) => [...name(n), 0x00, ...uleb(nImportedFns + i)]);
  exports.push([...name('wasmdrv_abi_version'), 0x03, 0x00]);
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  out.push(...encodeSection(1, vec(types)));
  out.push(...encodeSection(2, vec(imports)));
  out.push(...encodeSection(3, vec(funcTypes.map((t) => [t]))));
  if (o.definedTables)
    out.push(...encodeSection(4, vec(Array.from({ length: o.definedTables }, () => [0x70, 0x00, 1]))));
  if (o.definedMemories) out.push(...encodeSection(5, vec(Array.from({ length: o.definedMemories }, () => [0x00, 1]))));
  out.push(...encodeSection(6, vec([[I32, 0x00, 0x41, 0x01, 0x0b]])));
  out.push(...encodeSection(7, vec(exports)));
  out.push(...encodeSection(10, vec(bodies)));
  if (o.data) out.push(...encodeSection(11, vec(o.data)));
  return Uint8Array.from(out);
}
