// host/abi.ts's table as types: hostImports(group, impl) accepts an implementation only when it has
// exactly the group's functions, each with its row's parameter count, parameter types and result type
// (i32 -> number, i64 -> bigint). The `@ts-expect-error` lines are the proof at compile time:
// `npm run typecheck` fails if any of them stops being an error. At run time hostImports checks the
// names and parameter counts again, which the assertions below observe.
import { describe, expect, it } from 'vitest';
import { hostImports, IMPORTS, type HostFunc, type HostImports } from '../host/abi.ts';

const dma = {
  dma_window_count: () => 1,
  dma_window_addr: (w: number) => w * 4096,
  dma_window_size: (_w: number) => 4096,
  dma_window_bus: (w: number) => BigInt(w) << 12n,
};

describe("host imports typed by the ABI table's rows", () => {
  it('accepts an implementation that matches its rows and returns it unchanged', () => {
    const impl = hostImports('dma', dma);
    expect(impl).toBe(dma);
    expect(impl.dma_window_bus(2)).toBe(8192n);
    const irq: HostImports<'irq'> = {
      irq_wait: (us: number) => us & 1,
      irq_count: () => 0,
      irq_enable: () => {},
      irq_disable: () => {},
    };
    expect(Object.keys(irq)).toEqual(Object.keys(IMPORTS.irq));
  });

  it('maps i32 to number and i64 to bigint, an empty result to void', () => {
    const read64: HostFunc<typeof IMPORTS.registers.reg_read64> = (_r: number, _off: number) => 0n;
    const write64: HostFunc<typeof IMPORTS.registers.reg_write64> = (_r: number, _off: number, _v: bigint) => {};
    expect(read64(0, 0)).toBe(0n);
    expect(write64(0, 0, 1n)).toBeUndefined();
    // @ts-expect-error an i64 result is a bigint, not a number
    const bad64: HostFunc<typeof IMPORTS.registers.reg_read64> = (_r: number, _off: number) => 0;
    // @ts-expect-error an i64 parameter is a bigint, not a number
    const badArg: HostFunc<typeof IMPORTS.registers.reg_write64> = (_r: number, _off: number, _v: number) => {};
    expect([bad64, badArg]).toHaveLength(2);
  });

  it('refuses a missing function (at compile time and at run time)', () => {
    const { dma_window_bus: _, ...missing } = dma;
    // @ts-expect-error dma_window_bus is missing
    expect(() => hostImports('dma', missing)).toThrow(
      'host imports dma.dma_window_bus: must be a function of 1 parameters',
    );
    // @ts-expect-error an annotated group object must have every row too
    const irq: HostImports<'irq'> = { irq_wait: (us: number) => us, irq_count: () => 0, irq_enable: () => {} };
    expect(irq.irq_count()).toBe(0);
  });

  it('refuses a function the group does not have', () => {
    const extra = { ...dma, dma_window_flags: (_w: number) => 0 };
    // @ts-expect-error dma_window_flags is not in the dma group
    expect(() => hostImports('dma', extra)).toThrow('host imports dma.dma_window_flags: is not in the ABI');
    // @ts-expect-error reg_read8 belongs to registers, not dma
    expect(() => hostImports('dma', { ...dma, reg_read8: (_r: number, _o: number) => 0 })).toThrow(/reg_read8/);
    const irq: HostImports<'irq'> = {
      irq_wait: (us: number) => us,
      irq_count: () => 0,
      irq_enable: () => {},
      irq_disable: () => {},
      // @ts-expect-error an annotated group object has no room for another function
      irq_mask: () => {},
    };
    expect(irq.irq_count()).toBe(0);
  });

  it('refuses a wrong parameter count, fewer or more', () => {
    // @ts-expect-error dma_window_size takes the window index
    expect(() => hostImports('dma', { ...dma, dma_window_size: () => 4096 })).toThrow(
      'host imports dma.dma_window_size: must be a function of 1 parameters',
    );
    // @ts-expect-error dma_window_count takes no parameters
    expect(() => hostImports('dma', { ...dma, dma_window_count: (_w: number) => 1 })).toThrow(/dma_window_count/);
    const svc = {
      log: (_level: number, _ptr: number, _len: number) => {},
      clock_ns: () => 0n,
      sleep_us: (_us: number) => 0,
      panic: (_ptr: number, _len: number) => {},
    };
    expect(hostImports('services', svc)).toBe(svc);
    // @ts-expect-error log takes (level, ptr, len): a host function that dropped len would read garbage
    expect(() => hostImports('services', { ...svc, log: (_level: number, _ptr: number) => {} })).toThrow(/log/);
  });

  it('refuses a wrong parameter or result type', () => {
    // @ts-expect-error dma_window_bus returns an i64: a bigint, not a number
    expect(hostImports('dma', { ...dma, dma_window_bus: (w: number) => w })).toBeDefined();
    // @ts-expect-error the window index is an i32: a number, not a string
    expect(hostImports('dma', { ...dma, dma_window_addr: (w: string) => w.length })).toBeDefined();
    // @ts-expect-error dma_window_count returns an i32: a number
    expect(hostImports('dma', { ...dma, dma_window_count: () => 'one' })).toBeDefined();
  });
});
