// The DMA register firewall on QEMU's real edu model (issue 15): the signed edu package's DMA round
// trip passes the engine check with its registers read back over real MMIO, and a hostile driver's
// transfers (past the DMA buffer, and the freeze exploit that only read-back sees) are refused before
// the command register reaches the device. Guest: test/vm/dma-firewall.guest.mjs.
export default {
  name: 'dma-firewall',
  description: 'edu behind wasmdrv_uio: the DMA engine firewall with real MMIO read-back',
  guest: 'test/vm/dma-firewall.guest.mjs',
  modules: ['uio'],
  needs: [
    'dist/index.js',
    'dist/worker.js',
    'dist/gate-compiler.js',
    'build/drivers/edu.wasm',
    'build/drivers/test/hostile-dma.wasm',
    'build/packages/edu.wdrv',
  ],
  expected: [
    'dma-firewall: the signed edu package does a DMA round trip through the engine check',
    'dma-firewall: a transfer past the DMA buffer is refused',
    'dma-firewall: a count the device ignored while running is caught by read-back',
    'dma-firewall: the device still serves DMA afterwards',
  ],
  qemu() {
    return ['-device', 'edu'];
  },
};
