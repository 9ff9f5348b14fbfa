// wasmdrv devices [--json]: the UIO devices in sysfs and the simulated models.
import type { Command } from 'commander';
import { discoverUio } from '../devices/uio.ts';
import { listSimModels } from '../devices/sim.ts';
import { action } from './common.ts';

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

export function register(program: Command): void {
  program
    .command('devices')
    .summary('the devices wasmdrv can drive: UIO devices and simulated models')
    .option('--json', 'as one JSON object')
    .action(action((o: { json?: boolean }) => {
      const uio = discoverUio();
      const sims = listSimModels();
      if (o.json) {
        console.log(JSON.stringify({
          uio: uio.map((u) => ({
            id: u.id, name: u.name, version: u.version, devNode: u.devNode,
            maps: u.maps.map((m) => ({ ...m, addr: `0x${m.addr.toString(16)}` })), ports: u.ports,
            pci: u.pci ? { slot: u.pci.slot, vendor: u.pci.vendor, device: u.pci.device, class: u.pci.class } : undefined,
          })),
          sim: sims,
        }));
        return 0;
      }
      if (uio.length === 0) console.log('UIO devices: none (no /sys/class/uio entries)');
      else console.log('UIO devices:');
      for (const u of uio) {
        const pci = u.pci ? ` pci ${u.pci.slot} ${hex4(u.pci.vendor)}:${hex4(u.pci.device)}` : '';
        console.log(`  ${u.id}  ${u.name} ${u.version}${pci}`);
        for (const m of u.maps) console.log(`      map${m.index} ${m.name} addr 0x${m.addr.toString(16)} size 0x${m.size.toString(16)}`);
        for (const p of u.ports) console.log(`      port${p.index} ${p.name} 0x${p.start.toString(16)}+${p.size} ${p.type}`);
      }
      console.log('Simulated devices:');
      for (const s of sims) console.log(`  ${s.id.padEnd(12)} ${s.summary}`);
      return 0;
    }));
}
