// The wasmdrv command line.
//
//   wasmdrv devices [--json]                       UIO devices in sysfs and the simulated models
//   wasmdrv run <driver.wasm> --device <id> [...]  load, probe, serve requests, log
//   wasmdrv demo [--device <id>] [--json]          the edu tour (npm start)
//
// Exit codes: 0 success, 1 a driver or device failed, 2 bad usage or input.

import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Host } from './host.ts';
import { discoverUio } from './devices/uio.ts';
import { listSimModels } from './devices/sim.ts';
import { LoadError, RequestError, type Fault } from './faults.ts';
import { decodeResponse, encodeArgs } from './payload.ts';
import { packageRoot } from './native.ts';
import { formatEntry } from './sandbox/shared.ts';
import type { Limits } from './sandbox/instance.ts';
import { runDemo } from './demo.ts';
import { cmdFaultCampaign } from './cli/fault-campaign.ts';
import { cmdBench } from './cli/bench.ts';
import { cmdFuzz } from './cli/fuzz.ts';
import { cmdCall, cmdReload, cmdServe, cmdStatus } from './cli/service.ts';
import { watchDriver } from './cli/watch.ts';
import { cmdNet } from './cli/net.ts';
import { cmdInspect, cmdKeygen, cmdPack, cmdSign, cmdVerify } from './cli/package.ts';
import { defaultTrustDir, isPackage, loadPackage } from './package/load.ts';
import { parseManifest } from './package/manifest.ts';
import { existsSync, readFileSync } from 'node:fs';

const USAGE = `usage:
  wasmdrv devices [--json]
  wasmdrv run <driver.wasm> --device <uioN|sim:MODEL> [--request "OP [ARG...]"]... [options]
      Loads the driver, probes the device, then serves requests: each --request in order, or else
      one request per line on standard input ("OP ARG..."; ARG is u8:/u16:/u32:/u64:N, hex:.., str:..,
      or a bare number for u32) until end of input. Responses print one per line.
      --json               responses and the final status as JSON lines
      --deadline MS        per-call deadline (default 2000)
      --memory PAGES       linear memory limit in 64 KiB pages (default 256)
      --rearm irqcontrol   re-enable a UIO line by writing 1 to /dev/uioN before each wait
      --watch              hot-reload the driver when its .wasm changes (or its source, rebuilt with
                           asc when the .wasm is an asconfig.json target); runs until Ctrl-C
      A package (.wdrv, see docs/packages.md) loads with its manifest's grants after its signature
      checks out against the trust store (--trust DIR, default $WASMDRV_TRUST or
      ~/.config/wasmdrv/trust). With a trust store given or present, a bare .wasm is refused too.
      --allow-unsigned NAME  let driver NAME load unsigned (repeatable; a bare module also needs
                           --manifest FILE, the operator's manifest giving its grant)
      --debug              JavaScript stacks on errors
  wasmdrv keygen [--out DIR] [--name NAME]        an ed25519 key pair for signing packages
  wasmdrv pack <dir> [--wasm FILE] [--key KEY] [--out FILE]   manifest.json + the .wasm -> a package
  wasmdrv sign <package> --key KEY [--out FILE]
  wasmdrv verify <package> [--trust DIR] [--device ID]   exit 1 on any problem, each one named
  wasmdrv inspect <package> [--trust DIR] [--json]       manifest, imports, exports, signature, grants
  wasmdrv fuzz <driver.wasm|package> --model <edu|uart16550|generic> [--execs N] [--jobs N] [--seed S]
               [--out DIR] [--replay FILE] [--minimize FILE] [--json]
      Coverage-guided fuzzing with device-side inputs (register values, interrupt timing, DMA
      contents, requests), deterministic per seed; reproducers in DIR/crashes, plot DIR/coverage.svg.
  wasmdrv serve --config FILE        the daemon: one owner of the devices, clients over a UNIX socket
  wasmdrv call [--socket S] DRIVER OP [ARG...]     a request through the daemon
  wasmdrv status [--socket S] [--json]             each driver's state, restarts and last fault
  wasmdrv reload [--socket S] DRIVER NEW.wasm      hot-reload a driver in the running daemon
      (socket default: $WASMDRV_SOCKET or /run/wasmdrv/wasmdrv.sock; see docs/service.md)
  wasmdrv net up <uioN|sim:e1000> [--tap NAME] [--json]   the e1000 driver bridged to a TAP interface
  wasmdrv demo [--device <uioN|sim:edu>] [--driver FILE] [--json]
      The tour on QEMU's edu device: identify, liveness, factorials 1..12 through interrupts,
      raise-and-count interrupts, a DMA round trip, and a summary.
  wasmdrv fault-campaign [--faults N] [--seed S] [--jobs J] [--deadline MS] [--json]
      Inject N faults (mutated driver binaries, misbehaving devices) and count host crashes,
      writes outside granted memory, detected driver faults by kind, and recoveries.`;

