// The host: owns devices and the drivers loaded onto them. One driver per device: the host is the
// device's one owner, and applications reach the driver through it.

import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { Driver } from './driver.ts';
import { openSimDevice } from './devices/sim.ts';
import { discoverUio, uioDeviceSpec, type UioRoots } from './devices/uio.ts';
import { openVfioDevice, type VfioOpenOptions } from './devices/vfio.ts';
import { LoadError } from './faults.ts';
import { loadNative } from './native.ts';
import { DEFAULT_LIMIT_CAPS, type Limits } from './grant.ts';
import { type LoadOptions, loadAdmitted, type PackageOptions } from './package/load.ts';
import type { DeviceHandle } from './device-spec.ts';

export type { DeviceHandle } from './device-spec.ts';
export type { LoadOptions } from './package/load.ts';

export interface OpenDeviceOptions {
  /** Options for a simulated model (see host/sim/<model>.ts). */
  sim?: Record<string, unknown>;
  /** How a UIO line is re-enabled after each event (default: none; the stub acknowledges). */
  rearm?: 'none' | 'irqcontrol';
  uio?: UioRoots;
  /** VFIO: interrupt mechanism (default auto: MSI-X, MSI, then INTx) and the sysfs/dev roots. */
  vfio?: Pick<VfioOpenOptions, 'irq' | 'roots' | 'dma'>;
}

export interface HostOptions {
  /**
   * A trust policy: when set, every load (and reload) goes through it — signed packages verified
   * against the trust store, anything unsigned or bare only if allowed by name (docs/packages.md).
   */
  trust?: Omit<PackageOptions, 'manifest' | 'name'> & { trust: string };
  /** The most a manifest may ask for, per limit (default DEFAULT_LIMIT_CAPS). */
  limitCaps?: Partial<Limits>;
}

export class Host extends EventEmitter {
  private readonly devices = new Map<string, DeviceHandle>();
  private readonly owners = new Map<string, Driver>();
  readonly drivers: Driver[] = [];
  /** Why the host is tainted (drivers without an open-source license), as the kernel taints for modules. */
  readonly taints: string[] = [];
  /** The caps manifests' limits are checked against. */
  readonly limitCaps: Limits;
  readonly trust?: HostOptions['trust'];

  constructor(opts: HostOptions = {}) {
    super();
    this.limitCaps = { ...DEFAULT_LIMIT_CAPS, ...opts.limitCaps };
    this.trust = opts.trust;
  }

  taint(reason: string): void {
    this.taints.push(reason);
    this.emit('taint', reason);
  }

  /**
   * Open a device by id: "sim:<model>" (or "sim:<model>:<n>" for several of one model), "uioN",
   * "vfio:0000:00:03.0" (a PCI device bound to vfio-pci; host/devices/vfio.ts).
   * Opening the same id twice returns the same device.
   */
  openDevice(id: string, opts: OpenDeviceOptions = {}): DeviceHandle {
    const known = this.devices.get(id);
    if (known) return known;
    let handle: DeviceHandle;
    if (id.startsWith('sim:')) {
      const model = id.slice(4).split(':')[0];
      const sim = openSimDevice(model, opts.sim ?? {});
      handle = { spec: { ...sim.spec, id }, close: () => sim.close() };
    } else if (/^uio\d+$/.test(id)) {
      const info = discoverUio(opts.uio).find((u) => u.id === id);
      if (!info) throw new Error(`device ${id}: no such UIO device under ${opts.uio?.sysfs ?? '/sys'}/class/uio`);
      handle = { spec: uioDeviceSpec(info, { pageSize: loadNative().pageSize(), rearm: opts.rearm }), close: () => {} };
    } else if (id.startsWith('vfio:')) {
      const v = openVfioDevice(id.slice(5), opts.vfio);
      handle = {
        spec: v.spec,
        close: () => v.close(),
        recover: () => {
          const r = v.recover();
          return `${id}: ${r.detail}; ${r.dmaRemapped} DMA window(s) unmapped, cleared and mapped again`;
        },
        watchFaults: (onFault) => v.watchFaults(onFault),
      };
      handle.watchFaults!((line) =>
        this.owners.get(id)?.deviceFault('iommu-fault', `${id}: the IOMMU blocked a DMA of the device: ${line}`),
      );
    } else {
      throw new Error(
        `device "${id}": not a device id (use uioN, vfio:DDDD:BB:DD.F or sim:<model>; see \`wasmdrv devices\`)`,
      );
    }
    this.devices.set(id, handle);
    return handle;
  }

