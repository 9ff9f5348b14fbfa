// Every wasmdrv command, in the order `wasmdrv --help` lists them. A command is a module in host/cli/
// exporting register(program); adding one is a new file and a line here (see host/cli/common.ts).
import type { Command } from 'commander';
import * as devices from './devices.ts';
import * as run from './run.ts';
import * as demo from './demo.ts';
import * as pkg from './package.ts';
import * as fuzz from './fuzz.ts';
import * as campaign from './fault-campaign.ts';
import * as bench from './bench.ts';
import * as service from './service.ts';
import * as scaffold from './new.ts';
import * as build from './build.ts';
import * as net from './net.ts';
import * as bind from './bind.ts';

export const COMMANDS: { register(program: Command): void }[] = [
  devices,
  run,
  demo,
  scaffold,
  build,
  pkg,
  fuzz,
  campaign,
  bench,
  service,
  net,
  bind,
];
