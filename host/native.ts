// The native surface of wasmdrv: the only place that touches mmap, ioperm, poll and file descriptors.
//
// native/ stays thin (STYLE.md): it maps memory, waits on file descriptors and reports errno. Every
// policy decision (bounds, grants, which fd means what) lives in TypeScript above this file.
//
// Every failing call throws a NativeError: an Error whose message names the syscall and the path, with
// `errno` (number), `code` ("ENOENT"…), `syscall` ("mmap", "open"…) and `path` (when one is involved).
//
// Mappings belong to the thread that made them: a worker maps a region for itself (the fd numbers are
// process-wide, so a memfd created on one thread can be mapped by another). ioperm grants are per thread.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
// Imported, not required at run time, so that a bundle of the host (the VM test's staged daemon) carries it.
import gypBuild from 'node-gyp-build';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What native.irqWaiter needs (interrupts.ts builds it). */
export interface IrqWaiterConfig {
  /** [the interrupt fd, the cancel fd] */
  fds: Int32Array;
  /** 4: a UIO event count (the value read is the count); 8: an eventfd counter (added to the count) */
  width: 4 | 8;
  /** [0]: the source's cumulative count, which its consume()/absorb() keep too */
  source: Float64Array;
  /** [0]: the count the driver has seen; [1]: non-zero while it wants interrupts; [2]: non-zero to call `after` */
  state: Float64Array;
  /** Int32Array over the driver's shared area from byte 0 (shared.ts) */
  area: Int32Array;
  /** Byte offsets in the area (shared.ts's layout), the recorder's size and the irq entry's op. */
  layout: {
    stop: number;
    interrupts: number;
    coalesced: number;
    jsEntries: number;
    gateReads: number;
    gateWrites: number;
    ring: number;
    entries: number;
    irqOp: number;
  };
  /** The JavaScript wait, for what the native one does not serve. */
  slow: (timeoutUs: number) => number;
  /** Before each wait, for a line that masks on every event. */
  rearm?: () => void;
  /** After each new count, before the driver sees it (the descriptor firewall's write-backs). */
  after?: () => void;
}

export interface NativeError extends Error {
  errno: number;
  code: string;
  syscall: string;
  path?: string;
}

/** A region of memory mapped into this process (device BAR, UIO map, memfd). */
export interface Mapping {
  /** Size in bytes of the mapping. */
  readonly size: number;
  /** True once close() ran. */
  readonly closed: boolean;
  /**
   * A new external ArrayBuffer over the whole mapping. Every buffer handed out is remembered so that
   * close() can detach it. Throws if the mapping is closed.
   */
  buffer(): ArrayBuffer;
  /**
   * Idempotent. Detaches every ArrayBuffer handed out by buffer() (napi_detach_arraybuffer), then munmaps.
   * After close, any JS/Wasm access through those buffers sees a detached (zero-length) buffer, never
   * freed memory.
   */
  close(): void;
}

/**
 * A file mapped MAP_SHARED|MAP_FIXED over a page-aligned range of an existing ArrayBuffer's memory
 * (a WebAssembly.Memory's buffer). close() puts fresh anonymous zero pages back over the range
 * (MAP_FIXED|MAP_PRIVATE|MAP_ANONYMOUS) so the owning memory stays valid: the window is gone, the
 * memory is not.
 */
export interface FixedMapping {
  readonly size: number;
  readonly closed: boolean;
  close(): void;
}

export interface Native {
  /** sysconf(_SC_PAGESIZE). */
  pageSize(): number;

  /** open(path, O_RDWR|O_CLOEXEC|O_NONBLOCK) (or O_RDONLY when readOnly). Returns the fd. */
  open(path: string, readOnly?: boolean): number;
  /** close(fd). Closing an fd twice throws EBADF. */
  close(fd: number): void;

  /** memfd_create(name, MFD_CLOEXEC) + ftruncate(size). Returns the fd. */
  memfdCreate(name: string, size: number): number;

  /** mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, offset). `path` is only used in errors. */
  mapFd(fd: number, size: number, offset: number, path?: string): Mapping;
  /** open(path) + mmap(size, offset) + close(fd): a PCI resourceN file or a UIO device node. */
  mapFile(path: string, size: number, offset: number): Mapping;
  /**
   * mmap(base(buffer) + byteOffset, size, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, fd, fdOffset).
   * byteOffset, size and fdOffset must be multiples of the page size and the range must lie inside the
   * buffer; otherwise throws (EINVAL, syscall "mmap") without mapping anything.
   */
  mapIntoBuffer(
    buffer: ArrayBuffer,
    byteOffset: number,
    size: number,
    fd: number,
    fdOffset: number,
    path?: string,
  ): FixedMapping;

