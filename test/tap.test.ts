// The TAP bridge on the host: the kernel's network stack (in a network namespace this test creates and
// deletes) uses the sandboxed e1000 driver on the simulated NIC through a real TAP interface. The far
// end of the simulated wire is played by test/fixtures/tap-peer.mjs with raw frames; no traffic leaves
// the namespace. Needs root (CAP_NET_ADMIN, /dev/net/tun): the project's tests run as root.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { root } from './helpers.ts';

const ns = `wdtap${process.pid}`;

describe('TAP bridge: the kernel talks through the sandboxed e1000', () => {
  afterAll(() => {
    try {
      execFileSync('ip', ['netns', 'del', ns]);
    } catch {
      /* never created */
    }
  });

  it('ARP and ping both ways, the interface follows the NIC (MAC, carrier), and goes away on close', () => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const stdout = execFileSync(
      'ip',
      ['netns', 'exec', ns, process.execPath, join(root, 'test', 'fixtures', 'tap-peer.mjs'), root],
      { timeout: 60_000 },
    ).toString();
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(r.tap).toBe('wdtap0');
    expect(r.tapMac).toBe('02:00:00:77:00:01');
    expect(r.carrier).toBe('1');
    expect(r.arpReplyMac).toBe('02:00:00:77:00:01');
    expect(r.echoRepliesFromKernel).toBe(5);
    expect(r.kernelPing).toEqual({ code: 0, received: 4 });
    expect(r.carrierDown).toBe(true);
    expect(r.carrierUp).toBe(true);
    expect(r.bridge.errors).toBe(0);
    expect(r.bridge.dropped).toBe(0);
    expect(r.bridge.toKernel).toBeGreaterThanOrEqual(10);
    expect(r.bridge.toNic).toBeGreaterThanOrEqual(10);
    expect(r.tapGone).toBe(true);
  }, 90_000);
});
