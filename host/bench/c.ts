// The C baseline of npm run bench: bench/native.c compiled with the system's cc, run as a child with
// the device's fds inherited, optionally pinned to CPU 0 with taskset. Every section that compares the
// sandbox against C (bench.ts, irq.ts, e1000.ts) runs its baseline through here.

import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

export const le32 = (...v: number[]) => new Uint8Array(Uint32Array.from(v).buffer);
export const u64At = (b: Uint8Array, at: number) => Number(new DataView(b.buffer, b.byteOffset).getBigUint64(at, true));
export const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

export function compileC(root: string): string {
  const dir = join(root, '.bench');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'native');
  try {
    execFileSync('cc', ['-O2', '-Wall', '-pthread', join(root, 'bench', 'native.c'), '-o', out], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  } catch (err) {
    throw new Error(`bench: cannot compile bench/native.c with cc: ${(err as Error).message}`);
  }
  return out;
}

/** Run the C baseline with `fds` inherited as fd 3, 4, ...; resolves with its stdout. */
export async function runC(bin: string, args: string[], fds: number[], pin: boolean): Promise<string> {
  const cmd = pin ? 'taskset' : bin;
  const argv = pin ? ['-c', '0', bin, ...args] : args;
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit', ...fds] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  // 'close', not 'exit': the process can exit before its stdout has been read to the end
  const [code] = await once(child, 'close');
  if (code !== 0) throw new Error(`bench: ${bin} ${args.join(' ')} exited with ${code}`);
  return out;
}

export function canPin(): boolean {
  try {
    execFileSync('taskset', ['-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function unpin(): void {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', `0-${cpus().length - 1}`, String(process.pid)], { stdio: 'ignore' });
  } catch {
    /* nothing to undo */
  }
}
