// npm run bench, section `e1000`: the descriptor firewall's own CPU time per forwarded frame, one
// thread, no device process, no sandbox: what the checks and copies cost, apart from what the caches
// and the scheduler of two polling processes add (host/bench/e1000.ts measures those together).
//
// Two paths over the same rings (the e1000 manifest's RX and TX, 64 descriptors each, every buffer in
// the one granted window), a device whose head has caught up with its tail at every doorbell:
//   - fastPathCpuCost: the path that runs with the register gate compiled in: the Wasm check, commit
//     and sync that ring-fast.ts generates, called from a loop in the same module, over a state
//     block, real rings and a register memory laid out as gate-link.ts lays them out;
//   - jsFirewallCpuCost: the JavaScript RingFirewall (WASMDRV_RING_FAST=0 or the instance gate).
// Per batch: an RX and a TX doorbell of `batch` descriptors each, each descriptor copied once and
// checked, each write-back copied. CPU time of this thread, so other load on the machine changes it
// little (the best of three passes, after a warm-up).

import type binaryenNs from 'binaryen';
import type { Manifest } from '../package/manifest.ts';
import { ringLayouts } from '../package/rings.ts';
import { loadBinaryen } from '../sandbox/inline-rewrite.ts';
import { addRingFunctions } from '../sandbox/ring-fast.ts';
import {
  RingFirewall,
  carveRealRings,
  openStateBlock,
  ringReserveBytes,
  type DataWindow,
} from '../sandbox/ring-firewall.ts';
import { STATE_BYTES, fastRings, type FastRing } from '../sandbox/ring-state.ts';
import type { Grant, RingLayout } from '../grant.ts';

const N = 64;
const PAGE = 65536;

/** The e1000 driver's ring layout in a shadow at `mem` (window at `bus`): RX ring at 0, TX at 1 KiB. */
function fillShadow(mem: Uint8Array, bus: bigint): void {
  const dv = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  for (let i = 0; i < N; i++) {
    dv.setBigUint64(i * 16, bus + BigInt(4096 + i * 2048), true); // RX buffers from 4 KiB
    dv.setBigUint64(N * 16 + i * 16, bus + BigInt(4096 + N * 2048 + i * 1536), true);
    dv.setUint16(N * 16 + i * 16 + 8, 64, true);
    mem[N * 16 + i * 16 + 11] = 0x0b; // EOP | IFCS | RS
  }
}

function program(fw: RingFirewall, rx: RingLayout, tx: RingLayout, bus: number): void {
  fw.write(rx.registers.baseLow, bus);
  fw.write(rx.registers.length, N * 16);
  fw.write(tx.registers.baseLow, bus + N * 16);
  fw.write(tx.registers.length, N * 16);
}

/** Best of three timed passes of `pass` (after one untimed), in ns of this thread's CPU per frame. */
function cpuNsPerFrame(frames: number, pass: () => void): number {
  pass();
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    const c0 = process.cpuUsage();
    pass();
    const c = process.cpuUsage(c0);
    best = Math.min(best, ((c.user + c.system) * 1000) / frames);
  }
  return +best.toFixed(1);
}

/** The JavaScript RingFirewall alone: the doorbell that runs without the register gate compiled in. */
export function jsFirewallCpuCost(
  manifest: Manifest,
  where: string,
  dmaSize: number,
  busNo: number,
  batch: number,
  quick: boolean,
): number {
  const rings = ringLayouts(manifest, where);
  const [rx, tx] = rings;
  const mem = new Uint8Array(dmaSize);
  const reserve = ringReserveBytes(rings);
  const bus = BigInt(busNo);
  const shadow = mem.subarray(0, dmaSize - reserve);
  const window = { bus, size: dmaSize - reserve, bytes: () => shadow };
  const real = carveRealRings(rings, bus + BigInt(dmaSize - reserve), mem.subarray(dmaSize - reserve));
  const regs = new Uint32Array(0x4000);
  // head reads see the tail: the device has done everything it was given
  const headOf = new Map([
    [rx.registers.head, rx.registers.tail],
    [tx.registers.head, tx.registers.tail],
  ]);
  const device = {
    read32: (o: number) => regs[(headOf.get(o) ?? o) >>> 2],
    write32: (o: number, v: number) => {
      regs[o >>> 2] = v;
    },
  };
  const fw = new RingFirewall('bench', rings, real, [window], device);
  fw.start();
  fillShadow(mem, bus);
  program(fw, rx, tx, busNo);
  const rounds = Math.ceil((quick ? 100_000 : 1_000_000) / batch);
  let rt = 0;
  let tt = 0;
  const ns = cpuNsPerFrame(rounds * batch, () => {
    for (let r = 0; r < rounds; r++) {
      rt = (rt + batch) % N;
      fw.write(rx.registers.tail, rt);
      tt = (tt + batch) % N;
      fw.write(tx.registers.tail, tt);
    }
  });
  if (fw.checked !== 2 * 4 * rounds * batch) throw new Error(`bench: the firewall checked ${fw.checked} descriptors`);
  return ns;
}

/**
 * The Wasm doorbell alone (ring-fast.ts), as the driver runs it. The module: memory 0 the driver's
 * (the window at 0), `rings` the state block and then the real rings, `bar0` the registers. Its loop
 * `run(rounds, batch)` per round plays the device (head := its tail, everything handed over done),
 * then rings RX and TX: check(newTail) (trap if it would go slow), commit(newTail, fresh).
 */
