// wasmdrv net up <device> [--tap NAME] [--driver FILE] [--json]: drive a NIC with the sandboxed e1000
// driver (under its manifest's grant) and attach it to a TAP interface until SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Host } from '../host.ts';
import { packageRoot } from '../native.ts';
import { grantFor, parseManifest } from '../package/manifest.ts';
import { TapBridge } from '../net/tap.ts';

export const NET_USAGE = `usage: wasmdrv net up <uioN|sim:e1000> [--tap NAME] [--driver FILE] [--wait-us N] [--json]
  Loads the e1000 driver on the device (UIO lines are re-armed through irqcontrol), creates the TAP
  interface NAME (default: the kernel's tapN) with the NIC's MAC and link state, brings it up and moves
  frames both ways until SIGINT or SIGTERM. Prints one line when ready, and the counters at the end.`;

export async function cmdNet(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { tap: { type: 'string' }, driver: { type: 'string' }, 'wait-us': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' }, debug: { type: 'boolean' } },
  });
  if (values.help) {
    console.log(NET_USAGE);
    return 0;
  }
  if (positionals[0] !== 'up' || positionals.length !== 2) {
    console.error(`wasmdrv net: want "net up <device>"\n${NET_USAGE}`);
    return 2;
  }
  const device = positionals[1];
  const waitUs = values['wait-us'] === undefined ? undefined : Number(values['wait-us']);
  if (waitUs !== undefined && !(Number.isInteger(waitUs) && waitUs >= 0)) {
    console.error(`wasmdrv net: --wait-us "${values['wait-us']}" is not a whole number of microseconds`);
    return 2;
  }
  const root = packageRoot();
  const manifestPath = join(root, 'guest-drivers', 'e1000', 'manifest.json');
  const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath);
  const host = new Host();
  host.on('log', (e) => console.error(`[${e.driver}] ${e.level}: ${e.message}`));
  host.on('fault', (f) => console.error(`[${f.driver}] fault ${f.kind}: ${f.message}`));
  try {
    const dev = host.openDevice(device, { rearm: 'irqcontrol' });
    const { grant, limits } = grantFor(manifest, dev.spec, manifestPath);
    const drv = await host.load(values.driver ?? join(root, 'build', 'drivers', 'e1000.wasm'), dev, { name: 'e1000', grant, limits });
    const bridge = await TapBridge.open(drv, { tap: values.tap, waitUs });
    const ready = { tap: bridge.name, mac: bridge.mac, device, link: bridge.stats.linkUp ? 'up' : 'down' };
    console.log(values.json ? JSON.stringify({ ready }) : `net: ${bridge.name} up on ${device}, MAC ${bridge.mac}, link ${ready.link}`);
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
    await bridge.close();
    console.log(values.json ? JSON.stringify({ stats: bridge.stats }) : `net: ${bridge.name}: ${JSON.stringify(bridge.stats)}`);
    return drv.state === 'running' ? 0 : 1;
  } catch (err) {
    // A device, driver or interface that cannot be set up: one line naming it (the stack with --debug).
    console.error(values.debug ? (err as Error).stack : `wasmdrv net: ${(err as Error).message}`);
    return 1;
  } finally {
    await host.close();
  }
}
