// The e1000 scenario over VFIO: q35 with QEMU's emulated Intel IOMMU, NIC A handed to vfio-pci by
// `wasmdrv bind --vfio`, the same unchanged e1000 driver behind `wasmdrv net up vfio:SLOT`. The IOMMU
// confines the NIC's DMA, so the descriptor firewall is off; every traffic check of the UIO run
// (pings, TCP, kill mid-transfer, reload under a ping flood, link) must pass the same way.
// Guest: test/vm/e1000.guest.mjs with wasmdrv.backend=vfio.
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import e1000, { checks, ONLY } from './e1000.mjs';

export default {
  ...e1000,
  name: 'e1000-vfio',
  description: 'the e1000 scenario with NIC A behind vfio-pci and an emulated Intel IOMMU (q35 + intel-iommu)',
  machine: ['-machine', 'q35', '-device', 'intel-iommu'],
  // As in the vfio scenario: no_timer_check because the boot-time timer check through the remapped
  // IO-APIC sometimes panics on a loaded TCG host.
  append: `intel_iommu=on iommu.passthrough=1 no_timer_check wasmdrv.backend=vfio${ONLY ? ` wasmdrv.e1000=${ONLY}` : ''}`,
  modules: ['irqbypass', 'vfio', 'vfio_iommu_type1', 'vfio_virqfd', 'vfio-pci-core', 'vfio-pci', 'e1000', 'tun'],
  optionalModules: ['vfio_virqfd'],
  stub: null,
  expected: checks('e1000 via vfio', 'NIC A moves to vfio-pci (wasmdrv bind --vfio)'),

  prepare(ctx) {
    ctx.qmpPath = join(ctx.work, 'e1000-vfio-qmp.sock');
    rmSync(ctx.qmpPath, { force: true });
  },
};