export async function fastPathCpuCost(
  manifest: Manifest,
  grant: Grant,
  where: string,
  dmaSize: number,
  busNo: number,
  batches: number[],
  quick: boolean,
): Promise<Record<number, number>> {
  const binaryen = await loadBinaryen();
  const rings = ringLayouts(manifest, where);
  const [rx, tx] = rings;
  const fast: FastRing[] = fastRings(grant, 0);
  if (fast.length !== 2) throw new Error('bench: the e1000 grant gives no Wasm doorbell for its rings');
  const reserve = ringReserveBytes(rings);
  const winSize = dmaSize - reserve;
  const m = new binaryen.Module();
  m.setFeatures(binaryen.Features.MultiMemory | binaryen.Features.Atomics | binaryen.Features.BulkMemory);
  m.setMemory(Math.ceil(winSize / PAGE), Math.ceil(winSize / PAGE), 'memory');
  const funcs = addRingFunctions(binaryen, m, fast, { rings: 'rings', region: () => 'bar0' }, (b) => b);
  m.addMemoryImport('rings', 'gate', 'rings');
  m.addMemoryImport('bar0', 'gate', 'bar0');
  const i32 = binaryen.i32;
  const c = (n: number) => m.i32.const(n);
  const L = (i: number) => m.local.get(i, i32);
  const set = (i: number, v: binaryenNs.ExpressionRef) => m.local.set(i, v);
  // params 0 rounds, 1 batch; locals 2 r, 3 rt, 4 tt, 5 fresh
  const bell = (f: FastRing, t: number) => {
    const fn = funcs.get(f.slot)!;
    return [
      // the device: everything it was given is done
      m.i32.store(f.head, 0, c(0), m.i32.load(f.tail, 0, c(0), 'bar0'), 'bar0'),
      set(t, m.i32.rem_u(m.i32.add(L(t), L(1)), c(N))),
      set(5, m.call(fn.check, [L(t)], i32)),
      m.if(m.i32.lt_s(L(5), c(0)), m.unreachable()),
      m.call(fn.commit, [L(t), L(5)], binaryen.none),
    ];
  };
  m.addFunction(
    'run',
    binaryen.createType([i32, i32]),
    binaryen.none,
    [i32, i32, i32, i32],
    m.block(null, [
      set(2, c(0)),
      // go on from the tails the last pass left
      set(3, m.i32.atomic.load(0, c(fast[0].tail), 'bar0')),
      set(4, m.i32.atomic.load(0, c(fast[1].tail), 'bar0')),
      m.block('done', [
        m.loop(
          'round',
          m.block(null, [
            m.br('done', m.i32.ge_u(L(2), L(0))),
            ...bell(fast[0], 3),
            ...bell(fast[1], 4),
            set(2, m.i32.add(L(2), c(1))),
            m.br('round'),
          ]),
        ),
      ]),
    ]),
  );
  m.addFunctionExport('run', 'run');
  if (!m.validate()) throw new Error('bench: the fast-path bench module does not validate');
  const bin = m.emitBinary();
  m.dispose();

  const stateBytes = Math.ceil(STATE_BYTES / 4096) * 4096;
  const ringsPages = Math.ceil((stateBytes + reserve) / PAGE);
  const ringsMem = new WebAssembly.Memory({ initial: ringsPages, maximum: ringsPages });
  const bar0 = new WebAssembly.Memory({ initial: 2, maximum: 2 });
  const regs = new Uint32Array(bar0.buffer);
  const device = {
    read32: (o: number) => regs[o >>> 2],
    write32: (o: number, v: number) => {
      regs[o >>> 2] = v >>> 0;
    },
  };
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bin as Uint8Array<ArrayBuffer>), {
    gate: { rings: ringsMem, bar0 },
  });
  const memory = instance.exports.memory as WebAssembly.Memory;
  const run = instance.exports.run as (rounds: number, batch: number) => void;
  const bus = BigInt(busNo);
  const window: DataWindow = { bus, size: winSize, at: 0, bytes: () => new Uint8Array(memory.buffer, 0, winSize) };
  const realBus = bus + BigInt(winSize);
  const real = carveRealRings(rings, realBus, new Uint8Array(ringsMem.buffer, stateBytes, reserve));
  for (const r of real) r.at = stateBytes + Number(r.bus - realBus);
  const block = new Uint8Array(ringsMem.buffer, 0, STATE_BYTES);
  const fw = new RingFirewall('bench', rings, real, [window], device, { bytes: block, firstSlot: 0 });
  fw.start();
  if (!openStateBlock(block, [window])) throw new Error('bench: the state block did not open');
  fillShadow(new Uint8Array(memory.buffer, 0, winSize), bus);
  program(fw, rx, tx, busNo);
  const out: Record<number, number> = {};
  for (const batch of batches) {
    const rounds = Math.ceil((quick ? 300_000 : 3_000_000) / batch);
    const before = fw.checked;
    out[batch] = cpuNsPerFrame(rounds * batch, () => run(rounds, batch));
    if (fw.checked - before !== 2 * 4 * rounds * batch)
      throw new Error(`bench: the Wasm doorbell checked ${fw.checked - before} descriptors`);
  }
  return out;
}
