// wasmdrv run <driver> --device ID: load, probe, serve requests from --request or standard input.
import { createInterface } from 'node:readline';
import { Option, type Command } from 'commander';
import { Host } from '../host.ts';
import { listSimModels } from '../devices/sim.ts';
import type { Fault, RequestError } from '../faults.ts';
import { decodeResponse, encodeArgs } from '../payload.ts';
import { formatEntry } from '../sandbox/shared.ts';
import type { Limits } from '../grant.ts';
import { existsSync } from 'node:fs';
import { defaultTrustDir, isPackage, loadPackage } from '../package/load.ts';
import { parseManifest } from '../package/manifest.ts';
import { LoadError } from '../faults.ts';
import { watchDriver } from './watch.ts';
import { action, checkDeviceId, readUserFile, wholeNumber } from './common.ts';

export function printFault(f: Fault): void {
  console.error(`fault: ${f.driver}: ${f.kind} during ${f.phase}: ${f.message}`);
  for (const frame of f.stack.slice(0, 8)) console.error(`    at ${frame}`);
  if (f.recorder.length) {
    console.error('  last device events:');
    for (const e of f.recorder.slice(-8)) console.error(`    ${formatEntry(e)}`);
  }
}

/** The sim model names a user may put after sim: in --device. */
export const userModels = (): string[] => listSimModels().map((m) => m.id.slice(4));

const collect = (v: string, prev: string[]) => [...prev, v];

interface RunOptions {
  device: string;
  request: string[];
  json?: boolean;
  deadline?: number;
  memory?: number;
  rearm?: 'irqcontrol' | 'none';
  name?: string;
  watch?: boolean;
  trust?: string;
  allowUnsigned: string[];
  manifest?: string;
  irq?: 'auto' | 'msix' | 'msi' | 'intx';
  allowUnconfinedDma: string[];
}

export function register(program: Command): void {
  program
    .command('run')
    .summary('load a driver onto a device and serve requests')
    .description(
      'Loads the driver, probes the device, then serves requests: each --request in order, or else one request per line on standard input ("OP ARG..."; ARG is u8:/u16:/u32:/u64:N, hex:.., str:.., or a bare number for u32) until end of input. Responses print one per line. A package (.wdrv, docs/packages.md) loads with its ' +
        "manifest's grants once its signature checks out against the trust store.",
    )
    .argument('<driver>', 'the driver: a .wasm file or a .wdrv package')
    .requiredOption('--device <id>', 'the device: uioN or sim:MODEL (see `wasmdrv devices`)')
    .option(
      '--request <request>',
      'a request "OP [ARG...]" (repeatable); without any, read them from standard input',
      collect,
      [],
    )
    .option('--json', 'responses and the final status as JSON lines')
    .option('--deadline <ms>', 'per-call deadline in milliseconds (default 2000)', wholeNumber(1))
    .option('--memory <pages>', 'linear memory limit in 64 KiB pages (default 256)', wholeNumber(1))
    .addOption(
      new Option('--rearm <mode>', 're-enable a UIO line before each wait (irqcontrol: write 1 to /dev/uioN)').choices([
        'irqcontrol',
        'none',
      ]),
    )
    .option('--name <name>', 'the driver name in logs and faults (default: the file name)')
    .option(
      '--watch',
      'hot-reload the driver when its .wasm (or, for an asconfig.json target, its source) changes; runs until Ctrl-C',
    )
    .option('--trust <dir>', 'trust store for package signatures (default $WASMDRV_TRUST or ~/.config/wasmdrv/trust)')
    .option(
      '--allow-unsigned <name>',
      'let driver NAME load unsigned (repeatable; a bare module also needs --manifest for its grant)',
      collect,
      [],
    )
    .option('--manifest <file>', "the operator's manifest (the grant) for a bare module allowed unsigned")
    .addOption(
      new Option('--irq <kind>', 'VFIO: the interrupt to use (default: MSI-X, else MSI, else INTx)').choices([
        'auto',
        'msix',
        'msi',
        'intx',
      ]),
    )
    .option(
      '--allow-unconfined-dma <name>',
      'let package NAME drive a device whose DMA nothing confines (repeatable)',
      collect,
      [],
    )
    .action(action(run));
}