  /** eventfd(initial, EFD_CLOEXEC|EFD_NONBLOCK). */
  eventfdCreate(initial?: number): number;
  /** write(fd, uint64 n), n defaults to 1. */
  eventfdWrite(fd: number, n?: number): void;
  /**
   * words[index] = CLOCK_MONOTONIC in ns, then write(fd, uint64 1), with nothing between the two: an
   * interrupt source that stamps when it signals (the irq bench's pinger thread, as bench/native.c's).
   */
  eventfdWriteStamped(fd: number, words: BigUint64Array, index: number): void;
  /** read(fd, uint64): the counter, which resets to 0; returns 0 when it was already 0 (EAGAIN). */
  eventfdRead(fd: number): number;

  /**
   * poll() on every fd in `fds` for POLLIN. Returns a bitmask: bit i set when fds[i] is readable (or in
   * error/hangup). Returns 0 on timeout. timeoutMs < 0 waits forever. EINTR is retried with the time left.
   * At most 31 fds.
   */
  poll(fds: Int32Array, timeoutMs: number): number;

  /**
   * poll() as above; then, when fds[0] is readable, read `width` bytes from it in the same call (4: a
   * UIO event count, 8: an eventfd counter) into out[0]; when `out` has two elements, out[1] gets the
   * monotonic clock in ns as poll() returned (for latency breakdowns; with three, out[2] gets it again
   * after the read). Returns the poll bitmask, with bit 31 set
   * when a value was read, as a signed 32-bit number (negative then: test `bits & 0x80000000`; a small
   * integer to V8, so nothing is allocated). A read that finds nothing (EAGAIN) sets no bit 31.
   */
  pollRead(fds: Int32Array, timeoutMs: number, width: 4 | 8, out: Float64Array): number;

  /**
   * out[index] = CLOCK_MONOTONIC in ns (process.hrtime's clock). Nothing returned, so nothing allocated:
   * the interrupt wait reads the clock this way.
   */
  monotonicInto(out: Float64Array, index: number): void;

  /**
   * A native function of no arguments that stores CLOCK_MONOTONIC in ns into out[index], for a Wasm
   * import to be the native function itself (no JavaScript frame between the driver and the clock, and
   * no argument checks per call: the generated `clock_ns`, inline-gate.ts). It keeps `out` alive; on a
   * plain ArrayBuffer it throws once that buffer is detached.
   */
  clockInto(out: Float64Array, index: number): () => void;

  /**
   * irq_wait as a native function (addon.cc, IrqWaiter), for the driver's Wasm import to be the function
   * itself: it polls, reads the count and keeps the books (interrupts.ts noteCount) with no JavaScript
   * on the way back to the driver, and hands what it does not serve (a stop already asked for, the
   * interrupts turned off) to `slow`, the JavaScript wait. `source` and `state` must be over
   * SharedArrayBuffers. Returns WAIT_INTERRUPT, WAIT_TIMEOUT or WAIT_CANCELLED, as the JavaScript wait.
   */
  irqWaiter(cfg: IrqWaiterConfig): (timeoutUs: number) => number;

  /** read exactly 4 bytes (a UIO event count), returned as an unsigned 32-bit number. EAGAIN throws. */
  readU32(fd: number): number;
  /** write exactly 4 bytes (a UIO irqcontrol value: 1 unmask, 0 mask). */
  writeU32(fd: number, value: number): void;
  /** pread/pwrite of 1, 2 or 4 bytes at an offset (PCI config space: the command register at 0x04). */
  pread(fd: number, offset: number, width: 1 | 2 | 4): number;
  pwrite(fd: number, offset: number, width: 1 | 2 | 4, value: number): void;

  /**
   * open /dev/net/tun (O_NONBLOCK) and TUNSETIFF IFF_TAP|IFF_NO_PI with `name` ('' lets the kernel pick
   * tapN). One read or write on the fd is one Ethernet frame. Needs CAP_NET_ADMIN.
   */
  tapOpen(name: string): { fd: number; name: string };
  /** TUNSETCARRIER: the TAP interface's carrier (what `ip link` shows as NO-CARRIER / LOWER_UP). */
  tapSetCarrier(fd: number, on: boolean): void;
  /** SIOCSIFHWADDR: set an interface's Ethernet address. */
  netSetMac(name: string, mac: Uint8Array): void;
  /** SIOCGIFFLAGS + SIOCSIFFLAGS: set or clear IFF_UP. */
  netSetUp(name: string, up: boolean): void;
  /** One read() into `buf`: bytes read, or -1 when nothing is ready (EAGAIN). */
  readInto(fd: number, buf: Uint8Array): number;
  /** One write() of `buf`: bytes written, or -1 when the fd would block (EAGAIN). */
  writeFrom(fd: number, buf: Uint8Array): number;

