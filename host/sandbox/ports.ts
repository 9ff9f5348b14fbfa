// WIT interface `ports`: port_count, port_size, io_in8..32, io_out8..32 (x86 I/O ports, or a
// simulated device's port regions). Same bounds/alignment rule as the registers (registers.ts), then
// the grant's in/out policy, then one access of the width.

import { FaultError } from '../faults.ts';
import { portPolicy } from '../grant.ts';
import { type HostContext, where } from './host-context.ts';
import { accessFault, accessFits } from './registers.ts';
import { OP, STAT } from './shared.ts';

export function portImports(ctx: HostContext) {
  const { label, shared, native } = ctx;
  const s = ctx.session;
  const stats = shared.stats;
  const ports = s.ports;
  const nPorts = ports.length;
  const policies = ports.map((_, i) => portPolicy(ctx.grant, i));
  const portSize = (r: number) => ports[r].size;
  const check = (r: number, off: number, width: number): void => {
    if (r >>> 0 >= nPorts || !accessFits(off, width, ports[r].size))
      accessFault(label, 'port region', r, off, width, nPorts, portSize);
  };

  const portIn =
    (width: 1 | 2 | 4) =>
    (r: number, off: number): number => {
      off >>>= 0;
      check(r, off, width);
      if (!policies[r].read)
        throw new FaultError(
          'access-denied',
          `${label}: ${where('port region', r, off, width)}: the grant does not allow in`,
        );
      const p = ports[r];
      let v: number;
      if (p.sim >= 0) {
        s.tick();
        v = s.access!.portIn(p.sim, off, width);
        s.checkGuestErrors();
      } else {
        const port = p.base + off;
        v = width === 1 ? native.inb(port) : width === 2 ? native.inw(port) : native.inl(port);
      }
      stats[STAT.portIns]++;
      shared.record(OP.in, r, off, width, v, 0);
      return v | 0;
    };
  const portOut =
    (width: 1 | 2 | 4) =>
    (r: number, off: number, value: number): void => {
      off >>>= 0;
      check(r, off, width);
      if (!policies[r].write)
        throw new FaultError(
          'access-denied',
          `${label}: ${where('port region', r, off, width)}: the grant does not allow out`,
        );
      const v = width === 4 ? value >>> 0 : value & (width === 2 ? 0xffff : 0xff);
      shared.record(OP.out, r, off, width, v, 0);
      stats[STAT.portOuts]++;
      const p = ports[r];
      if (p.sim >= 0) {
        s.tick();
        s.access!.portOut(p.sim, off, width, v);
        s.checkGuestErrors();
      } else {
        const port = p.base + off;
        if (width === 1) native.outb(port, v);
        else if (width === 2) native.outw(port, v);
        else native.outl(port, v);
      }
    };

  return {
    port_count: () => nPorts,
    port_size: (r: number) => {
      if (r < 0 || r >= nPorts)
        throw new FaultError('bad-region', `${label}: port region ${r}: no such port region (granted: ${nPorts})`);
      return ports[r].size;
    },
    io_in8: portIn(1),
    io_in16: portIn(2),
    io_in32: portIn(4),
    io_out8: portOut(1),
    io_out16: portOut(2),
    io_out32: portOut(4),
  };
}