async function run(driverPath: string, o: RunOptions): Promise<number> {
  checkDeviceId(o.device, userModels());
  const bytes = readUserFile(driverPath, 'driver file');
  const limits: Partial<Limits> = {};
  if (o.deadline !== undefined) limits.deadlineMs = o.deadline;
  if (o.memory !== undefined) limits.memoryPages = o.memory;
  const json = !!o.json;
  // A trust policy is configured when a trust store is given (--trust, $WASMDRV_TRUST) or present at
  // the default place: then every driver, bare modules included, must pass it (package/load.ts).
  const trustDir =
    o.trust ?? process.env.WASMDRV_TRUST ?? (existsSync(defaultTrustDir()) ? defaultTrustDir() : undefined);
  const onWarning = (w: string) => console.error(w);
  let manifest;
  if (o.manifest) {
    try {
      manifest = parseManifest(new TextDecoder().decode(readUserFile(o.manifest, 'manifest file')), o.manifest);
    } catch (err) {
      throw new LoadError((err as Error).message);
    }
  }
  const { allowUnsigned, allowUnconfinedDma } = o;
  const host = new Host(
    trustDir !== undefined ? { trust: { trust: trustDir, allowUnsigned, allowUnconfinedDma, onWarning } } : {},
  );
  host.on('log', (e) => console.error(`[${e.driver}] ${e.level}: ${e.message}`));
  // A fault while loading is reported once, by the top level (one line); later ones in full here.
  let loaded = false;
  host.on('fault', (f: Fault) => loaded && printFault(f));
  let failed = false;
  try {
    const dev = host.openDevice(o.device, {
      rearm: o.rearm === 'irqcontrol' ? 'irqcontrol' : undefined,
      vfio: { irq: o.irq as 'auto' | undefined },
    });
    const drv =
      !host.trust && isPackage(bytes)
        ? await loadPackage(host, driverPath, dev, {
            allowUnsigned,
            allowUnconfinedDma,
            name: o.name,
            manifest,
            onWarning,
          })
        : await host.load(driverPath, dev, { name: o.name, limits, manifest });
    loaded = true;
    for (const t of host.status().taints) console.error(`host tainted: ${t}`);
    const serve = async (line: string): Promise<void> => {
      const words = line.trim().split(/\s+/).filter(Boolean);
      if (!words.length || words[0].startsWith('#')) return;
      const op = Number(words[0]);
      if (!Number.isInteger(op) || op < 0) {
        console.error(`request "${line.trim()}": the op must be a whole number`);
        failed = true;
        return;
      }
      let payload: Uint8Array;
      try {
        payload = encodeArgs(words.slice(1));
      } catch (err) {
        console.error(`request "${line.trim()}": ${(err as Error).message}`);
        failed = true;
        return;
      }
      try {
        const r = decodeResponse(await drv.request(op, payload));
        if (json) console.log(JSON.stringify({ op, ok: true, ...r }));
        else console.log(`op ${op}: ${r.bytes} bytes${r.u32.length ? ` u32 [${r.u32.join(', ')}]` : ''} hex ${r.hex}`);
      } catch (err) {
        failed = true;
        if (json)
          console.log(
            JSON.stringify({ op, ok: false, error: (err as Error).message, code: (err as RequestError).code }),
          );
        else console.error(`op ${op}: ${(err as Error).message}`);
      }
    };
    const unwatch = o.watch ? watchDriver(drv, driverPath, (s) => console.error(`[watch] ${s}`)) : undefined;
    if (o.request.length) {
      for (const r of o.request) await serve(r);
    } else {
      const rl = createInterface({ input: process.stdin, terminal: false });
      for await (const line of rl) await serve(line);
    }
    if (unwatch) {
      // Watching keeps the driver up after the input ends, until Ctrl-C.
      await new Promise<void>((done) => process.once('SIGINT', () => done()));
      unwatch();
    }
    const st = drv.status();
    if (json)
      console.log(
        JSON.stringify({
          status: {
            ...st,
            lastFault: st.lastFault ? { kind: st.lastFault.kind, message: st.lastFault.message } : undefined,
          },
        }),
      );
    else
      console.error(
        `${drv.name}: ${st.state}; ${st.stats.regReads} reads, ${st.stats.regWrites} writes, ${st.stats.interrupts} interrupts, ${st.stats.requests} requests, ${st.stats.faults} faults`,
      );
    if (drv.state !== 'running') failed = true;
  } finally {
    await host.close();
  }
  return failed ? 1 : 0;
}