  /** getsockopt(SO_PEERCRED) on a connected UNIX socket: the peer's pid, uid and gid. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };

  /**
   * One datagram to an AF_UNIX SOCK_DGRAM socket ("@name": abstract namespace): sd_notify(3)'s wire
   * format, to $NOTIFY_SOCKET. Returns the bytes sent.
   */
  unixDgramSend(path: string, message: string): number;
  /** A bound, non-blocking AF_UNIX datagram socket with SO_PASSCRED (the receiving end). Returns the fd. */
  unixDgramBind(path: string): number;
  /** One waiting datagram with its sender's credentials (SCM_CREDENTIALS), or null when none waits. */
  unixDgramRecv(fd: number): { data: string; pid: number; uid: number; gid: number } | null;

  /** ioperm(base, count, 1) for the calling thread. Needs CAP_SYS_RAWIO (EPERM otherwise). */
  iopermGrant(base: number, count: number): void;
  /** ioperm(base, count, 0) for the calling thread. */
  iopermRevoke(base: number, count: number): void;
  /** in/out instructions. The caller checks the port against its grant; the CPU checks ioperm. */
  inb(port: number): number;
  inw(port: number): number;
  inl(port: number): number;
  outb(port: number, value: number): void;
  outw(port: number, value: number): void;
  outl(port: number, value: number): void;

  // --- VFIO (type1 container/group API; include/uapi/linux/vfio.h). One ioctl each; the policy is in
  // host/devices/vfio.ts. Failures throw a NativeError with syscall "ioctl", `ioctl` (the request's
  // name, "VFIO_GROUP_GET_STATUS"...) and `path` (the `label` given: the device address or node).
  /** VFIO_GET_API_VERSION on /dev/vfio/vfio: 0 for the API this code speaks. */
  vfioApiVersion(container: number, label?: string): number;
  /** VFIO_CHECK_EXTENSION: > 0 when the IOMMU model `ext` is supported (TYPE1v2 = 3, NOIOMMU = 8). */
  vfioCheckExtension(container: number, ext: number, label?: string): number;
  /** VFIO_SET_IOMMU: legal only after a group joined the container. */
  vfioSetIommu(container: number, type: number, label?: string): void;
  /** VFIO_GROUP_GET_STATUS: the flags (VIABLE = 1, CONTAINER_SET = 2). */
  vfioGroupStatus(group: number, label?: string): number;
  /** VFIO_GROUP_SET_CONTAINER / VFIO_GROUP_UNSET_CONTAINER. */
  vfioGroupSetContainer(group: number, container: number, label?: string): void;
  vfioGroupUnsetContainer(group: number, label?: string): void;
  /** VFIO_GROUP_GET_DEVICE_FD with the device's name ("0000:00:03.0"): a new fd. */
  vfioGroupDeviceFd(group: number, name: string): number;
  /** VFIO_IOMMU_GET_INFO: flags and the supported IOVA page sizes (a bitmap). */
  vfioIommuInfo(container: number, label?: string): { flags: number; iovaPgsizes: bigint };
  /**
   * VFIO_IOMMU_MAP_DMA of the whole buffer (an external ArrayBuffer from Mapping.buffer(): its base is
   * the vaddr the kernel pins) at `iova`; flags READ = 1 | WRITE = 2. The caller unmaps before the
   * mapping closes. ENOMEM here usually means RLIMIT_MEMLOCK.
   */
  vfioMapDma(container: number, buffer: ArrayBuffer, iova: bigint, flags: number, label?: string): void;
  /** VFIO_IOMMU_UNMAP_DMA: returns the bytes unmapped. */
  vfioUnmapDma(container: number, iova: bigint, size: number, label?: string): number;
  /** VFIO_DEVICE_GET_INFO: flags (RESET = 1, PCI = 2), region and irq counts. */
  vfioDeviceInfo(device: number, label?: string): { flags: number; numRegions: number; numIrqs: number };
  /** VFIO_DEVICE_GET_REGION_INFO: flags (READ 1, WRITE 2, MMAP 4), size, and its offset in the device fd. */
  vfioRegionInfo(
    device: number,
    index: number,
    label?: string,
  ): { index: number; flags: number; size: number; offset: number };
  /** VFIO_DEVICE_GET_IRQ_INFO: flags (EVENTFD 1, MASKABLE 2, AUTOMASKED 4) and vector count. */
  vfioIrqInfo(device: number, index: number, label?: string): { index: number; flags: number; count: number };
  /**
   * VFIO_DEVICE_SET_IRQS. `fds` (Int32Array): DATA_EVENTFD, one eventfd per vector from `start` (-1
   * deassigns); a number: DATA_NONE for that many vectors (TRIGGER with 0 disables the index).
   * action: MASK = 8, UNMASK = 16, TRIGGER = 32.
   */
  vfioSetIrqs(
    device: number,
    index: number,
    start: number,
    action: 8 | 16 | 32,
    fds: Int32Array | number,
    label?: string,
  ): void;
  /** VFIO_DEVICE_RESET. */
  vfioDeviceReset(device: number, label?: string): void;
}

