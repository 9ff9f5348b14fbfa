// wasmdrv devices [--json]: PCI devices in the manner of `lspci -k` (ids and names, the kernel driver,
// the IOMMU group, which wasmdrv backends can take each), the UIO devices, and the simulated models.
import type { Command } from 'commander';
import { discoverUio } from '../devices/uio.ts';
import { listSimModels } from '../devices/sim.ts';
import { formatPci, listPci, type PciDevice } from '../devices/pci.ts';
import { describeConfinement, type DmaConfinement } from '../devices/confinement.ts';
import { action } from './common.ts';

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

export function register(program: Command): void {
  program
    .command('devices')
    .summary('PCI devices (like lspci -k), UIO devices and simulated models, and which backend can take each')
    .option('--json', 'as one JSON object')
    .option('--sysfs <dir>', 'the sysfs root to read (tests, chroots)', '/sys')
    .option(
      '--pci-ids <file>',
      'the pci.ids database for names (default /usr/share/misc/pci.ids or /usr/share/hwdata/pci.ids)',
    )
    .action(
      action((o: { json?: boolean; sysfs: string; pciIds?: string }) => {
        // Who confines each bound device's DMA: the IOMMU (vfio-pci, unless in no-IOMMU mode), the register
        // firewall (uio_pci_generic / wasmdrv_uio), or nobody yet (another driver: not wasmdrv's).
        const confinement = (d: PciDevice): DmaConfinement | undefined =>
          d.driver === 'vfio-pci'
            ? d.backends.vfio?.noiommu
              ? 'none'
              : 'iommu'
            : d.driver === 'uio_pci_generic' || d.driver === 'wasmdrv_uio'
              ? 'register-firewall'
              : undefined;
        const pci = listPci({ sysfs: o.sysfs, pciIds: o.pciIds }).map((d) => ({
          ...d,
          dmaConfinement: confinement(d),
        }));
        const uio = discoverUio({ sysfs: o.sysfs });
        const sims = listSimModels();
        if (o.json) {
          console.log(
            JSON.stringify({
              pci,
              uio: uio.map((u) => ({
                id: u.id,
                name: u.name,
                version: u.version,
                devNode: u.devNode,
                maps: u.maps.map((m) => ({ ...m, addr: `0x${m.addr.toString(16)}` })),
                ports: u.ports,
                pci: u.pci
                  ? { slot: u.pci.slot, vendor: u.pci.vendor, device: u.pci.device, class: u.pci.class }
                  : undefined,
              })),
              sim: sims,
            }),
          );
          return 0;
        }
        if (pci.length === 0) console.log(`PCI devices: none (no ${o.sysfs}/bus/pci/devices entries)`);
        else console.log('PCI devices:');
        for (const d of pci) {
          for (const l of formatPci(d)) console.log(`  ${l}`);
          if (d.dmaConfinement) console.log(`  \tDMA: ${describeConfinement(d.dmaConfinement)}`);
        }
        if (uio.length === 0) console.log(`UIO devices: none (no ${o.sysfs}/class/uio entries)`);
        else console.log('UIO devices:');
        for (const u of uio) {
          const pciText = u.pci ? ` pci ${u.pci.slot} ${hex4(u.pci.vendor)}:${hex4(u.pci.device)}` : '';
          console.log(`  ${u.id}  ${u.name} ${u.version}${pciText}`);
          for (const m of u.maps)
            console.log(`      map${m.index} ${m.name} addr 0x${m.addr.toString(16)} size 0x${m.size.toString(16)}`);
          for (const p of u.ports)
            console.log(`      port${p.index} ${p.name} 0x${p.start.toString(16)}+${p.size} ${p.type}`);
        }
        console.log('Simulated devices:');
        for (const s of sims) console.log(`  ${s.id.padEnd(12)} ${s.summary}`);
        return 0;
      }),
    );
}
