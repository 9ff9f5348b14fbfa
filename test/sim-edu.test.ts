// The simulated edu device against QEMU's edu.c behaviour, driven directly (no driver, no sandbox).
import { describe, expect, it } from 'vitest';
import { edu, EDU_ID } from '../host/sim/edu.ts';
import type { SimContext } from '../host/sim/model.ts';
import { SimAccess } from '../host/sim/access.ts';

function device(options = {}) {
  let now = 0;
  const irq: boolean[] = [];
  const errors: string[] = [];
  const ram = new Uint8Array(65536);
  const base = 0x0100_0000n;
  const ctx: SimContext = {
    now: () => now,
    setIrq: (level) => irq.push(level),
    dmaRead: (bus, len) =>
      bus >= base && bus + BigInt(len) <= base + 65536n
        ? ram.slice(Number(bus - base), Number(bus - base) + len)
        : null,
    dmaWrite: (bus, data) => {
      if (bus < base || bus + BigInt(data.length) > base + 65536n) return false;
      ram.set(data, Number(bus - base));
      return true;
    },
    guestError: (m) => errors.push(m),
  };
  const desc = edu.describe(options);
  const m = edu.create(ctx, new SharedArrayBuffer(desc.stateBytes), 0, options);
  const advance = (ns: number) => {
    now += ns;
    m.tick(now);
  };
  // What a session hands the model: every access through the declared rules (host/sim/access.ts).
  const bus = new SimAccess(desc, m, ctx.guestError);
  return { m, bus, irq, errors, ram, advance };
}

describe('simulated edu', () => {
  it('identifies itself and inverts the liveness register', () => {
    const { m } = device();
    expect(m.read(0, 0x00, 4)).toBe(EDU_ID);
    m.write(0, 0x04, 4, 0x12345678);
    expect(m.read(0, 0x04, 4)).toBe(~0x12345678 >>> 0);
  });

  it('answers a wrong access width with all-ones and logs a guest error', () => {
    const { bus, errors } = device();
    expect(bus.read(0, 0x00, 2)).toBe(0xffff);
    expect(bus.read(0, 0x00, 8)).toBe(0xffffffffffffffffn);
    bus.write(0, 0x04, 1, 5);
    expect(bus.read(0, 0x04, 4)).toBe(0);
    expect(errors).toHaveLength(3);
    expect(errors[0]).toContain('2-byte read at 0x0');
    bus.write(0, 0x80, 8, 0x0100_0010n); // the DMA registers take 8 bytes too
    expect(bus.read(0, 0x80, 8)).toBe(0x0100_0010n);
    expect(errors).toHaveLength(3);
  });

  it('computes a factorial asynchronously with the computing bit, and raises 0x1 when asked', () => {
    const { m, irq, advance } = device({ factorialDelayNs: 1000 });
    m.write(0, 0x20, 4, 0x80);
    m.write(0, 0x08, 4, 12);
    expect(Number(m.read(0, 0x20, 4)) & 1).toBe(1);
    m.write(0, 0x08, 4, 3); // ignored while computing, as in edu.c
    advance(999);
    expect(Number(m.read(0, 0x20, 4)) & 1).toBe(1);
    advance(1);
    expect(Number(m.read(0, 0x20, 4)) & 1).toBe(0);
    expect(m.read(0, 0x08, 4)).toBe(479001600);
    expect(m.read(0, 0x24, 4)).toBe(1);
    expect(irq).toEqual([true]);
    m.write(0, 0x64, 4, 1);
    expect(m.read(0, 0x24, 4)).toBe(0);
    expect(irq).toEqual([true, false]);
  });

  it('wraps n! to 32 bits like the device register, at once even for a huge n', () => {
    const f32 = (n: number) => {
      let f = 1n;
      for (let i = 2n; i <= BigInt(n); i++) f *= i;
      return Number(f & 0xffffffffn);
    };
    for (const n of [13, 33, 34, 40, 0xffffffff]) {
      const { m, advance } = device();
      m.write(0, 0x08, 4, n);
      advance(1e6);
      expect(m.read(0, 0x08, 4), `${n}!`).toBe(n > 100 ? 0 : f32(n));
    }
  });

  it('raises and acknowledges interrupt bits through 0x60/0x64', () => {
    const { m, irq } = device();
    m.write(0, 0x60, 4, 0x1000);
    m.write(0, 0x60, 4, 0x2000);
    expect(m.read(0, 0x24, 4)).toBe(0x3000);
    m.write(0, 0x64, 4, 0x1000);
    expect(irq.at(-1)).toBe(true);
    m.write(0, 0x64, 4, 0x2000);
    expect(irq.at(-1)).toBe(false);
  });

  it('moves data between RAM and its buffer by DMA, with the 0x100 interrupt', () => {
    const { m, ram, advance, irq } = device({ dmaDelayNs: 100 });
    ram.set([1, 2, 3, 4], 16);
    m.write(0, 0x80, 8, 0x0100_0010n);
    m.write(0, 0x88, 8, 0x40000n);
    m.write(0, 0x90, 8, 4n);
    m.write(0, 0x98, 8, 0x1n | 0x4n);
    expect(Number(m.read(0, 0x98, 8)) & 1).toBe(1);
    m.write(0, 0x80, 8, 0n); // frozen while running
    advance(100);
    expect(m.read(0, 0x98, 8)).toBe(0x4n);
    expect(m.read(0, 0x24, 4)).toBe(0x100);
    expect(irq).toEqual([true]);
    m.write(0, 0x64, 4, 0x100);
    // and back out to another place in RAM
    m.write(0, 0x80, 8, 0x40000n);
    m.write(0, 0x88, 8, 0x0100_0100n);
    m.write(0, 0x90, 8, 4n);
    m.write(0, 0x98, 8, 0x1n | 0x2n);
    advance(100);
    expect([...ram.subarray(0x100, 0x104)]).toEqual([1, 2, 3, 4]);
  });

  it('refuses a DMA outside its buffer or outside every window as a guest error', () => {
    const { m, advance, errors } = device({ dmaDelayNs: 1 });
    m.write(0, 0x80, 8, 0x0100_0000n);
    m.write(0, 0x88, 8, 0x40000n + 4090n);
    m.write(0, 0x90, 8, 16n);
    m.write(0, 0x98, 8, 1n);
    advance(1);
    expect(errors.at(-1)).toContain('outside the device buffer');
    m.write(0, 0x80, 8, 0x0200_0000n);
    m.write(0, 0x88, 8, 0x40000n);
    m.write(0, 0x98, 8, 1n);
    advance(1);
    expect(errors.at(-1)).toContain('hits no window');
  });
});

