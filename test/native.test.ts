// The native layer: mappings, detach on close, MAP_FIXED windows seen by Wasm, eventfd waits with a
// timeout, cancellation from another thread, port I/O, and errors that carry errno/syscall/path.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNative, nativeBinaryPath, packageRoot } from '../host/native.ts';

const native = loadNative();
const addon = nativeBinaryPath();
const tmp = mkdtempSync(join(tmpdir(), 'wasmdrv-native-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function errorOf(fn: () => unknown): Record<string, unknown> {
  try {
    fn();
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('expected an error');
}

function runWorker(data: Record<string, unknown>, onReady?: () => void): Promise<any> {
  return new Promise((resolve, reject) => {
    const w = new Worker(join(packageRoot(), 'test', 'fixtures', 'native-worker.mjs'), {
      workerData: { addon, ...data },
    });
    w.on('message', (m) => {
      if (m.ready) onReady?.();
      else {
        resolve(m);
        void w.terminate();
      }
    });
    w.on('error', reject);
  });
}

// (module (import "env" "memory" (memory 1)) (func (export "load") (param i32) (result i32) local.get 0 i32.load)
//         (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store))
const probeModule = new WebAssembly.Module(
  Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x0b, 0x02, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x02, 0x7f,
    0x7f, 0x00, 0x02, 0x0f, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x01,
    0x03, 0x03, 0x02, 0x00, 0x01, 0x07, 0x10, 0x02, 0x04, 0x6c, 0x6f, 0x61, 0x64, 0x00, 0x00, 0x05, 0x73, 0x74, 0x6f,
    0x72, 0x65, 0x00, 0x01, 0x0a, 0x13, 0x02, 0x07, 0x00, 0x20, 0x00, 0x28, 0x02, 0x00, 0x0b, 0x09, 0x00, 0x20, 0x00,
    0x20, 0x01, 0x36, 0x02, 0x00, 0x0b,
  ]),
);

describe('memory mappings', () => {
  it("two mappings of one memfd see each other's writes", () => {
    const fd = native.memfdCreate('test', 8192);
    const a = native.mapFd(fd, 8192, 0);
    const b = native.mapFd(fd, 8192, 0);
    expect(a.size).toBe(8192);
    new Uint32Array(a.buffer())[5] = 0x12345678;
    expect(new Uint32Array(b.buffer())[5]).toBe(0x12345678);
    a.close();
    b.close();
    native.close(fd);
  });

  it('close detaches every buffer handed out; access afterwards fails cleanly, close is idempotent', () => {
    const fd = native.memfdCreate('detach', 4096);
    const m = native.mapFd(fd, 4096, 0);
    const v1 = new Uint32Array(m.buffer());
    const v2 = new Uint8Array(m.buffer());
    v1[0] = 7;
    m.close();
    expect(m.closed).toBe(true);
    expect(v1.buffer.byteLength).toBe(0);
    expect(v2.length).toBe(0);
    expect(v1[0]).toBeUndefined();
    v1[0] = 1; // a write to a detached view is dropped, never a crash
    expect(() => m.buffer()).toThrow(/mapping closed/);
    m.close();
    native.close(fd);
  });

  it('maps a regular file the way it maps a PCI resource file', () => {
    const path = join(tmp, 'resource0');
    writeFileSync(path, Buffer.alloc(4096, 0xab));
    const m = native.mapFile(path, 4096, 0);
    expect(new Uint8Array(m.buffer())[100]).toBe(0xab);
    m.close();
  });

  it('a missing file is an Error with errno, code, syscall and path', () => {
    const e = errorOf(() => native.mapFile('/nonexistent/resource0', 4096, 0));
    expect(e).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open', path: '/nonexistent/resource0' });
    expect(String(e.message)).toContain('/nonexistent/resource0');
  });
});

