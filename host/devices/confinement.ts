// Who keeps a device's DMA inside the memory the host granted: the IOMMU (VFIO), the register
// firewall (UIO: the host checks each transfer of the DMA engines the manifest declares at its
// trigger), the descriptor firewall (UIO, ring devices: every descriptor the driver hands over is
// checked and copied at the doorbell), or nobody. `wasmdrv devices` and `inspect` print it;
// loadPackage refuses a package whose device would have unconfined DMA unless the operator allows
// that package by name.

import type { Manifest } from '../package/manifest.ts';
import type { DeviceSpec, DmaConfinement } from '../device-spec.ts';

export type { DmaConfinement };

/** Without an IOMMU, which firewall the manifest gives something to check (undefined: none). */
function uioConfinement(m: Manifest): 'register-firewall' | 'descriptor-firewall' | 'none' {
  // Descriptor rings: the descriptor firewall (host/sandbox/ring-firewall.ts) owns their registers.
  if (m.rings?.length) return 'descriptor-firewall';
  return firewallCovers(m) ? 'register-firewall' : 'none';
}

/** Does the manifest give the register firewall something to check? */
function firewallCovers(m: Manifest): boolean {
  const regions = m.regions ?? [];
  // DMA engines the register firewall models (host/sandbox/dma-firewall.ts).
  if (regions.some((r) => (r.dmaEngines?.length ?? 0) > 0)) return true;
  // No DMA window asked for and every writable region limited to listed registers: the driver
  // cannot start DMA at all unless a listed register does it, which the manifest would then declare.
  return !m.dma?.windows && regions.every((r) => r.access === 'r' || (r.writable?.length ?? 0) > 0);
}

/** The confinement of `spec`'s DMA for a driver with manifest `m` (without one: what the backend alone gives). */
export function dmaConfinement(spec: DeviceSpec, m?: Manifest): DmaConfinement {
  if (spec.dmaConfinement) return spec.dmaConfinement;
  if (spec.sim) return 'simulated';
  if (!spec.pci) return 'no-dma';
  if (!m) return 'register-firewall';
  return uioConfinement(m);
}

export function describeConfinement(c: DmaConfinement): string {
  switch (c) {
    case 'iommu':
      return 'confined by the IOMMU (VFIO)';
    case 'register-firewall':
      return 'confined by the register firewall (declared DMA engines)';
    case 'descriptor-firewall':
      return 'confined by the descriptor firewall (declared rings, checked at each doorbell)';
    case 'none':
      return 'NOT confined';
    case 'no-dma':
      return 'no DMA (the device cannot master the bus)';
    case 'simulated':
      return 'simulated (the model reaches only its windows)';
  }
}

/** For `inspect`: the confinement per kind of device the manifest can match. */
export function manifestConfinement(m: Manifest): { vfio: DmaConfinement; uio: DmaConfinement; sim: DmaConfinement } {
  return { vfio: 'iommu', uio: uioConfinement(m), sim: 'simulated' };
}

/** The refusal for a package whose device's DMA nobody confines, unless `allowed` names it. */
export function unconfinedRefusal(
  m: Manifest,
  spec: DeviceSpec,
  where: string,
  allowed: readonly string[] = [],
): string | undefined {
  if (dmaConfinement(spec, m) !== 'none' || allowed.includes(m.name)) return undefined;
  const why =
    spec.dmaConfinement === 'none'
      ? 'VFIO runs in no-IOMMU mode'
      : 'the manifest declares no DMA address registers for the register firewall and the device has no IOMMU protection (UIO)';
  return `${where}: ${m.name} would drive ${spec.id} with unconfined DMA (${why}): refused; bind the device to vfio-pci on a machine with an IOMMU, or allow it by name with --allow-unconfined-dma ${m.name}`;
}