describe('edu in virtual device time across sessions', () => {
  it('a session that follows another continues the device clock, so work the first started completes', async () => {
    const { openSimDevice } = await import('../host/devices/sim.ts');
    const { DeviceSession } = await import('../host/sandbox/session.ts');
    const dev = openSimDevice('edu');
    try {
      const a = new DeviceSession(dev.spec, { virtual: true });
      a.advance(a.now() + 30e9); // 30 s of device time pass in the first session
      a.writeSim(0, 0x08, 4, 12); // start 12! (edu computes it as deferred work)
      expect(Number(a.readSim(0, 0x20, 4)) & 1).toBe(1); // computing
      const startedAt = a.now();
      a.close(); // the driver is killed here, mid-computation
      const b = new DeviceSession(dev.spec, { virtual: true });
      expect(b.now()).toBeGreaterThanOrEqual(startedAt); // device time did not jump back
      b.advance(b.now() + b.untilNextEvent());
      expect(Number(b.readSim(0, 0x20, 4)) & 1).toBe(0); // finished
      expect(Number(b.readSim(0, 0x08, 4))).toBe(479001600);
      b.close();
    } finally {
      dev.close();
    }
  });
});

describe('edu interrupt line across sessions', () => {
  it('a line level left high by a killed session is re-read from the device, so the next interrupt is an edge', async () => {
    const { openSimDevice } = await import('../host/devices/sim.ts');
    const { DeviceSession } = await import('../host/sandbox/session.ts');
    const dev = openSimDevice('edu');
    try {
      // A thread killed inside the stub's acknowledge: the device's status is clear, the stored level still high.
      new Int32Array(dev.spec.sim!.state, 0, 1)[0] = 1;
      const s = new DeviceSession(dev.spec, { virtual: true });
      const before = s.irq!.consume();
      s.writeSim(0, 0x60, 4, 0x1); // raise
      expect(s.irq!.consume()).toBe(before + 1); // counted: the stub saw a rising edge
      s.close();
    } finally {
      dev.close();
    }
  });
});
