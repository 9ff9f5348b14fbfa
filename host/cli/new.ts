// wasmdrv new <dir> --device edu|uart16550|e1000|<manifest.json> [--lang as|c|rust] [--link]
import { Option, type Command } from 'commander';
import { BUILTIN_DEVICES, scaffold } from '../scaffold.ts';
import { action, readUserText, UsageError } from './common.ts';

export function register(program: Command): void {
  program
    .command('new')
    .summary('scaffold a driver folder that builds and passes its test right away')
    .description(
      'Writes DIR/ (its last component is the driver name): manifest.json, the driver (index.ts, index.c or src/lib.rs) with the probe / remove / interrupt / request skeleton for the device, test/driver.test.ts (vitest, against the simulated device), package.json and README.md. Then: cd DIR && npm install && npm test.',
    )
    .argument('<dir>', 'the folder to create (its name becomes the driver name)')
    .requiredOption('--device <device>', `${BUILTIN_DEVICES.join(', ')}, or a manifest.json to start from`)
    .addOption(
      new Option('--lang <lang>', 'the driver language: AssemblyScript, C or Rust (docs/languages.md)')
        .choices(['as', 'c', 'rust'])
        .default('as'),
    )
    .option(
      '--link',
      'link wasmdrv and vitest from this installation into DIR/node_modules instead of needing npm install',
    )
    .action(
      action((dir: string, o: { device: string; lang: 'as' | 'c' | 'rust'; link?: boolean }) => {
        if (!(BUILTIN_DEVICES as readonly string[]).includes(o.device)) {
          if (!o.device.endsWith('.json'))
            throw new UsageError(
              `--device ${o.device}: not ${BUILTIN_DEVICES.join(' or ')}, nor a manifest .json file`,
            );
          readUserText(o.device, 'manifest');
        }
        let r: ReturnType<typeof scaffold>;
        try {
          r = scaffold(dir, { device: o.device, lang: o.lang, link: o.link });
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        console.log(`created ${r.dir}: ${r.files.join(', ')}`);
        console.log(
          `next: cd ${dir}${o.link ? '' : ' && npm install'} && npm test${r.sim ? `   (tests on sim:${r.sim})` : ''}`,
        );
        return 0;
      }),
    );
}
