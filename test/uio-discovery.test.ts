// sysfs discovery against a fake /sys tree built in a temporary directory.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverUio, uioDeviceSpec } from '../host/devices/uio.ts';

const root = mkdtempSync(join(tmpdir(), 'wasmdrv-sysfs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function file(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${text}\n`);
}

// uio0: the kernel stub on an edu device: BAR0 and a DMA buffer.
const pci0 = join(root, 'devices', 'pci0000:00', '0000:00:04.0');
file(join(pci0, 'vendor'), '0x1234');
file(join(pci0, 'device'), '0x11e8');
file(join(pci0, 'class'), '0x00ff00');
file(
  join(pci0, 'resource'),
  [
    '0x00000000fea00000 0x00000000feafffff 0x0000000000040200',
    ...Array(12).fill('0x0000000000000000 0x0000000000000000 0x0000000000000000'),
  ].join('\n'),
);
const uio0 = join(root, 'class', 'uio', 'uio0');
file(join(uio0, 'name'), 'wasmdrv-edu');
file(join(uio0, 'version'), '0.1');
file(join(uio0, 'maps', 'map0', 'name'), 'bar0');
file(join(uio0, 'maps', 'map0', 'addr'), '0x00000000fea00000');
file(join(uio0, 'maps', 'map0', 'size'), '0x0000000000100000');
file(join(uio0, 'maps', 'map0', 'offset'), '0x0');
file(join(uio0, 'maps', 'map1', 'name'), 'dma');
file(join(uio0, 'maps', 'map1', 'addr'), '0x0000000001230000');
file(join(uio0, 'maps', 'map1', 'size'), '0x0000000000010000');
file(join(uio0, 'maps', 'map1', 'offset'), '0x0');
symlinkSync(pci0, join(uio0, 'device'));

// uio1: a 16550 UART's port range, no PCI parent.
const uio1 = join(root, 'class', 'uio', 'uio1');
file(join(uio1, 'name'), 'wasmdrv-uart16550');
file(join(uio1, 'version'), '0.1');
file(join(uio1, 'portio', 'port0', 'name'), 'uart');
file(join(uio1, 'portio', 'port0', 'start'), '0x2f8');
file(join(uio1, 'portio', 'port0', 'size'), '0x8');
file(join(uio1, 'portio', 'port0', 'porttype'), 'port_x86');

// uio2: uio_pci_generic (no maps): BARs from the resource files.
const pci2 = join(root, 'devices', 'pci0000:00', '0000:00:05.0');
file(join(pci2, 'vendor'), '0x1234');
file(join(pci2, 'device'), '0x11e8');
file(join(pci2, 'class'), '0x00ff00');
file(
  join(pci2, 'resource'),
  [
    '0x00000000feb00000 0x00000000febfffff 0x0000000000040200',
    '0x000000000000c000 0x000000000000c01f 0x0000000000040101',
  ].join('\n'),
);
const uio2 = join(root, 'class', 'uio', 'uio2');
file(join(uio2, 'name'), 'uio_pci_generic');
file(join(uio2, 'version'), '0.01.0');
symlinkSync(pci2, join(uio2, 'device'));

describe('UIO discovery', () => {
  const found = discoverUio({ sysfs: root, dev: '/dev' });

  it('finds every uioN with name, version and device node', () => {
    expect(found.map((u) => [u.id, u.name, u.version, u.devNode])).toEqual([
      ['uio0', 'wasmdrv-edu', '0.1', '/dev/uio0'],
      ['uio1', 'wasmdrv-uart16550', '0.1', '/dev/uio1'],
      ['uio2', 'uio_pci_generic', '0.01.0', '/dev/uio2'],
    ]);
  });

  it('reads maps, port regions and the PCI parent', () => {
    const [u0, u1] = found;
    expect(u0.maps).toEqual([
      { index: 0, name: 'bar0', addr: 0xfea00000n, size: 0x100000, offset: 0 },
      { index: 1, name: 'dma', addr: 0x1230000n, size: 0x10000, offset: 0 },
    ]);
    expect(u0.pci).toMatchObject({ slot: '0000:00:04.0', vendor: 0x1234, device: 0x11e8, class: 0xff00 });
    expect(u1.ports).toEqual([{ index: 0, name: 'uart', start: 0x2f8, size: 8, type: 'port_x86' }]);
    expect(u1.pci).toBeUndefined();
  });

  it('turns stub maps into regions and DMA windows at mmap offset index x page size', () => {
    const spec = uioDeviceSpec(found[0], { pageSize: 4096 });
    expect(spec.regions).toEqual([
      { name: 'bar0', size: 0x100000, phys: 0xfea00000n, source: { kind: 'file', path: '/dev/uio0', offset: 0 } },
    ]);
    expect(spec.dma).toEqual([
      { name: 'dma', size: 0x10000, bus: 0x1230000n, source: { kind: 'file', path: '/dev/uio0', offset: 4096 } },
    ]);
    expect(spec.irq).toEqual({ kind: 'uio', path: '/dev/uio0', rearm: 'none' });
  });

  it('gives uio_pci_generic devices their BARs from resource files and config-space re-arm', () => {
    const spec = uioDeviceSpec(found[2]);
    expect(spec.regions).toEqual([
      {
        name: 'bar0',
        size: 0x100000,
        phys: 0xfeb00000n,
        source: { kind: 'file', path: join(pci2, 'resource0'), offset: 0 },
      },
    ]);
    expect(spec.ports).toEqual([{ name: 'bar1', base: 0xc000, size: 32, source: { kind: 'io' } }]);
    expect(spec.irq).toEqual({ kind: 'uio-pci-generic', path: '/dev/uio2', config: join(pci2, 'config') });
  });

  it('finds nothing under a tree without class/uio', () => {
    expect(discoverUio({ sysfs: join(root, 'nope') })).toEqual([]);
  });
});
