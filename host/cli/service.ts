// wasmdrv serve | call | status | reload — the daemon and its clients (host/service/).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decodeResponse, encodeArgs } from '../payload.ts';
import { parseConfig } from '../service/config.ts';
import { Service } from '../service/daemon.ts';
import { ServiceClient } from '../service/client.ts';

export const DEFAULT_SOCKET = process.env.WASMDRV_SOCKET ?? '/run/wasmdrv/wasmdrv.sock';

export async function cmdServe(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  if (!values.config) throw new Error('serve wants --config FILE');
  let text: string;
  try {
    text = readFileSync(values.config, 'utf8');
  } catch (err) {
    throw new Error(`${values.config}: cannot read: ${(err as Error).message}`);
  }
  const svc = new Service(parseConfig(text, values.config), (s) => console.error(`[wasmdrv] ${s}`));
  await svc.start();
  console.error('[wasmdrv] ready');
  await new Promise<void>((done) => {
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  await svc.close();
  return 0;
}

export async function cmdCall(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { socket: { type: 'string' }, json: { type: 'boolean' } } });
  if (positionals.length < 2) throw new Error('call wants DRIVER OP [ARG...]');
  const op = Number(positionals[1]);
  if (!Number.isInteger(op) || op < 0) throw new Error(`op "${positionals[1]}" must be a whole number`);
  const c = await ServiceClient.connect(values.socket ?? DEFAULT_SOCKET);
  try {
    const r = decodeResponse(await c.call(positionals[0], op, encodeArgs(positionals.slice(2))));
    console.log(values.json ? JSON.stringify(r) : `${r.bytes} bytes${r.u32.length ? ` u32 [${r.u32.join(', ')}]` : ''} hex ${r.hex}`);
    return 0;
  } catch (err) {
    console.error(`call ${positionals[0]} ${op}: ${(err as Error).message}`);
    return 1;
  } finally {
    c.close();
  }
}

export async function cmdStatus(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { socket: { type: 'string' }, json: { type: 'boolean' } } });
  const c = await ServiceClient.connect(values.socket ?? DEFAULT_SOCKET);
  try {
    const st = await c.status();
    if (values.json) console.log(JSON.stringify(st));
    else {
      if (st.tainted) console.log(`host tainted: ${st.taints.join('; ')}`);
      for (const d of st.drivers) console.log(`${d.name.padEnd(12)} ${d.device.padEnd(14)} ${d.state.padEnd(10)} restarts ${d.restarts}${d.lastFault ? `  last fault: ${d.lastFault.kind}: ${d.lastFault.message}` : ''}`);
    }
    return 0;
  } finally {
    c.close();
  }
}

export async function cmdReload(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { socket: { type: 'string' } } });
  if (positionals.length !== 2) throw new Error('reload wants DRIVER NEW.wasm');
  const c = await ServiceClient.connect(values.socket ?? DEFAULT_SOCKET);
  try {
    const r = await c.reload(positionals[0], positionals[1]);
    console.log(r.ok ? `reloaded ${positionals[0]} in ${r.swapMs.toFixed(2)} ms (${r.restored ? `${r.stateBytes} bytes of state` : 'fresh probe'})` : `reload refused: ${r.error}`);
    return r.ok ? 0 : 1;
  } catch (err) {
    console.error(`reload ${positionals[0]}: ${(err as Error).message}`);
    return 1;
  } finally {
    c.close();
  }
}
