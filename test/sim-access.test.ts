// Legal access sizes as data (host/sim/model.ts `valid`, QEMU's MemoryRegionOps.valid), checked once on
// the session's way into a model (host/sim/access.ts): an illegal width on each model is a guest error,
// a read answering all-ones and a write dropped, and the model never sees it.
import { afterEach, describe, expect, it } from 'vitest';
import { openSimDevice, type SimDevice } from '../host/devices/sim.ts';
import { fuzzDeviceSpec } from '../host/fuzz/device.ts';
import { loadNative } from '../host/native.ts';
import { DeviceSession } from '../host/sandbox/session.ts';
import type { FuzzDevice } from '../host/sim/fuzz.ts';
import { describeSim } from '../host/sim/spec.ts';

let dev: SimDevice | undefined;
let session: DeviceSession | undefined;
afterEach(() => {
  session?.close();
  dev?.close();
  session = dev = undefined;
});

function open(model: string, options: Record<string, unknown> = {}) {
  dev = openSimDevice(model, options);
  const errors: string[] = [];
  session = new DeviceSession(dev.spec, { virtual: true, onGuestError: (m) => errors.push(m) });
  return { s: session, errors };
}

describe('access sizes a model declares, checked once', () => {
  it('edu: 4 bytes below 0x80, 4 or 8 from 0x80 on (edu.c)', () => {
    const { s, errors } = open('edu');
    expect(s.readSim(0, 0x00, 4)).toBe(0x010000ed);
    expect(s.readSim(0, 0x00, 1)).toBe(0xff);
    expect(s.readSim(0, 0x00, 8)).toBe(0xffffffffffffffffn);
    s.writeSim(0, 0x04, 2, 0x1234); // dropped: the liveness register keeps its power-on 0
    expect(s.readSim(0, 0x04, 4)).toBe(0);
    s.writeSim(0, 0x80, 8, 0x0100_0040n);
    expect(s.readSim(0, 0x80, 8)).toBe(0x0100_0040n);
    expect(s.readSim(0, 0x80, 2)).toBe(0xffff);
    expect(errors).toEqual([
      'edu: 1-byte read at 0x0: registers below 0x80 take 4-byte accesses',
      'edu: 8-byte read at 0x0: registers below 0x80 take 4-byte accesses',
      'edu: 2-byte write at 0x4: registers below 0x80 take 4-byte accesses',
      'edu: 2-byte read at 0x80: registers from 0x80 on take 4- or 8-byte accesses',
    ]);
  });

  it('uart16550: 1-byte ports (8-bit registers)', () => {
    const { s, errors } = open('uart16550');
    s.access!.portOut(0, 7, 1, 0x5a); // scratch
    expect(s.access!.portIn(0, 7, 1)).toBe(0x5a);
    expect(s.access!.portIn(0, 6, 2)).toBe(0xffff);
    s.access!.portOut(0, 4, 4, 0x11111111); // dropped: scratch keeps its byte
    expect(s.access!.portIn(0, 7, 1)).toBe(0x5a);
    expect(errors).toEqual([
      'uart16550: 2-byte in at +6: registers take 1-byte accesses',
      'uart16550: 4-byte out at +4: registers take 1-byte accesses',
    ]);
  });

  it('e1000: 4-byte registers', () => {
    const { s, errors } = open('e1000');
    const status = s.readSim(0, 0x8, 4);
    expect(s.readSim(0, 0x8, 2)).toBe(0xffff);
    expect(s.readSim(0, 0x8, 8)).toBe(0xffffffffffffffffn);
    s.writeSim(0, 0x5400, 2, 0); // RAL0 keeps the MAC
    expect(s.readSim(0, 0x8, 4)).toBe(status);
    expect(s.readSim(0, 0x5400, 4)).not.toBe(0);
    expect(errors).toEqual([
      'e1000: 2-byte read at 0x8: registers take 4-byte accesses',
      'e1000: 8-byte read at 0x8: registers take 4-byte accesses',
      'e1000: 2-byte write at 0x5400: registers take 4-byte accesses',
    ]);
  });

  it('faulty: the wrapped model’s sizes apply (its description is the inner one)', () => {
    const { s, errors } = open('faulty', { inner: 'e1000', innerOptions: {} });
    expect(s.readSim(0, 0x8, 1)).toBe(0xff);
    expect(errors).toEqual(['faulty: 1-byte read at 0x8: registers take 4-byte accesses']);
  });

  it('fuzz: over a model its sizes; generic takes every width from the input', () => {
    const native = loadNative();
    const dmaFd = native.memfdCreate('sim-access-fuzz-dma', 65536);
    const errors: string[] = [];
    try {
      session = new DeviceSession(fuzzDeviceSpec('edu', { dmaFd }), {
        virtual: true,
        onGuestError: (m) => errors.push(m),
      });
    } finally {
      native.close(dmaFd); // the session holds its own mapping
    }
    const fuzz = session.model as FuzzDevice;
    fuzz.load(Uint8Array.from([0, 0x78, 0x56, 0x34, 0x12]), 0);
    expect(session.readSim(0, 0x00, 2)).toBe(0xffff); // refused before the model: no input consumed
    expect(fuzz.readCount).toBe(0);
    expect(session.readSim(0, 0x00, 4)).toBe(0x12345678); // control byte 0: the next 4 input bytes
    expect(errors).toEqual(['fuzz: 2-byte read at 0x0: registers below 0x80 take 4-byte accesses']);
    const generic = describeSim('fuzz', { inner: 'generic', stream: new Uint8Array() });
    expect(generic.regions[0].valid).toEqual([{ min: 1, max: 8 }]);
    expect(generic.ports[0].valid).toEqual([{ min: 1, max: 4 }]);
  });

  it('bench: plain memory, every width, and no model behind it', () => {
    const desc = describeSim('bench', {});
    expect(desc.regions[0]).toMatchObject({ memory: true, valid: [{ min: 1, max: 8 }] });
    const { s } = open('bench');
    expect(s.regions[0].sim).toBe(-1); // mapped: the sandbox's typed-array access, never the access check
    s.regions[0].u8![3] = 7;
    expect(s.regions[0].u32![0]).toBe(0x07000000);
  });
});