describe('MAP_FIXED windows in Wasm memory', () => {
  it('a memfd mapped over linear memory is seen by Wasm, and by the memfd, both ways', () => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4 });
    const { load, store } = new WebAssembly.Instance(probeModule, { env: { memory } }).exports as any;
    const fd = native.memfdCreate('window', 4096);
    const side = native.mapFd(fd, 4096, 0);
    const win = native.mapIntoBuffer(memory.buffer, 65536, 4096, fd, 0);
    new Uint32Array(side.buffer())[3] = 0xdeadbeef;
    expect(load(65536 + 12) >>> 0).toBe(0xdeadbeef);
    store(65536 + 16, 0x55aa55aa);
    expect(new Uint32Array(side.buffer())[4]).toBe(0x55aa55aa);
    expect(new Uint32Array(memory.buffer, 65536, 8)[4]).toBe(0x55aa55aa);
    win.close();
    // the window is gone, the memory is not: zero pages, no crash
    expect(load(65536 + 12)).toBe(0);
    store(65536 + 12, 1);
    expect(new Uint32Array(side.buffer())[3]).toBe(0xdeadbeef);
    side.close();
    native.close(fd);
  });

  it('refuses a misaligned or out-of-range window with EINVAL, mapping nothing', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    const fd = native.memfdCreate('bad', 8192);
    expect(errorOf(() => native.mapIntoBuffer(memory.buffer, 100, 4096, fd, 0))).toMatchObject({
      code: 'EINVAL',
      syscall: 'mmap',
    });
    expect(errorOf(() => native.mapIntoBuffer(memory.buffer, 61440, 8192, fd, 0))).toMatchObject({
      code: 'EINVAL',
      syscall: 'mmap',
    });
    native.close(fd);
  });
});

