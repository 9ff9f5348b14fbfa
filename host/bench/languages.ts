// The edu driver in AssemblyScript, C and Rust side by side, in one run (npm run bench, section
// `languages`): binary size, a register-only request (liveness: one write, one read), the interrupt
// path (raise and wait, per interrupt) and a DMA round trip of 4000 bytes, each a median of repeated
// requests on the simulated edu. Ratios are against the AssemblyScript driver measured in the same run.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Host } from '../host.ts';

const LANGS = [
  ['as', 'edu'],
  ['c', 'edu-c'],
  ['rust', 'edu-rust'],
] as const;
const le32 = (...v: number[]) => new Uint8Array(Uint32Array.from(v).buffer);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

export async function benchLanguages(
  root: string,
  quick: boolean,
  say: (s: string) => void,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const reps = quick ? 50 : 500;
  const raises = quick ? 20 : 200;
  for (const [key, name] of LANGS) {
    const file = join(root, 'build', 'drivers', `${name}.wasm`);
    out[`lang_${key}_bytes`] = statSync(file).size;
    const host = new Host();
    try {
      const drv = await host.load(file, 'sim:edu', { name });
      const time = async (op: number, payload: Uint8Array, n: number) => {
        const t: number[] = [];
        for (let i = 0; i < n; i++) {
          const t0 = process.hrtime.bigint();
          await drv.request(op, payload);
          t.push(Number(process.hrtime.bigint() - t0) / 1000);
        }
        return median(t.slice(n >> 2)); // the first quarter warms the tiers up
      };
      out[`lang_${key}_livenessUs`] = +(await time(5, le32(7), reps)).toFixed(2);
      out[`lang_${key}_irqUs`] = +((await time(3, le32(raises, 0x40), quick ? 4 : 12)) / raises).toFixed(2);
      out[`lang_${key}_dmaUs`] = +(await time(4, new Uint8Array(4000), quick ? 8 : 40)).toFixed(1);
    } finally {
      await host.close();
    }
  }
  say('edu driver by language (simulated edu; ratio to AssemblyScript)');
  for (const [key, name] of LANGS) {
    const r = (f: string) => (out[`lang_${key}_${f}`] / out[`lang_as_${f}`]).toFixed(2);
    say(
      `  ${name.padEnd(9)} ${String(out[`lang_${key}_bytes`]).padStart(6)} bytes   liveness request ${out[`lang_${key}_livenessUs`]} us (${r('livenessUs')})` +
        `   interrupt ${out[`lang_${key}_irqUs`]} us (${r('irqUs')})   DMA 4000 B ${out[`lang_${key}_dmaUs`]} us (${r('dmaUs')})`,
    );
  }
  return out;
}
