// wasmdrv serve | call | status | reload — the daemon and its clients (host/service/).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { action, readUserFile, readUserText, UsageError } from './common.ts';
import { decodeResponse, encodeArgs } from '../payload.ts';
import { parseConfig } from '../service/config.ts';
import { Service } from '../service/daemon.ts';
import { ServiceClient } from '../service/client.ts';
import { systemdNotifier } from '../service/notify.ts';

export const DEFAULT_SOCKET = process.env.WASMDRV_SOCKET ?? '/run/wasmdrv/wasmdrv.sock';
const SOCKET_HELP = "the daemon's socket (default $WASMDRV_SOCKET or /run/wasmdrv/wasmdrv.sock)";

/**
 * Daemon log lines. Under systemd (stderr is the journal: JOURNAL_STREAM is set) each line carries an
 * sd-daemon priority prefix ("<4>" warning, "<6>" info; sd-daemon(3)) that journald turns into the
 * entry's priority; on a terminal the plain "[wasmdrv]" form.
 */
export function say(priority: number, s: string): void {
  if (process.env.JOURNAL_STREAM) for (const line of s.split('\n')) console.error(`<${priority}>${line}`);
  else console.error(`[wasmdrv] ${s}`);
}

export function register(program: Command): void {
  program
    .command('serve')
    .summary('the daemon: one owner of the devices, clients over a UNIX socket (docs/service.md)')
    .requiredOption('--config <file>', 'the service config (JSON)')
    .action(action(cmdServe));
  program
    .command('call')
    .summary('a request through the daemon')
    .argument('<driver>', "the driver's name in the config")
    .argument('<op>', 'the request op (a whole number)')
    .argument('[args...]', 'request arguments: u8:/u16:/u32:/u64:N, hex:.., str:.., or a bare number for u32')
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'the response as JSON')
    .action(action(cmdCall));
  program
    .command('status')
    .summary("each driver's state, restarts and last fault")
    .option('--socket <path>', SOCKET_HELP)
    .option('--json', 'as JSON')
    .action(action(cmdStatus));
  program
    .command('reload')
    .summary('hot-reload a driver in the running daemon')
    .description(
      "Hot-reload a driver in the running daemon. The new file's path is resolved here, against the current directory, before it is sent: the daemon reads it as an absolute path.",
    )
    .argument('<driver>', "the driver's name in the config")
    .argument('<wasm>', 'the new driver binary')
    .option('--socket <path>', SOCKET_HELP)
    .action(action(cmdReload));
}

async function cmdServe(values: { config: string }): Promise<number> {
  const text = readUserText(values.config, 'config file');
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(text, values.config);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const log = (s: string) => say(/fault|refus|fail|error|not applied/i.test(s) ? 4 : 6, s);
  // Type=notify: READY=1 once the socket is bound and every driver probed, RELOADING=1/READY=1 around
  // a config re-read (SIGHUP, the unit's ExecReload), STOPPING=1 on the way out.
  const svc = new Service(config, log, values.config, systemdNotifier(process.env.NOTIFY_SOCKET, log));
  // SIGHUP before the start finished would kill the process by default: take it now, act once started.
  let started = false;
  let hupBeforeStart = false;
  const reread = () => {
    if (!started) {
      hupBeforeStart = true;
      return;
    }
    void svc.reconfigure(() => {
      try {
        return readFileSync(values.config, 'utf8');
      } catch (err) {
        throw new Error(`${values.config}: cannot read: ${(err as Error).message}`);
      }
    });
  };
  process.on('SIGHUP', reread);
  try {
    await svc.start(); // closes what it started and throws on failure: exit 1, no hang
  } catch (err) {
    process.off('SIGHUP', reread);
    // The message names config, entry and field; as a plain error the CLI prints it as it is (a
    // probe fault would otherwise be printed by the driver's name alone).
    throw new Error((err as Error).message);
  }
  started = true;
  say(5, 'ready');
  if (hupBeforeStart) reread();
  await new Promise<void>((done) => {
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  process.off('SIGHUP', reread);
  await svc.close();
  return 0;
}

async function cmdCall(
  driver: string,
  opText: string,
  args: string[],
  values: { socket?: string; json?: boolean },
): Promise<number> {
  const op = Number(opText);
  if (!Number.isInteger(op) || op < 0) throw new UsageError(`op "${opText}" must be a whole number`);
  let payload: Uint8Array;
  try {
    payload = encodeArgs(args);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const c = await ServiceClient.connect(values.socket ?? DEFAULT_SOCKET);
  try {
    const r = decodeResponse(await c.call(driver, op, payload));
    console.log(
      values.json
        ? JSON.stringify(r)
        : `${r.bytes} bytes${r.u32.length ? ` u32 [${r.u32.join(', ')}]` : ''} hex ${r.hex}`,
    );
    return 0;
  } catch (err) {
    console.error(`call ${driver} ${op}: ${(err as Error).message}`);
    return 1;
  } finally {
    c.close();
  }
}

async function cmdStatus(values: { socket?: string; json?: boolean }): Promise<number> {
  const c = await ServiceClient.connect(values.socket ?? DEFAULT_SOCKET);
  try {
    const st = await c.status();
    if (values.json) console.log(JSON.stringify(st));
    else {
      if (st.tainted) console.log(`host tainted: ${st.taints.join('; ')}`);
      for (const d of st.drivers)
        console.log(
          `${d.name.padEnd(12)} ${d.device.padEnd(14)} ${d.state.padEnd(10)} restarts ${d.restarts}${d.lastFault ? `  last fault: ${d.lastFault.kind}: ${d.lastFault.message}` : ''}`,
        );
    }
    return 0;
  } finally {
    c.close();
  }
}

async function cmdReload(driver: string, wasm: string, values: { socket?: string }): Promise<number> {
  // The daemon runs in its own directory (/ under the shipped unit): send an absolute path.
  const path = resolve(wasm);
  readUserFile(path, 'driver file');
  const c = await ServiceClient.connect(values.socket ?? DEFAULT_SOCKET);
  try {
    const r = await c.reload(driver, path);
    console.log(
      r.ok
        ? `reloaded ${driver} in ${r.swapMs.toFixed(2)} ms (${r.restored ? `${r.stateBytes} bytes of state` : 'fresh probe'})`
        : `reload refused: ${r.error}`,
    );
    return r.ok ? 0 : 1;
  } catch (err) {
    console.error(`reload ${driver}: ${(err as Error).message}`);
    return 1;
  } finally {
    c.close();
  }
}