describe('eventfd waits', () => {
  it('counts, resets, and reports readiness as a bitmask', () => {
    const a = native.eventfdCreate(0);
    const b = native.eventfdCreate(0);
    native.eventfdWrite(b, 3);
    expect(native.poll(new Int32Array([a, b]), 0)).toBe(0b10);
    expect(native.eventfdRead(b)).toBe(3);
    expect(native.eventfdRead(b)).toBe(0);
    expect(native.poll(new Int32Array([a, b]), 20)).toBe(0); // timeout
    expect(native.poll(new Int32Array([-1, a]), 0)).toBe(0); // negative fds are ignored
    native.close(a);
    native.close(b);
  });

  it('monotonicInto: CLOCK_MONOTONIC in ns into a Float64Array slot (process.hrtime.bigint is the same clock)', () => {
    const out = new Float64Array(3);
    const before = Number(process.hrtime.bigint());
    native.monotonicInto(out, 2);
    const after = Number(process.hrtime.bigint());
    expect(out[0]).toBe(0);
    expect(out[2]).toBeGreaterThanOrEqual(before);
    expect(out[2]).toBeLessThanOrEqual(after);
  });

  it('clockInto: a native function of no arguments (a Wasm import as is) storing the clock into one slot', () => {
    const shared = new Float64Array(new SharedArrayBuffer(32));
    const fill = native.clockInto(shared, 1);
    const before = Number(process.hrtime.bigint());
    fill();
    const after = Number(process.hrtime.bigint());
    expect([shared[0], shared[2]]).toEqual([0, 0]);
    expect(shared[1]).toBeGreaterThanOrEqual(before);
    expect(shared[1]).toBeLessThanOrEqual(after);
    // As a Wasm import: (import "a" "f" (func)) (func (export "run") call 0)
    const wasm = Uint8Array.from([
      0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 2, 7, 1, 1, 0x61, 1, 0x66, 0, 0, 3, 2, 1, 0, 7, 7, 1, 3,
      0x72, 0x75, 0x6e, 0, 1, 10, 6, 1, 4, 0, 0x10, 0, 0x0b,
    ]);
    const run = new WebAssembly.Instance(new WebAssembly.Module(wasm), { a: { f: fill } }).exports.run as () => void;
    run();
    expect(shared[1]).toBeGreaterThanOrEqual(after);
    // A plain ArrayBuffer can be detached: the function refuses to write into it afterwards.
    const plain = new Float64Array(2);
    const fillPlain = native.clockInto(plain, 0);
    fillPlain();
    expect(plain[0]).toBeGreaterThan(0);
    structuredClone(plain.buffer, { transfer: [plain.buffer] });
    const detachedError = errorOf(() => fillPlain());
    expect(detachedError).toBeInstanceOf(TypeError);
    expect(detachedError.message).toBe("clock: its Float64Array's buffer was detached");
  });

  it('monotonicInto and clockInto: out must be a Float64Array (TypeError), the index a number inside it (RangeError); nothing is written', () => {
    const out = new Float64Array(3);
    const detached = new Float64Array(2);
    structuredClone(detached.buffer, { transfer: [detached.buffer] }); // its length is 0 from now on
    const cases: [string, unknown[], typeof TypeError, string][] = [
      ['no arguments', [], TypeError, 'out must be a Float64Array'],
      ['no index', [out], TypeError, 'out must be a Float64Array'],
      ['an Int32Array', [new Int32Array(4), 0], TypeError, 'out must be a Float64Array'],
      ['a BigInt64Array (8-byte elements too)', [new BigInt64Array(4), 0], TypeError, 'out must be a Float64Array'],
      ['an array of numbers', [[0, 0], 0], TypeError, 'out must be a Float64Array'],
      ['a string index', [out, '1'], TypeError, 'index must be a number'],
      ['index = length', [out, 3], RangeError, 'index outside out'],
      ['index -1', [out, -1], RangeError, 'index outside out'],
      ['a detached buffer', [detached, 0], RangeError, 'index outside out'],
    ];
    for (const name of ['monotonicInto', 'clockInto'] as const) {
      const fn = native[name] as (...args: unknown[]) => unknown;
      for (const [what, args, type, message] of cases) {
        const e = errorOf(() => fn(...args));
        expect(e, `${name}: ${what}`).toBeInstanceOf(type);
        expect(e.message, `${name}: ${what}`).toBe(message);
      }
    }
    expect([...out]).toEqual([0, 0, 0]);
  });

  it('eventfdWriteStamped: stamps the clock into a BigUint64Array word, then signals the eventfd', () => {
    const fd = native.eventfdCreate(0);
    const words = new BigUint64Array(4);
    const before = process.hrtime.bigint();
    native.eventfdWriteStamped(fd, words, 1);
    expect(words[1]).toBeGreaterThanOrEqual(before);
    expect(words[1]).toBeLessThanOrEqual(process.hrtime.bigint());
    expect(native.eventfdRead(fd)).toBe(1);
    expect(() => native.eventfdWriteStamped(fd, words, 4)).toThrow(/index outside words/);
    native.close(fd);
  });

  it('pollRead: polls and reads the counter in one call; EAGAIN and timeouts read nothing', () => {
    const a = native.eventfdCreate(0);
    const cancel = native.eventfdCreate(0);
    const out = new Float64Array(2);
    const fds = new Int32Array([a, cancel]);
    expect(native.pollRead(fds, 0, 8, out)).toBe(0); // timeout
    native.eventfdWrite(a, 5);
    const bits = native.pollRead(fds, 0, 8, out);
    expect(bits >>> 0).toBe((0x80000000 | 0b01) >>> 0);
    // as a signed 32-bit number: a small integer to V8, not a heap number made on every interrupt
    expect(bits).toBe(0x80000000 | 0b01);
    expect(bits).toBeLessThan(0);
    expect(out[0]).toBe(5);
    expect(native.eventfdRead(a)).toBe(0); // the read consumed it
    const t = Number(process.hrtime.bigint());
    expect(Math.abs(out[1] - t)).toBeLessThan(5e9); // the same monotonic clock, stamped as poll returned
    native.eventfdWrite(cancel, 1);
    expect(native.pollRead(fds, 0, 8, out)).toBe(0b10); // only the cancel fd: nothing read
    expect(() => native.pollRead(fds, 0, 3 as 4, out)).toThrow(/width must be 4 or 8/);
    native.close(a);
    native.close(cancel);
  });

  it('a buffer keeps its mapping alive after the Mapping object is dropped', async () => {
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const fd = native.memfdCreate('lifetime', 4096);
    const words = new Uint32Array(native.mapFd(fd, 4096, 0).buffer()); // the Mapping is garbage at once
    const check = native.mapFd(fd, 4096, 0);
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    words[7] = 0xfeedface; // would fault (or write into whatever took the address) if unmapped
    expect(new Uint32Array(check.buffer())[7]).toBe(0xfeedface);
    check.close();
    native.close(fd);
  });

  it('a wait blocked in another thread is cancelled through a second eventfd', async () => {
    const irqFd = native.eventfdCreate(0);
    const cancelFd = native.eventfdCreate(0);
    const r = await runWorker({ task: 'wait', irqFd, cancelFd }, () =>
      setTimeout(() => native.eventfdWrite(cancelFd, 1), 50),
    );
    expect(r.bits).toBe(0b10);
    native.close(irqFd);
    native.close(cancelFd);
  });

  it('maps and detaches inside a worker thread too', async () => {
    const fd = native.memfdCreate('worker', 4096);
    const m = native.mapFd(fd, 4096, 0);
    new Uint32Array(m.buffer())[0] = 41;
    const r = await runWorker({ task: 'map', fd });
    expect(r).toEqual({ seen: 41, detachedLength: 0, byteLength: 0 });
    expect(new Uint32Array(m.buffer())[1]).toBe(0xcafef00d);
    m.close();
    native.close(fd);
  });

  it('4-byte reads and writes, pread/pwrite at offsets', () => {
    const path = join(tmp, 'config');
    writeFileSync(path, Buffer.from([0x34, 0x12, 0xe8, 0x11, 0x07, 0x04, 0, 0]));
    const fd = native.open(path);
    expect(native.pread(fd, 0, 2)).toBe(0x1234);
    expect(native.pread(fd, 0, 4)).toBe(0x11e81234);
    native.pwrite(fd, 4, 2, 0x0407 | 0x400);
    expect(native.pread(fd, 4, 2)).toBe(0x0407 | 0x400);
    expect(native.readU32(fd)).toBe(0x11e81234);
    native.writeU32(fd, 0xffffffff);
    expect(native.pread(fd, 4, 4)).toBe(0xffffffff);
    native.close(fd);
    expect(errorOf(() => native.close(fd))).toMatchObject({ code: 'EBADF', syscall: 'close' });
  });
});