export class UsageError extends Error {}

function limitsFrom(v: Record<string, unknown>): Partial<Limits> {
  const out: Partial<Limits> = {};
  const num = (name: string): number | undefined => {
    if (v[name] === undefined) return undefined;
    const n = Number(v[name]);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} wants a positive whole number, not "${v[name]}"`);
    return n;
  };
  const d = num('deadline');
  if (d !== undefined) out.deadlineMs = d;
  const m = num('memory');
  if (m !== undefined) out.memoryPages = m;
  return out;
}

function printFault(f: Fault): void {
  console.error(`fault: ${f.driver}: ${f.kind} during ${f.phase}: ${f.message}`);
  for (const frame of f.stack.slice(0, 8)) console.error(`    at ${frame}`);
  if (f.recorder.length) {
    console.error('  last device events:');
    for (const e of f.recorder.slice(-8)) console.error(`    ${formatEntry(e)}`);
  }
}

async function cmdDevices(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } } });
  const uio = discoverUio();
  const sims = listSimModels();
  if (values.json) {
    console.log(JSON.stringify({
      uio: uio.map((u) => ({
        id: u.id, name: u.name, version: u.version, devNode: u.devNode,
        maps: u.maps.map((m) => ({ ...m, addr: `0x${m.addr.toString(16)}` })), ports: u.ports,
        pci: u.pci ? { slot: u.pci.slot, vendor: u.pci.vendor, device: u.pci.device, class: u.pci.class } : undefined,
      })),
      sim: sims,
    }));
    return 0;
  }
  if (uio.length === 0) console.log('UIO devices: none (no /sys/class/uio entries)');
  else console.log('UIO devices:');
  for (const u of uio) {
    const pci = u.pci ? ` pci ${u.pci.slot} ${hex4(u.pci.vendor)}:${hex4(u.pci.device)}` : '';
    console.log(`  ${u.id}  ${u.name} ${u.version}${pci}`);
    for (const m of u.maps) console.log(`      map${m.index} ${m.name} addr 0x${m.addr.toString(16)} size 0x${m.size.toString(16)}`);
    for (const p of u.ports) console.log(`      port${p.index} ${p.name} 0x${p.start.toString(16)}+${p.size} ${p.type}`);
  }
  console.log('Simulated devices:');
  for (const s of sims) console.log(`  ${s.id.padEnd(12)} ${s.summary}`);
  return 0;
}

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

async function cmdRun(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      device: { type: 'string' },
      request: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      deadline: { type: 'string' },
      memory: { type: 'string' },
      rearm: { type: 'string' },
      name: { type: 'string' },
      watch: { type: 'boolean' },
      trust: { type: 'string' },
      'allow-unsigned': { type: 'string', multiple: true },
      manifest: { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new UsageError('run wants exactly one driver file');
  if (!values.device) throw new UsageError('run wants --device <uioN|sim:MODEL>');
  if (values.rearm && values.rearm !== 'irqcontrol' && values.rearm !== 'none') throw new UsageError('--rearm takes irqcontrol or none');
  const limits = limitsFrom(values);
  const json = !!values.json;
  // A trust policy is configured when a trust store is given (--trust, $WASMDRV_TRUST) or present at
  // the default place: then every driver, bare modules included, must pass it (package/load.ts).
  const trustDir = values.trust ?? process.env.WASMDRV_TRUST ?? (existsSync(defaultTrustDir()) ? defaultTrustDir() : undefined);
  const allowUnsigned = values['allow-unsigned'] ?? [];
  const onWarning = (w: string) => console.error(w);
  let manifest;
  if (values.manifest) {
    try {
      manifest = parseManifest(readFileSync(values.manifest, 'utf8'), values.manifest);
    } catch (err) {
      throw new LoadError((err as Error).message);
    }
  }
  const host = new Host(trustDir !== undefined ? { trust: { trust: trustDir, allowUnsigned, onWarning } } : {});
  host.on('log', (e) => console.error(`[${e.driver}] ${e.level}: ${e.message}`));
  // A fault while loading is reported once, by the top level (one line); later ones in full here.
  let loaded = false;
  host.on('fault', (f: Fault) => loaded && printFault(f));
  let failed = false;
  try {
    const dev = host.openDevice(values.device, { rearm: values.rearm as 'irqcontrol' | undefined });
    let bytes: Uint8Array | undefined;
    try {
      bytes = new Uint8Array(readFileSync(positionals[0]));
    } catch {
      bytes = undefined; // host.load names the unreadable file
    }
    const drv = !host.trust && bytes && isPackage(bytes)
      ? await loadPackage(host, positionals[0], dev, { allowUnsigned, name: values.name, manifest, onWarning })
      : await host.load(positionals[0], dev, { name: values.name, limits, manifest });
    loaded = true;
    const taints = host.status().taints;
    for (const t of taints) console.error(`host tainted: ${t}`);
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
        if (json) console.log(JSON.stringify({ op, ok: false, error: (err as Error).message, code: (err as RequestError).code }));
        else console.error(`op ${op}: ${(err as Error).message}`);
      }
    };
    const unwatch = values.watch ? watchDriver(drv, positionals[0], (s) => console.error(`[watch] ${s}`)) : undefined;
    if (values.request?.length) {
      for (const r of values.request) await serve(r);
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
    if (json) console.log(JSON.stringify({ status: { ...st, lastFault: st.lastFault ? { kind: st.lastFault.kind, message: st.lastFault.message } : undefined } }));
    else console.error(`${drv.name}: ${st.state}; ${st.stats.regReads} reads, ${st.stats.regWrites} writes, ${st.stats.interrupts} interrupts, ${st.stats.requests} requests, ${st.stats.faults} faults`);
    if (drv.state !== 'running') failed = true;
  } finally {
    await host.close();
  }
  return failed ? 1 : 0;
}

async function cmdDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { device: { type: 'string' }, driver: { type: 'string' }, json: { type: 'boolean' }, rearm: { type: 'string' } },
  });
  return runDemo({
    device: values.device ?? 'sim:edu',
    driver: values.driver ?? join(packageRoot(), 'build', 'drivers', 'edu.wasm'),
    json: !!values.json,
    rearm: values.rearm as 'irqcontrol' | undefined,
  });
}

/**
 * Every subcommand: name -> handler(argv) returning the exit code. A handler throws UsageError for bad
 * usage (exit 2, usage printed) and LoadError for a driver that cannot load (exit 2).
 * New commands live in their own module (host/cli/<name>.ts) and add one line here.
 */
const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  devices: cmdDevices,
  run: cmdRun,
  demo: cmdDemo,
  'fault-campaign': cmdFaultCampaign,
  keygen: cmdKeygen,
  pack: cmdPack,
  sign: cmdSign,
  verify: cmdVerify,
  inspect: cmdInspect,
  bench: cmdBench,
  fuzz: cmdFuzz,
  serve: cmdServe,
  call: cmdCall,
  status: cmdStatus,
  reload: cmdReload,
  net: cmdNet,
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    console.log(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  const handler = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!handler) throw new UsageError(`unknown command "${cmd}"`);
  return handler(rest);
}

// --debug (any command): JavaScript stacks and a fault's Wasm frames and device events on errors.
const args = process.argv.slice(2);
const debug = args.includes('--debug');
main(args.filter((a) => a !== '--debug')).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof UsageError) {
      console.error(`wasmdrv: ${err.message}\n${USAGE}`);
      process.exit(2);
    }
    // A fault while loading (a start function or probe that traps or spins): one line, exit 1.
    const fault = (err as { fault?: Fault }).fault;
    if (fault) {
      if (debug) printFault(fault);
      else console.error(`wasmdrv: ${fault.driver}: ${fault.kind} during ${fault.phase}: ${fault.message.split('\n')[0]}`);
      if (debug) console.error((err as Error).stack);
      process.exit(1);
    }
    const text = err instanceof Error ? err.message : String(err);
    console.error(`wasmdrv: ${debug && err instanceof Error && !(err instanceof LoadError) ? err.stack : text}`);
    process.exit(err instanceof LoadError ? 2 : 1);
  },
);
