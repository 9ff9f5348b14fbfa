// The tour (npm start): the edu driver on a device, step by step, with the checks a user would make.

import { Host } from './host.ts';
import { decodeResponse, encodeArgs } from './payload.ts';
import type { Fault } from './faults.ts';

const OP_IDENTIFY = 1;
const OP_FACTORIAL = 2;
const OP_RAISE = 3;
const OP_DMA = 4;

export interface DemoOptions {
  device: string;
  driver: string;
  json: boolean;
  rearm?: 'irqcontrol';
}

function factorial32(n: number): number {
  let f = 1n;
  for (let i = 2n; i <= BigInt(n); i++) f *= i;
  return Number(f & 0xffffffffn);
}

export interface DemoResult {
  ok: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
  summary: Record<string, unknown>;
}

/** The demo as a command: prints the tour (or one JSON line with --json), returns the exit code. */
export async function runDemo(o: DemoOptions): Promise<number> {
  const r = await demo(o);
  if (o.json) console.log(JSON.stringify(r));
  return r.ok ? 0 : 1;
}

/** Run the tour's checks on a device; `o.json` silences the running commentary. */
export async function demo(o: DemoOptions): Promise<DemoResult> {
  const out = (s: string) => {
    if (!o.json) console.log(s);
  };
  const host = new Host();
  const faults: Fault[] = [];
  host.on('log', (e) => out(`  [${e.driver}] ${e.message}`));
  host.on('fault', (f: Fault) => faults.push(f));
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  const check = (name: string, ok: boolean, detail: string) => {
    checks.push({ name, ok, detail });
    out(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
  };
  const started = performance.now();
  let summary: Record<string, unknown> = {};
  try {
    out(`wasmdrv demo: ${o.driver} on ${o.device}`);
    const dev = host.openDevice(o.device, { rearm: o.rearm });
    const drv = await host.load(o.driver, dev, { name: 'edu' });
    out(
      `loaded and probed (${dev.spec.name}${dev.spec.pci ? `, pci ${dev.spec.pci.vendor.toString(16)}:${dev.spec.pci.device.toString(16)}` : ''})`,
    );

    const id = decodeResponse(await drv.request(OP_IDENTIFY)).u32;
    check(
      'identify',
      id[0] === 0x010000ed && id[1] === 1,
      `id 0x${(id[0] ?? 0).toString(16).padStart(8, '0')}, liveness ${id[1] === 1 ? 'ok' : 'FAILED'}`,
    );

    const before = drv.stats().interrupts;
    const facts: string[] = [];
    let factsOk = true;
    for (let n = 1; n <= 12; n++) {
      const got = decodeResponse(await drv.request(OP_FACTORIAL, encodeArgs([`u32:${n}`]))).u32[0];
      const want = factorial32(n);
      if (got !== want) factsOk = false;
      facts.push(`${n}!=${got}`);
    }
    const factIrqs = drv.stats().interrupts - before;
    check('factorials', factsOk && factIrqs >= 12, `${facts.join(' ')} (${factIrqs} interrupts)`);

    const raises = 32;
    const seen = decodeResponse(await drv.request(OP_RAISE, encodeArgs([`u32:${raises}`, 'u32:0x1000']))).u32[0];
    check('interrupts', seen === raises, `raised ${raises}, the driver saw ${seen}`);

    if (dev.spec.dma.length === 0) {
      check('dma', true, 'not run: the device has no DMA window (uio_pci_generic maps none)');
    } else {
      const data = Uint8Array.from({ length: 1024 }, (_, i) => (i * 7 + 3) & 0xff);
      const back = await drv.request(OP_DMA, data);
      const same = back.length === data.length && back.every((b, i) => b === data[i]);
      check('dma', same, `${data.length} bytes window -> device buffer -> window ${same ? 'intact' : 'CORRUPTED'}`);
    }

    const st = drv.stats();
    summary = {
      device: o.device,
      registerReads: st.regReads,
      registerWrites: st.regWrites,
      interrupts: st.interrupts,
      coalescedInterrupts: st.coalesced,
      requests: st.requests,
      faults: st.faults + faults.length,
      ms: Math.round(performance.now() - started),
    };
    out('');
    out('summary');
    out(`  device            ${o.device}`);
    out(`  register reads    ${st.regReads}`);
    out(`  register writes   ${st.regWrites}`);
    out(`  interrupts        ${st.interrupts} (${st.coalesced} coalesced)`);
    out(`  requests          ${st.requests}`);
    out(`  faults            ${st.faults}`);
    out(`  checks            ${checks.filter((c) => c.ok).length}/${checks.length} passed in ${summary.ms} ms`);
  } catch (err) {
    check('run', false, (err as Error).message);
  } finally {
    await host.close();
  }
  for (const f of faults) check('no faults', false, `${f.kind}: ${f.message}`);
  return { ok: checks.every((c) => c.ok), checks, summary };
}
