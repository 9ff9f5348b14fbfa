// A host started with Node flags of its own still loads and serves drivers. V8 and process-wide flags
// are what a driver worker refuses when they are given to it explicitly (ERR_WORKER_INVALID_EXEC_ARGV),
// so thread.ts drops them (withWorkerExecArgv, exec-argv.ts); the compile process, forked, takes them.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { driverPath, root } from './helpers.ts';

describe('a host started with V8 and process-wide flags', () => {
  it('loads the edu driver and it answers a liveness request', () => {
    const code = `
      import { Host, decodeResponse, encodeArgs } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
      const host = new Host();
      const drv = await host.load(${JSON.stringify(driverPath('edu'))}, 'sim:edu', { name: 'edu' });
      const answer = decodeResponse(await drv.request(5, encodeArgs(['u32:0x12345678']))).u32[0];
      console.log('ANSWER 0x' + answer.toString(16));
      await host.close();
      console.log('DONE');`;
    const flags = ['--max-old-space-size=512', '--expose-gc', '--stack-trace-limit=30'];
    const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', code], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).not.toContain('ERR_WORKER_INVALID_EXEC_ARGV');
    expect(r.stdout).toContain('ANSWER 0xedcba987'); // ~v, as the device returns it
    expect(r.stdout).toContain('DONE');
    expect(r.status).toBe(0);
  });
});
