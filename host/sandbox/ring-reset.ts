// The writes that reset a ring device's ring registers (the e1000's CTRL.RST), for the descriptor
// firewall (ring-firewall.ts; design: docs/design.md, "Descriptor firewall", "A device reset").
//
// On real hardware a software reset returns the ring registers to their reset values: base 0,
// length 0, head = tail = 0 (8254x SDM: CTRL.RST resets the MAC's registers; QEMU's e1000e does so
// too, its e1000 clears the bit and resets nothing). The real rings the firewall programmed are then
// gone, and a driver that re-enables the device would have it fetch descriptors from bus address 0.
// So the manifest names each such write (`resetBy`: a bit of a register), the firewall owns those
// registers' writes, passes each one to the device itself and, when it sets a reset bit, waits for
// the (self-clearing) bit to read clear before the host programs the rings it reset afresh.
// Between the reset and the re-program the device is idle: a reset clears its enables (RCTL/TCTL).

import type { Ring, DeviceRegisters } from './ring-check.ts';

/**
 * How long a self-clearing reset bit may stay set before the device is called stuck. Far above what a
 * chip needs (microseconds; Linux's e1000 sleeps 5 ms) and above the e1000 driver's own 100 ms: the host
 * must not be the stricter party when a device process (bench/native.c's polling e1000) or an emulated
 * CPU on a loaded machine is late; below the fault campaign's 250 ms trial deadline, so a stuck reset is named.
 */
export const RESET_WAIT_MS = 150;

/** Each trigger register of a firewall's rings: the bits that reset a ring there, and the ring. */
export class ResetTriggers {
  private readonly at = new Map<number, { mask: number; ring: Ring }[]>();

  constructor(rings: Ring[]) {
    for (const ring of rings)
      for (const t of ring.layout.resetBy ?? []) {
        const list = this.at.get(t.offset) ?? [];
        list.push({ mask: (1 << t.bit) >>> 0, ring });
        this.at.set(t.offset, list);
      }
  }

  has(offset: number): boolean {
    return this.at.has(offset);
  }

  offsets(): number[] {
    return [...this.at.keys()];
  }

  /**
   * Pass a write of trigger register `offset` to the device. When it sets reset bits, wait until
   * they read clear (the reset has finished) and return the rings they reset, each once; `stuck` is
   * called (and must throw) when a bit stays set longer than RESET_WAIT_MS.
   */
  write(device: DeviceRegisters, offset: number, value: number, stuck: (ring: Ring, what: string) => never): Ring[] {
    device.write32(offset, value);
    const hit = this.at.get(offset)!.filter((t) => (value & t.mask) !== 0);
    if (!hit.length) return [];
    const mask = hit.reduce((m, t) => m | t.mask, 0) >>> 0;
    const until = performance.now() + RESET_WAIT_MS;
    while ((device.read32(offset) & mask) !== 0)
      if (performance.now() > until)
        stuck(
          hit[0].ring,
          `the device's reset (register 0x${offset.toString(16)} bits 0x${mask.toString(16)}) did not finish within ${RESET_WAIT_MS} ms`,
        );
    return [...new Set(hit.map((t) => t.ring))];
  }
}
