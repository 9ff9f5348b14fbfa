// The probe module the instrumented driver calls into (host/fuzz/instrument.ts): the coverage map,
// the list of entries an execution touched, and the comparison log, in a memory of its own.

import type { Binaryen } from './binaryen.ts';

export const PROBE_MODULE = '__fuzz';
/** Per comparison site in the log: a (i64), b (i64), epoch (i32), kind (i32: 4, 8 or 1 = br_table). */
export const CMP_ENTRY = 24;

/**
 * The probe module: memory = coverage map (mapSize bytes), the list of map entries this execution
 * touched first (u32 each, `ntouched` of them: the host reads and clears only those), then the
 * comparison log (cmpSites × CMP_ENTRY bytes). Exports: memory, `ntouched`, `epoch`, `prev`, the hooks.
 */
export function probeModule(b: Binaryen, mapSize: number, cmpSites: number): Uint8Array {
  const pages = Math.ceil((5 * mapSize + Math.max(1, cmpSites) * CMP_ENTRY) / 65536);
  const mask = mapSize - 1;
  const touched = mapSize;
  const cmp = 5 * mapSize;
  const logBody = (ty: 'i32' | 'i64', side: 'l' | 'r') => {
    const at = `(i32.add (i32.const ${cmp}) (i32.mul (local.get 1) (i32.const ${CMP_ENTRY})))`;
    const val = ty === 'i32' ? '(i64.extend_i32_u (local.get 0))' : '(local.get 0)';
    const store = `(i64.store offset=${side === 'l' ? 0 : 8} ${at} ${val})`;
    const mark =
      side === 'r'
        ? `(i32.store offset=16 ${at} (global.get $epoch)) (i32.store offset=20 ${at} (i32.const ${ty === 'i32' ? 4 : 8}))`
        : '';
    return `${store} ${mark} (local.get 0)`;
  };
  const wat = `(module
  (memory (export "memory") ${pages} ${pages})
  (global $prev (export "prev") (mut i32) (i32.const 0))
  (global $ntouched (export "ntouched") (mut i32) (i32.const 0))
  (global $epoch (export "epoch") (mut i32) (i32.const 0))
  (func $__wasmdrv_fuzz_hit (export "hit") (param i32) (local i32) (local i32)
    (local.set 1 (i32.and (i32.xor (local.get 0) (global.get $prev)) (i32.const ${mask})))
    (local.set 2 (i32.load8_u (local.get 1)))
    (if (i32.eqz (local.get 2)) (then
      (i32.store (i32.add (i32.const ${touched}) (i32.shl (global.get $ntouched) (i32.const 2))) (local.get 1))
      (global.set $ntouched (i32.add (global.get $ntouched) (i32.const 1)))))
    (i32.store8 (local.get 1) (i32.add (local.get 2) (i32.ne (local.get 2) (i32.const 255))))
    (global.set $prev (i32.shr_u (local.get 0) (i32.const 1))))
  (func $__wasmdrv_fuzz_cmpl32 (export "cmpl32") (param i32 i32) (result i32) ${logBody('i32', 'l')})
  (func $__wasmdrv_fuzz_cmpr32 (export "cmpr32") (param i32 i32) (result i32) ${logBody('i32', 'r')})
  (func $__wasmdrv_fuzz_cmpl64 (export "cmpl64") (param i64 i32) (result i64) ${logBody('i64', 'l')})
  (func $__wasmdrv_fuzz_cmpr64 (export "cmpr64") (param i64 i32) (result i64) ${logBody('i64', 'r')})
  (func $__wasmdrv_fuzz_swi (export "swi") (param i32 i32 i32) (result i32)
    (i64.store offset=0 (i32.add (i32.const ${cmp}) (i32.mul (local.get 1) (i32.const ${CMP_ENTRY}))) (i64.extend_i32_u (local.get 0)))
    (i64.store offset=8 (i32.add (i32.const ${cmp}) (i32.mul (local.get 1) (i32.const ${CMP_ENTRY}))) (i64.extend_i32_u (local.get 2)))
    (i32.store offset=16 (i32.add (i32.const ${cmp}) (i32.mul (local.get 1) (i32.const ${CMP_ENTRY}))) (global.get $epoch))
    (i32.store offset=20 (i32.add (i32.const ${cmp}) (i32.mul (local.get 1) (i32.const ${CMP_ENTRY}))) (i32.const 1))
    (local.get 0))
)`;
  const m = b.parseText(wat);
  try {
    b.setDebugInfo(true);
    return m.emitBinary();
  } finally {
    b.setDebugInfo(false);
    m.dispose();
  }
}