/** The package root: the first directory above this file that holds package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`wasmdrv: cannot find package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

let cached: Native | undefined;

const MAPPING_OWNER = Symbol('wasmdrv.mapping');

/** The addon reports errno numbers; their names ("ENOENT") come from Node, which knows them all. */
function nameErrno(err: unknown): never {
  const e = err as Partial<NativeError> | undefined;
  if (e && typeof e.errno === 'number' && e.code === undefined) {
    e.code = getSystemErrorName(-e.errno);
    e.message = `${e.message} (${e.code})`;
  }
  throw err;
}

function named<F extends (...args: any[]) => any>(fn: F): F {
  return function (this: unknown, ...args: unknown[]) {
    try {
      return fn.apply(this, args);
    } catch (err) {
      return nameErrno(err);
    }
  } as F;
}

/**
 * Left unwrapped: port I/O (the register hot path, never reports errno) and the interrupt wait's
 * poll/pollRead/monotonicInto (called on every wait: no extra frame and no rest-argument array, which
 * would be garbage on the wake-up path; their errors keep errno and syscall, only without the name).
 */
const UNWRAPPED = new Set([
  'inb',
  'inw',
  'inl',
  'outb',
  'outw',
  'outl',
  'pageSize',
  'poll',
  'pollRead',
  'monotonicInto',
]);

/**
 * The path of the addon node-gyp-build picks: native/build/Release (compiled here) first, else the
 * prebuilt binary for this platform in native/prebuilds/ (`npm run native:prebuild`).
 */
export function nativeBinaryPath(): string {
  try {
    return gypBuild.path(join(packageRoot(), 'native'));
  } catch (err) {
    throw new Error(
      `wasmdrv: no native addon for this platform (${(err as Error).message.split('\n')[0]}): run \`npm install\` (compiles it with node-gyp)`,
    );
  }
}

export function loadNative(): Native {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const addon = require(nativeBinaryPath()) as Native;
  const table = addon as unknown as Record<string, unknown>;
  for (const [name, fn] of Object.entries(table)) {
    if (typeof fn === 'function' && !UNWRAPPED.has(name)) table[name] = named(fn as (...a: unknown[]) => unknown);
  }
  // Objects the addon hands out have methods that throw errno too.
  for (const name of ['mapFd', 'mapFile', 'mapIntoBuffer'] as const) {
    const make = table[name] as (...args: unknown[]) => { close(): void };
    table[name] = (...args: unknown[]) => {
      const m = make(...args);
      const close = m.close;
      Object.defineProperty(m, 'close', { value: named(() => close.call(m)) });
      return m;
    };
  }
  // A mapping is unmapped when its Mapping object is collected; a buffer it handed out must keep it
  // alive, or a program that keeps only the buffer touches unmapped memory. (The addon's methods are
  // read-only, so each Mapping gets an own buffer() that ties the buffer to it.)
  for (const name of ['mapFd', 'mapFile'] as const) {
    const map = addon[name] as (...args: unknown[]) => Mapping;
    (addon as unknown as Record<string, unknown>)[name] = (...args: unknown[]): Mapping => {
      const m = map(...args);
      const buffer = m.buffer;
      Object.defineProperty(m, 'buffer', {
        value(): ArrayBuffer {
          const b = buffer.call(m);
          Object.defineProperty(b, MAPPING_OWNER, { value: m });
          return b;
        },
      });
      return m;
    };
  }
  cached = addon;
  return cached;
}
