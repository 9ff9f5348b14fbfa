// A shared IOMMU group and the daemon as non-root over VFIO. Two edu devices behind a PCIe-to-PCI
// bridge share one IOMMU group (the IOMMU sees the bridge's requester ID for both): wasmdrv must refuse
// the first while the second is bound to another driver, naming it and the fix, and take it once both
// are vfio-pci's. Then the real udevd applies deploy/udev/70-wasmdrv-vfio.rules and the daemon, as an
// ordinary user in the "wasmdrv" group, serves the device through VFIO. Guest: test/vm/vfio-group.guest.mjs.
import vfio from './vfio.mjs';
import { stageService } from './uio.mjs';

export default {
  name: 'vfio-group',
  description: 'two edus sharing an IOMMU group behind a PCIe-to-PCI bridge; the daemon as non-root over VFIO',
  guest: 'test/vm/vfio-group.guest.mjs',
  machine: vfio.machine,
  append: vfio.append,
  modules: [...vfio.modules],
  optionalModules: vfio.optionalModules,
  prepare(ctx) {
    vfio.prepare.call(this, ctx);
    return stageService(ctx.root, ctx.work);
  },
  stub: null,
  needs: ['dist/index.js', 'dist/worker.js', 'dist/gate-compiler.js', 'dist/cli.js', 'build/drivers/edu.wasm'],
  expected: [
    'vfio-group: two edus behind a PCIe-to-PCI bridge share one IOMMU group',
    'vfio-group: a device whose group-mate is bound to uio_pci_generic is refused, naming it and the fix',
    'vfio-group: nothing is left open after the refusal',
    'vfio-group: with both in vfio-pci the device serves',
    'vfio-group: udevd applies the rule: the group node belongs to the wasmdrv group, mode 0660',
    'vfio-group: the daemon serves the device over VFIO as uid 4242, not root',
    'vfio-group: a client process computes factorials through it',
  ],
  qemu() {
    return [
      '-device',
      'pcie-pci-bridge,id=br0,bus=pcie.0,addr=05.0',
      '-device',
      'edu,bus=br0,addr=01.0',
      '-device',
      'edu,bus=br0,addr=02.0',
    ];
  },
};
