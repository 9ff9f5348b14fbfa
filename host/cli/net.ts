// wasmdrv net up <device> [--tap NAME] [--driver FILE] [--json]: drive a NIC with the sandboxed e1000
// driver (under its manifest's grant) and attach it to a TAP interface until SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Host } from '../host.ts';
import { packageRoot } from '../native.ts';
import { grantFor, parseManifest } from '../package/manifest.ts';
import { TapBridge } from '../net/tap.ts';
import { E1000Client, E1000_DMA_BYTES } from '../net/e1000.ts';
import { action, checkDeviceId, wholeNumber } from './common.ts';
import { userModels } from './run.ts';

export function register(program: Command): void {
  const net = program.command('net').summary('network interfaces driven by sandboxed drivers');
  net
    .command('up')
    .summary('the e1000 driver on a device, bridged to a TAP interface until SIGINT/SIGTERM')
    .description(
      "Loads the e1000 driver on the device (UIO lines are re-armed through irqcontrol), creates the TAP interface NAME (default: the kernel's tapN) with the NIC's MAC and link state, brings it up and moves frames both ways until SIGINT or SIGTERM. SIGHUP hot-reloads the driver from its file (the new instance takes the live rings over; one line when the signal is taken, one when the reload is done). SIGUSR1 kills the driver: the supervisor resets the NIC and probes it again (one line with the outage). Prints one line when ready, and the counters at the end.",
    )
    .argument('<device>', 'uioN, vfio:SLOT or sim:e1000')
    .option('--tap <name>', 'the TAP interface name')
    .option('--driver <file>', 'the e1000 driver (default build/drivers/e1000.wasm)')
    .option('--wait-us <n>', 'how long the bridge waits for an interrupt, in microseconds', wholeNumber(0))
    .option('--deadline <ms>', "per-call deadline in milliseconds (default: the manifest's)", wholeNumber(1))
    .option('--json', 'the ready line and the counters as JSON')
    .action(action(netUp));
}

async function netUp(
  device: string,
  values: { tap?: string; driver?: string; waitUs?: number; deadline?: number; json?: boolean },
): Promise<number> {
  checkDeviceId(device, userModels());
  const waitUs = values.waitUs;
  const root = packageRoot();
  const manifestPath = join(root, 'guest-drivers', 'e1000', 'manifest.json');
  const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath);
  const host = new Host();
  host.on('log', (e) => console.error(`[${e.driver}] ${e.level}: ${e.message}`));
  host.on('fault', (f) => console.error(`[${f.driver}] fault ${f.kind}: ${f.message}`));
  try {
    // Under VFIO the host makes the DMA window: the size the e1000 driver's dma_area holds.
    const dev = host.openDevice(device, {
      rearm: 'irqcontrol',
      vfio: { dma: [{ name: 'dma', size: E1000_DMA_BYTES }] },
    });
    const { grant, limits } = grantFor(manifest, dev.spec, manifestPath);
    if (values.deadline !== undefined) limits.deadlineMs = values.deadline;
    const drv = await host.load(values.driver ?? join(root, 'build', 'drivers', 'e1000.wasm'), dev, {
      name: 'e1000',
      grant,
      limits,
    });
    const bridge = await TapBridge.open(drv, { tap: values.tap, waitUs });
    const ready = { tap: bridge.name, mac: bridge.mac, device, link: bridge.stats.linkUp ? 'up' : 'down' };
    console.log(
      values.json
        ? JSON.stringify({ ready })
        : `net: ${bridge.name} up on ${device}, MAC ${bridge.mac}, link ${ready.link}`,
    );
    const driverFile = values.driver ?? join(root, 'build', 'drivers', 'e1000.wasm');
    const nic = new E1000Client(drv);
    const counters = async () => {
      const s = await nic.stats();
      const b = bridge.stats;
      return {
        tpr: Number(s.tpr),
        gprc: Number(s.gprc),
        gptc: Number(s.gptc),
        mpc: Number(s.mpc),
        rnbc: Number(s.rnbc),
        rxBad: Number(s.rxBad),
        toNic: b.toNic,
        toKernel: b.toKernel,
        dropped: b.dropped,
      };
    };
    let hups = 0;
    const onHup = () => {
      const t0 = performance.now();
      // Said at once, before the reload's work: SIGHUPs that arrive while one is still pending merge into
      // one (the kernel keeps one pending signal per kind), so a sender that wants N reloads waits for this.
      hups++;
      console.log(values.json ? JSON.stringify({ reloading: hups }) : `net: reloading (SIGHUP ${hups})`);
      // The device's and the bridge's counters just before the reload (queued ahead of it) and after it.
      const before = counters().catch(() => undefined);
      drv.reload(new Uint8Array(readFileSync(driverFile))).then(
        async (r) => {
          const totalMs = +(performance.now() - t0).toFixed(1);
          const after = await counters().catch(() => undefined);
          const reload = {
            ok: r.ok,
            restored: r.restored,
            swapMs: r.swapMs,
            totalMs,
            error: r.error,
            before: await before,
            after,
          };
          console.log(values.json ? JSON.stringify({ reload }) : `net: reload ${JSON.stringify(reload)}`);
        },
        (err) => console.error(`net: reload failed: ${err instanceof Error ? err.message : err}`),
      );
    };
    process.on('SIGHUP', onHup);
    // SIGUSR1 kills the driver (an outage test): the supervisor resets the NIC and probes it again.
    let killedAt = 0;
    const onUsr1 = () => {
      try {
        killedAt = performance.now();
        drv.kill('killed by SIGUSR1');
      } catch (err) {
        console.error(`net: ${(err as Error).message}`);
      }
    };
    drv.on('restarted', () => {
      if (!killedAt) return;
      const restart = { outageMs: +(performance.now() - killedAt).toFixed(1), restarts: drv.restarts };
      killedAt = 0;
      console.log(values.json ? JSON.stringify({ restart }) : `net: restart ${JSON.stringify(restart)}`);
    });
    process.on('SIGUSR1', onUsr1);
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
    process.off('SIGHUP', onHup);
    process.off('SIGUSR1', onUsr1);
    const onDevice = drv.state === 'running' ? await counters().catch(() => undefined) : undefined;
    await bridge.close();
    console.log(
      values.json
        ? JSON.stringify({ stats: bridge.stats, device: onDevice })
        : `net: ${bridge.name}: ${JSON.stringify(bridge.stats)}; device ${JSON.stringify(onDevice)}`,
    );
    return drv.state === 'running' ? 0 : 1;
  } finally {
    await host.close();
  }
}