  /**
   * Load a driver (a .wasm path or bytes) onto a device and probe it. Under a trust policy (HostOptions
   * trust) it must pass the policy first, package or bare module alike.
   */
  async load(driver: string | Uint8Array, device: string | DeviceHandle, opts: LoadOptions = {}): Promise<Driver> {
    const dev = typeof device === 'string' ? this.openDevice(device) : device;
    if (this.trust) {
      let bytes: Uint8Array;
      try {
        bytes = typeof driver === 'string' ? new Uint8Array(readFileSync(driver)) : driver;
      } catch (err) {
        throw new LoadError(`${driver}: cannot read: ${(err as Error).message}`);
      }
      const { manifest, name, ...load } = opts;
      return loadAdmitted(
        this,
        bytes,
        dev,
        typeof driver === 'string' ? driver : (name ?? 'driver'),
        { ...this.trust, manifest, name },
        load,
      );
    }
    return this.loadChecked(driver, dev, opts);
  }

  /** Load without a trust policy (package/load.ts calls this after admitting). */
  async loadChecked(driver: string | Uint8Array, dev: DeviceHandle, opts: LoadOptions = {}): Promise<Driver> {
    let bytes: Uint8Array;
    if (typeof driver === 'string') {
      try {
        bytes = new Uint8Array(readFileSync(driver));
      } catch (err) {
        throw new LoadError(`${driver}: cannot read: ${(err as Error).message}`);
      }
    } else {
      bytes = driver;
    }
    const name =
      opts.name ?? (typeof driver === 'string' ? driver.replace(/^.*\//, '').replace(/\.wasm$/, '') : 'driver');
    const owner = this.owners.get(dev.spec.id);
    if (owner && owner.state !== 'stopped' && owner.state !== 'failed') {
      throw new LoadError(`${name}: device ${dev.spec.id} is already driven by ${owner.name}`);
    }
    const drv = new Driver(name, dev.spec, bytes, { name, recoverDevice: dev.recover, ...opts });
    drv.on('log', (e) => this.emit('log', e));
    drv.on('fault', (f) => this.emit('fault', f));
    this.owners.set(dev.spec.id, drv);
    try {
      await drv.start();
    } catch (err) {
      this.owners.delete(dev.spec.id);
      await drv.stop();
      throw err;
    }
    this.drivers.push(drv);
    return drv;
  }

  status() {
    return { tainted: this.taints.length > 0, taints: [...this.taints], drivers: this.drivers.map((d) => d.status()) };
  }

  /**
   * Stop one driver and release its device (closed, forgotten: a later openDevice of the same id opens
   * it afresh). The daemon's config re-read uses this for entries the new config drops or changes.
   */
  async release(drv: Driver): Promise<void> {
    await drv.stop();
    const i = this.drivers.indexOf(drv);
    if (i >= 0) this.drivers.splice(i, 1);
    const id = drv.device.id;
    if (this.owners.get(id) === drv) this.owners.delete(id);
    this.devices.get(id)?.close();
    this.devices.delete(id);
  }

  /** Stop every driver, then release every device. */
  async close(): Promise<void> {
    // Drivers still probing are owners but not yet in `drivers`: stop them too.
    await Promise.all([...new Set([...this.drivers, ...this.owners.values()])].map((d) => d.stop()));
    for (const d of this.devices.values()) d.close();
    this.devices.clear();
    this.owners.clear();
  }
}
