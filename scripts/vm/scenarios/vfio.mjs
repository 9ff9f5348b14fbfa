// The VFIO scenario: q35 with QEMU's emulated Intel IOMMU and an edu device, vfio-pci in the guest.
// The unchanged edu driver over VFIO (MSI through an eventfd, DMA windows in the IOMMU), a hostile
// driver whose DMA the IOMMU blocks, crash -> reset -> serving, and the same interrupt loop over
// uio_pci_generic for comparison. Guest: test/vm/vfio.guest.mjs.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export default {
  name: 'vfio',
  description: 'edu behind vfio-pci with an emulated Intel IOMMU (q35 + intel-iommu)',
  guest: 'test/vm/vfio.guest.mjs',
  machine: ['-machine', 'q35', '-device', 'intel-iommu'],
  // no_timer_check: under a loaded TCG host the boot-time timer check through the remapped IO-APIC
  // sometimes panics ("timer doesn't work through Interrupt-remapped IO-APIC").
  append: 'intel_iommu=on iommu.passthrough=1 no_timer_check',
  // 6.1's chain; vfio_virqfd was folded into vfio in 6.2 (optional: the harness skips it where absent).
  modules: [
    'irqbypass',
    'vfio',
    'vfio_iommu_type1',
    'vfio_virqfd',
    'vfio-pci-core',
    'vfio-pci',
    'uio',
    'uio_pci_generic',
  ],
  optionalModules: ['vfio_virqfd'],
  prepare(ctx) {
    // The C baseline for the VFIO MSI round trip (the guest runs it from the shared root).
    // ...and for the INTx round trip over uio_pci_generic.
    for (const c of ['vfio-msi', 'uio-intx'])
      execFileSync('cc', ['-O2', '-Wall', join(ctx.root, 'bench', `${c}.c`), '-o', join(ctx.work, c)], {
        stdio: ['ignore', 'inherit', 'inherit'],
      });
  },
  stub: null,
  needs: [
    'dist/index.js',
    'dist/worker.js',
    'dist/gate-compiler.js',
    'dist/cli.js',
    'build/drivers/edu.wasm',
    'build/drivers/test/edu-rogue-dma.wasm',
    'build/drivers/test/broken.wasm',
  ],
  expected: [
    'vfio: wasmdrv bind --vfio hands edu to vfio-pci',
    'vfio: devices reports the IOMMU confining its DMA',
    'edu via vfio: identify and liveness',
    'edu via vfio: factorials',
    'edu via vfio: interrupts',
    'edu via vfio: dma',
    'vfio: interrupts arrive as MSI through an eventfd',
    'vfio: INTx with unmask through SET_IRQS',
    'vfio: the IOMMU blocks a hostile DMA outside the window (DMAR fault logged)',
    'vfio: the canary under the hostile DMA is untouched',
    'vfio: the host reports the device fault and recovers the device by reset',
    'vfio: crash -> reset -> serving again',
    'vfio: hot reload keeps the container and the DMA mappings',
    'uio_pci_generic: without an IOMMU the same hostile DMA lands (the control)',
  ],
  qemu() {
    return ['-device', 'edu,addr=03.0'];
  },
};
