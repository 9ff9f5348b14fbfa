// The wasmdrv host API for applications.
export { Host, type DeviceHandle, type OpenDeviceOptions, type LoadOptions } from './host.ts';
export { Driver, type DriverState, type DriverStats, type DriverOptions } from './driver.ts';
export { FAULT_KINDS, type Fault, type FaultKind, LoadError, RequestError } from './faults.ts';
export { DEFAULT_LIMITS, type Limits, type Grant, type RegionPolicy } from './grant.ts';
export type { DeviceSpec } from './device-spec.ts';
export { discoverUio, uioDeviceSpec } from './devices/uio.ts';
export { listSimModels, simDmaRecord } from './devices/sim.ts';
export type { DmaRecordSnapshot, DmaTransfer } from './sim/dma-record.ts';
export { needsSlowWrite, type DmaEngineSpec, type DmaRegisterSpec } from './grant.ts';
export { encodeArgs, decodeResponse } from './payload.ts';
export { demo, runDemo, type DemoResult } from './demo.ts';
export { uartFeed, uartTake } from './sim/uart16550.ts';
export { e1000Inject, e1000Capture, e1000SetLink, e1000Dma } from './sim/e1000.ts';
export { loadPackage, readPackage, isPackage, defaultTrustDir, type PackageOptions } from './package/load.ts';
export { parseManifest, grantFor, describeGrant, type Manifest } from './package/manifest.ts';
export { packDriver } from './package/pack.ts';
export {
  signPackage,
  generateKeys,
  checkSignature,
  loadTrustStore,
  MANIFEST_SECTION,
  SIGNATURE_SECTION,
} from './package/sign.ts';
export { Service } from './service/daemon.ts';
export { ServiceClient, ServiceError } from './service/client.ts';
export { parseConfig, type ServiceConfig } from './service/config.ts';
export { TapBridge, type TapBridgeOptions, type TapBridgeStats } from './net/tap.ts';
export { E1000Client, encodeFrames, decodeFrames, type E1000Stats, type E1000Link } from './net/e1000.ts';
export { openVfioDevice, type VfioDevice } from './devices/vfio.ts';
export { discoverPci, planVfio, VfioError } from './devices/vfio-plan.ts';
export type { DmaConfinement } from './device-spec.ts';
export { dmaConfinement, describeConfinement } from './devices/confinement.ts';
export { loadNative } from './native.ts';
export { compileDriver, finishDriver, missingToolchain, type DriverLang } from './build-c-rust.ts';
