// The benchmark driver (npm run bench) for the bench device (host/sim/bench.ts): each request runs one
// measured loop inside the sandbox and answers with what it measured. The same loops exist in C in
// bench/native.c, on the same memory.
import { Region, Args, Out, irq, nowNs } from "../sdk";
import * as abi from "../sdk/abi";
export { wasmdrv_abi_version, io_buffer, io_buffer_size } from "../sdk";

// The ring needs more than the SDK's 64 KiB DMA area: reserve 1 MiB, page aligned.
const AREA_SIZE: u32 = 1 << 20;
const AREA: usize = memory.data(<i32>AREA_SIZE, 4096);
export function dma_area(): usize { return AREA; }
export function dma_area_size(): u32 { return AREA_SIZE; }

const regs = new Region(0);
const PLAIN: usize = memory.data(4096, 64);

const OP_READ = 1;
const OP_WRITE = 2;
const OP_MEMORY = 3;
const OP_IRQ = 4;
const OP_RING = 5;

export function probe(): i32 { return 0; }
export function remove(): void {}
export function interrupt(count: u32): void {}

function window(): usize { return abi.dma_window_addr(0); }

// The register loops are exported so that they stay functions of their own (binaryen inlines a
// function with one caller, and V8 lets a caller grow by only ~10% when it inlines the register gate:
// inside the big request() one of the two loops kept a call per access). A driver's polling helper
// is a small function like these.
export function readLoop(n: u32): i32 {
  let sum: u32 = 0;
  const t0 = nowNs();
  for (let i: u32 = 0; i < n; i++) sum += regs.read32((i & 7) << 2);
  const t1 = nowNs();
  return new Out().u64(t1 - t0).u32(sum).end();
}

export function writeLoop(n: u32): i32 {
  const t0 = nowNs();
  for (let i: u32 = 0; i < n; i++) regs.write32(((i & 7) + 8) << 2, i);
  const t1 = nowNs();
  return new Out().u64(t1 - t0).end();
}

/** 32-bit loads cycling through 4 KiB of the DMA window (where = 1) or of plain linear memory (0). */
function memoryLoop(n: u32, where: u32): i32 {
  const base = where == 1 ? window() : PLAIN;
  let sum: u32 = 0;
  const t0 = nowNs();
  for (let i: u32 = 0; i < n; i++) sum += load<u32>(base + ((i & 1023) << 2));
  const t1 = nowNs();
  return new Out().u64(t1 - t0).u32(sum).end();
}

/** Interrupt wake-up: the handshake page is the start of the DMA window (see bench/native.c). */
function irqLatency(n: u32): i32 {
  const page = window();
  for (let i: u32 = 1; i <= n; i++) {
    store<u64>(page, i);
    if (irq.wait(5_000_000) != 1) return -2;
    const t = nowNs();
    store<u64>(page + (16 + i - 1) * 8, t - load<u64>(page + 8));
  }
  return new Out().u32(n).end();
}

// The ring: registers 0 RX_PROD, 1 RX_CONS, 2 TX_PROD, 3 TX_CONS (u32); descriptors in the window.
const RING: u32 = 512;
const RX_DESC: usize = 0;
const TX_DESC: usize = 16384;

function ring(ms: u32, batch: u32): i32 {
  const dma = window();
  let rxCons: u32 = 0;
  let txProd: u32 = 0;
  let forwarded: u64 = 0;
  const end = nowNs() + <u64>ms * 1_000_000;
  for (let spin: u32 = 0; ; spin++) {
    if ((spin & 255) == 0 && nowNs() >= end) break;
    const rxProd = regs.read32(0);
    const txCons = regs.read32(12);
    let n = rxProd - rxCons;
    const room = RING - (txProd - txCons);
    if (n > room) n = room;
    if (n > batch) n = batch;
    if (n == 0) continue;
    for (let i: u32 = 0; i < n; i++) {
      const r = dma + RX_DESC + (((rxCons + i) % RING) << 4);
      const t = dma + TX_DESC + (((txProd + i) % RING) << 4);
      const len = load<u32>(r, 8);
      memory.copy(dma + <usize>load<u64>(t), dma + <usize>load<u64>(r), len);
      store<u32>(t, len, 8);
      store<u32>(t, load<u32>(r, 12), 12);
    }
    rxCons += n;
    txProd += n;
    forwarded += n;
    regs.write32(4, rxCons);
    regs.write32(8, txProd);
  }
  regs.write32(16, 1);
  return new Out().u64(forwarded).end();
}

export function request(op: u32, len: u32): i32 {
  const a = new Args(len);
  if (op == OP_READ) return readLoop(a.u32(0));
  if (op == OP_WRITE) return writeLoop(a.u32(0));
  if (op == OP_MEMORY) return memoryLoop(a.u32(0), a.u32(1));
  if (op == OP_IRQ) return irqLatency(a.u32(0));
  if (op == OP_RING) return ring(a.u32(0), a.u32(1));
  return -1;
}
