// wasmdrv demo: the edu tour (npm start).
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { runDemo } from '../demo.ts';
import { packageRoot } from '../native.ts';
import { action, checkDeviceId, readUserFile } from './common.ts';
import { userModels } from './run.ts';

export function register(program: Command): void {
  program
    .command('demo')
    .summary("the tour on QEMU's edu device")
    .description(
      "The tour on QEMU's edu device: identify, liveness, factorials 1..12 through interrupts, raise-and-count interrupts, a DMA round trip, and a summary.",
    )
    .option('--device <id>', 'uioN or sim:edu', 'sim:edu')
    .option('--driver <file>', 'the edu driver (default: build/drivers/edu.wasm)')
    .option('--json', 'one JSON line with every check')
    .addOption(new Option('--rearm <mode>', 're-enable a UIO line before each wait').choices(['irqcontrol', 'none']))
    .action(
      action(async (o: { device: string; driver?: string; json?: boolean; rearm?: string }) => {
        checkDeviceId(o.device, userModels());
        const driver = o.driver ?? join(packageRoot(), 'build', 'drivers', 'edu.wasm');
        readUserFile(driver, 'driver file');
        return runDemo({
          device: o.device,
          driver,
          json: !!o.json,
          rearm: o.rearm === 'irqcontrol' ? 'irqcontrol' : undefined,
        });
      }),
    );
}
