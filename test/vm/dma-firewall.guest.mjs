// Guest of the dma-firewall VM scenario (scripts/vm/scenarios/dma-firewall.mjs): QEMU's edu behind
// the stub, its DMA buffer the window. Reports @@CHECK lines, then @@DONE.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const project = process.argv[2];
const api = await import(join(project, 'dist', 'index.js'));
const { Host, discoverUio, loadPackage, generateKeys, packDriver } = api;
const emit = (tag, o) => console.log(`@@${tag} ${JSON.stringify(o)}`);
const check = (name, ok, detail) => emit('CHECK', { name: `dma-firewall: ${name}`, ok: !!ok, detail });

// A trust store in scratch space (the project is mounted read-only) with a key for the hostile package.
const scratch = '/mnt/dma-firewall';
mkdirSync(join(scratch, 'trust'), { recursive: true });
const key = generateKeys();
writeFileSync(join(scratch, 'trust', 'suite.pub'), key.publicPem);
writeFileSync(join(scratch, 'trust', 'dev.pub'), readFileSync(join(project, '.keys', 'trust', 'dev.pub')));
const trust = join(scratch, 'trust');

const manifest = JSON.parse(readFileSync(join(project, 'guest-drivers', 'edu', 'manifest.json'), 'utf8'));
const { writable: _w, ...region } = manifest.regions[0];
// TCG is slow: a generous deadline, so a load or a DMA wait is not what ends the attack.
const hostileManifest = { ...manifest, name: 'hostile-dma', regions: [region], limits: { memoryPages: 64, deadlineMs: 20000 } };
const wasm = readFileSync(join(project, 'build', 'drivers', 'test', 'hostile-dma.wasm'));
const hostilePkg = packDriver(new Uint8Array(wasm), hostileManifest, key.privatePem, 'hostile-dma.wasm');

// The hostile driver's script format (test/fixtures/drivers/hostile-dma.ts).
const SRC = 0x80, DST = 0x88, CNT = 0x90, CMD = 0x98, DEV = 0x40000n, START = 1n, TO_RAM = 2n;
const w8 = (offset, value) => [8, offset, value];
const idle = [16, CMD, 2_000_000n];
const transfer = (src, dst, cnt, cmd) => [w8(SRC, src), w8(DST, dst), w8(CNT, cnt), w8(CMD, cmd)];
function script(steps) {
  const b = new Uint8Array(steps.length * 16);
  const v = new DataView(b.buffer);
  steps.forEach(([kind, offset, value], i) => {
    v.setUint32(i * 16, kind, true);
    v.setUint32(i * 16 + 4, offset, true);
    v.setBigUint64(i * 16 + 8, BigInt.asUintN(64, value), true);
  });
  return b;
}

async function attack(host, dev, steps) {
  const drv = await loadPackage(host, hostilePkg, dev, { trust });
  const fault = new Promise((resolve) => drv.once('fault', resolve));
  const answer = await drv.request(1, script(steps)).then(() => 'answered', (e) => e.code);
  const f = answer === 'answered' ? undefined : await fault;
  await drv.stop();
  return { answer, fault: f };
}

const edu = discoverUio().find((u) => u.name === 'wasmdrv-edu');
// The operator raises the deadline cap: under TCG on a loaded machine the hostile driver's load ran past 2 s.
const host = new Host({ limitCaps: { deadlineMs: 30_000 } });
try {
  const dev = host.openDevice(edu.id);
  const win = dev.spec.dma[0];
  const roundTrip = async (name) => {
    const drv = await loadPackage(host, readFileSync(join(project, 'build', 'packages', 'edu.wdrv')), dev, { trust });
    const data = Uint8Array.from({ length: 256 }, (_, i) => i ^ 0x5a);
    const back = await drv.request(4, data);
    check(name, Buffer.compare(Buffer.from(back), Buffer.from(data)) === 0, `${back.length} bytes back, window bus 0x${win.bus.toString(16)}+0x${win.size.toString(16)}`);
    await drv.stop();
  };
  await roundTrip('the signed edu package does a DMA round trip through the engine check');

  const end = win.bus + BigInt(win.size);
  const past = await attack(host, dev, transfer(DEV, end - 16n, 4096n, START | TO_RAM));
  check('a transfer past the DMA buffer is refused', past.fault?.kind === 'dma-firewall' && past.fault.message.includes('is not inside one granted DMA window'), past.fault?.message ?? past.answer);

  // edu freezes its DMA registers for the 100 ms a transfer runs: the count of 16 is lost, and the
  // second transfer would run 2032 bytes past the buffer.
  const freeze = await attack(host, dev, [...transfer(DEV, win.bus, 2048n, START | TO_RAM), w8(CNT, 16n), idle, w8(DST, end - 16n), w8(CMD, START | TO_RAM)]);
  check('a count the device ignored while running is caught by read-back', freeze.fault?.kind === 'dma-firewall' && freeze.fault.message.includes('length (0x90) reads back 0x800'), freeze.fault?.message ?? freeze.answer);

  await roundTrip('the device still serves DMA afterwards');
} catch (err) {
  check('scenario', false, `threw: ${err?.stack ?? err}`);
} finally {
  await host.close();
}
console.log('@@DONE');
process.exit(0);
