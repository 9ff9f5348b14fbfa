// One simulated-device spec (host/sim/spec.ts): the device a user opens (--device sim:MODEL), the
// device the fuzzer's driver sees and a campaign target's device have the model's shape, whoever
// supplies the fds: the same regions, port ranges (the model's nominal base), DMA windows and interrupt.
import { afterAll, describe, expect, it } from 'vitest';
import { TARGETS, type TargetName, targetSpec } from '../host/campaign/targets.ts';
import type { DeviceSpec } from '../host/device-spec.ts';
import { openSimDevice, type SimDevice } from '../host/devices/sim.ts';
import { fuzzDeviceSpec } from '../host/fuzz/device.ts';
import { UART_BASE } from '../host/sim/uart16550.ts';

/** What a driver sees of a device: everything but where the bytes live and what the session builds. */
const shape = (s: DeviceSpec) => ({
  pci: s.pci,
  regions: s.regions.map((r) => ({ name: r.name, size: r.size, source: r.source.kind })),
  ports: s.ports,
  dma: s.dma.map((w) => ({ name: w.name, size: w.size, bus: w.bus })),
  irq: s.irq?.kind ?? null,
});

const opened: SimDevice[] = [];
afterAll(() => {
  for (const d of opened) d.close();
});

describe('one simulated-device spec for three users', () => {
  for (const model of ['edu', 'uart16550', 'e1000'] as TargetName[]) {
    it(`${model}: sim:${model}, the fuzzer's device and the campaign target have the same shape`, () => {
      const dev = openSimDevice(model);
      opened.push(dev);
      const fuzz = fuzzDeviceSpec(model);
      const t = TARGETS[model];
      const state = new SharedArrayBuffer(t.stateBytes);
      const want = shape(dev.spec);
      expect(shape(fuzz)).toEqual(want);
      // a trial's device: the target's model (a mutant driver's trial) or the misbehaving one around it
      for (const [m, o] of [
        [model, {}],
        ['faulty', { inner: model }],
      ] as const)
        expect(shape(targetSpec(t, { dmaFd: -1 }, { state, irqFd: -1, kickFd: -1 }, m, o)), m).toEqual(want);
      expect(t.window).toBe(dev.spec.dma[0]?.size ?? 0); // the job's memfd holds the model's window
      expect(want.regions.length + want.ports.length).toBeGreaterThan(0);
    });
  }

  it("the UART's port base is the model's: COM2 by default, the option's when given", () => {
    const a = openSimDevice('uart16550');
    const b = openSimDevice('uart16550', { base: 0x3f8 });
    opened.push(a, b);
    expect(a.spec.ports).toEqual([{ name: 'uart', base: UART_BASE, size: 8, source: { kind: 'sim', index: 0 } }]);
    expect(fuzzDeviceSpec('uart16550').ports[0].base).toBe(UART_BASE);
    expect(b.spec.ports[0].base).toBe(0x3f8);
  });

  it('a device fed from outside gets its kick eventfd; the others none', () => {
    const uart = openSimDevice('uart16550');
    const edu = openSimDevice('edu');
    opened.push(uart, edu);
    expect(uart.spec.sim!.kickFd).toBeGreaterThanOrEqual(0);
    expect(edu.spec.sim!.kickFd).toBe(-1);
    expect(edu.spec.irq).toEqual({ kind: 'sim', eventfd: expect.any(Number) });
  });

  it('the benchmark device: plain-memory regions and DMA on memfds, an eventfd interrupt', () => {
    const dev = openSimDevice('bench');
    opened.push(dev);
    expect(dev.spec.regions[0].source.kind).toBe('fd');
    expect(dev.spec.dma[0].source.kind).toBe('fd');
    expect(dev.spec.irq?.kind).toBe('eventfd');
  });
});