describe('port I/O', () => {
  // Some kernels (this project's CI VMs among them) are built without ioperm; there the call must fail
  // with an error naming it. Real in/out on a real 16550 runs in the QEMU guest (npm run test:vm).
  it('grants a port range to this thread and does in/out on it, or names ioperm and the ports in its error', () => {
    let granted = false;
    try {
      native.iopermGrant(0x80, 1);
      granted = true;
    } catch (e) {
      expect(e).toMatchObject({ code: 'ENOSYS', syscall: 'ioperm' });
      expect((e as Error).message).toBe('ioperm ports 0x80+1: Function not implemented (ENOSYS)');
    }
    if (granted) {
      native.outb(0x80, 0); // the POST diagnostic port: harmless to write
      expect(typeof native.inb(0x80)).toBe('number');
      native.iopermRevoke(0x80, 1);
    }
  });

  it('refuses a port range outside 0..0xffff before asking the kernel', () => {
    expect(errorOf(() => native.iopermGrant(0xfffe, 4))).toMatchObject({ code: 'EINVAL', syscall: 'ioperm' });
  });
  it('names every errno through Node (ENOTDIR was missing from the old hand list)', () => {
    expect(errorOf(() => native.open('/etc/passwd/x'))).toMatchObject({
      code: 'ENOTDIR',
      errno: 20,
      syscall: 'open',
      message: expect.stringContaining('(ENOTDIR)'),
    });
  });
});
