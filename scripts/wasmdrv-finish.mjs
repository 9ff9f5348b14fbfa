// The last build step for C and Rust drivers: neither language can export an immutable Wasm global, so
// this adds `wasmdrv_abi_version` (i32, = 1), and keeps only the exports the ABI defines (toolchains
// also export their memory, __data_end, __heap_base, ...). Binaryen does the rewriting; the name
// section stays, so fault stacks name the driver's functions.
import binaryen from 'binaryen';

const ABI_VERSION = 1;
const ABI_EXPORTS = new Set(['probe', 'remove', 'interrupt', 'request', 'io_buffer', 'io_buffer_size',
  'dma_area', 'dma_area_size', 'reset', 'state_save', 'state_restore']);

/** Returns the finished module's bytes; throws naming the problem when the input is not a driver. */
export function finishDriver(bytes, label) {
  const m = binaryen.readBinary(bytes);
  try {
    const F = binaryen.Features;
    m.setFeatures(F.MVP | F.MutableGlobals | F.SignExt | F.BulkMemory | F.BulkMemoryOpt | F.NontrappingFPToInt);
    for (let i = m.getNumExports() - 1; i >= 0; i--) {
      const e = binaryen.getExportInfo(m.getExportByIndex(i));
      if (!ABI_EXPORTS.has(e.name)) m.removeExport(e.name);
    }
    for (const name of ['probe', 'remove', 'interrupt', 'request']) {
      if (!m.getExport(name)) throw new Error(`${label}: the driver does not export ${name}`);
    }
    m.addGlobal('wasmdrv_abi_version', binaryen.i32, false, m.i32.const(ABI_VERSION));
    m.addGlobalExport('wasmdrv_abi_version', 'wasmdrv_abi_version');
    if (!m.validate()) throw new Error(`${label}: the finished module does not validate`);
    binaryen.setDebugInfo(true);
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}
