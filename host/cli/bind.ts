// wasmdrv bind <BDF> --vfio|--uio|--kernel — hand a PCI device to vfio-pci, uio_pci_generic or back to
// its kernel driver, the way driverctl and dpdk-devbind do it: write the driver's name to the device's
// driver_override, unbind it from its current driver, ask the kernel to probe it again, check who took it.
// driver_override (not new_id) binds exactly this device, not every device with its vendor:device.

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { linkName } from '../devices/pci.ts';
import { action, CliError, UsageError } from './common.ts';
import { BDF_RE, pciDevice, planVfio, VfioError, type VfioRoots } from '../devices/vfio-plan.ts';

export class BindError extends Error {}

export interface BindResult {
  slot: string;
  before?: string;
  after?: string;
  /** A note about the device's readiness for its new backend (a VFIO group that is not viable yet). */
  note?: string;
}

const MODULE_OF: Record<string, string> = { 'vfio-pci': 'vfio-pci', uio_pci_generic: 'uio_pci_generic' };

const driverOf = (dev: string) => linkName(join(dev, 'driver'));

/** Bind `slot` to `target` ("vfio-pci", "uio_pci_generic", or "" for the kernel's choice). Throws BindError. */
export function bindDevice(slot: string, target: string, roots: VfioRoots = {}): BindResult {
  if (!BDF_RE.test(slot)) throw new BindError(`"${slot}" is not a PCI address (want DDDD:BB:DD.F, e.g. 0000:00:03.0)`);
  const sysfs = roots.sysfs ?? '/sys';
  const bus = join(sysfs, 'bus', 'pci');
  const dev = join(bus, 'devices', slot);
  let info;
  try {
    info = pciDevice(slot, roots);
  } catch (err) {
    throw new BindError((err as Error).message);
  }
  if (info.class >> 16 === 0x06)
    throw new BindError(`${slot} is a bridge (class 0x${info.class.toString(16)}): bridges stay with the kernel`);
  if (target && !existsSync(join(bus, 'drivers', target))) {
    throw new BindError(`${target} is not loaded: run \`modprobe ${MODULE_OF[target] ?? target}\` first`);
  }
  if (target === 'vfio-pci' && info.iommuGroup === undefined) {
    throw new BindError(
      `${slot} has no IOMMU group: the kernel runs without an IOMMU (boot with intel_iommu=on or amd_iommu=on); use --uio instead`,
    );
  }
  const before = info.driver;
  const write = (path: string, text: string) => {
    try {
      writeFileSync(path, text);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new BindError(
        `${slot}: writing "${text.trim()}" to ${path} failed: ${e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied (run as root)' : e.message}`,
      );
    }
  };
  if (target && before === target)
    return { slot, before, after: before, note: target === 'vfio-pci' ? vfioNote(slot, roots) : undefined };
  // An empty override (a newline) restores the kernel's normal matching.
  write(join(dev, 'driver_override'), target ? `${target}\n` : '\n');
  if (before) write(join(dev, 'driver', 'unbind'), slot);
  write(join(bus, 'drivers_probe'), slot);
  const after = driverOf(dev);
  if (target && after !== target) {
    throw new BindError(
      `${slot}: the kernel did not bind it to ${target} (it is ${after ? `bound to ${after}` : 'unbound'}); see dmesg`,
    );
  }
  return { slot, before, after, note: target === 'vfio-pci' ? vfioNote(slot, roots) : undefined };
}

function vfioNote(slot: string, roots: VfioRoots): string | undefined {
  try {
    planVfio(slot, roots);
    return undefined;
  } catch (err) {
    return err instanceof VfioError ? err.message : String(err);
  }
}

export function register(program: Command): void {
  program
    .command('bind')
    .summary('hand a PCI device to vfio-pci, uio_pci_generic or its kernel driver')
    .description(
      "Writes the driver to the device's driver_override, unbinds it, asks the kernel to probe it again and checks who took it (like driverctl and dpdk-devbind).\n" +
        '  --vfio     vfio-pci: DMA confined by the IOMMU (needs intel_iommu=on or amd_iommu=on)\n' +
        '  --uio      uio_pci_generic: DMA confined only by the register firewall\n' +
        "  --kernel   clear the override and let the kernel's own driver take it again",
    )
    .argument('<bdf>', 'the PCI address, DDDD:BB:DD.F')
    .option('--vfio', 'bind to vfio-pci')
    .option('--uio', 'bind to uio_pci_generic')
    .option('--kernel', "back to the kernel's driver")
    .option('--json', 'the result as JSON')
    .option('--sysfs <dir>', 'another sysfs root (tests)')
    .action(action(bind));
}

async function bind(
  slot: string,
  values: { vfio?: boolean; uio?: boolean; kernel?: boolean; json?: boolean; sysfs?: string },
): Promise<number> {
  const modes = (['vfio', 'uio', 'kernel'] as const).filter((k) => values[k]);
  if (modes.length !== 1) throw new UsageError('want exactly one of --vfio, --uio, --kernel');
  const target = modes[0] === 'vfio' ? 'vfio-pci' : modes[0] === 'uio' ? 'uio_pci_generic' : '';
  try {
    const r = bindDevice(slot, target, { sysfs: values.sysfs });
    if (values.json) console.log(JSON.stringify(r));
    else {
      console.log(`${r.slot}: ${r.before ?? 'no driver'} -> ${r.after ?? 'no driver'}`);
      if (r.note) console.error(`note: ${r.note}`);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof BindError)) throw err;
    if (values.json) console.log(JSON.stringify({ ok: false, error: err.message }));
    throw new CliError(err.message, 1);
  }
}
