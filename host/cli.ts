// The wasmdrv command line: a commander program whose commands live in host/cli/*.ts (one module per
// command or family, registered in host/cli/commands.ts). Every command gets --help, its usage on a
// usage error, and the same exit codes (host/cli/common.ts):
//   0 success · 1 the operation failed · 2 usage error.
// A user error is one line naming the thing; --debug or WASMDRV_DEBUG=1 adds the stack.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { packageRoot } from './native.ts';
import type { Fault } from './faults.ts';
import { CliError, commandPath, UsageError } from './cli/common.ts';
import { COMMANDS } from './cli/commands.ts';
import { printFault } from './cli/run.ts';

function version(): string {
  try {
    // A package.json without a version (the VM test's staged copy) must not turn .version() into its getter.
    return String(JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

function buildProgram(): Command {
  const program = new Command('wasmdrv')
    .description('WebAssembly-sandboxed user-space device drivers for Linux')
    .version(version(), '-V, --version', 'print the version')
    .option('--debug', 'print stack traces with errors (or set WASMDRV_DEBUG=1)')
    .addHelpText(
      'after',
      '\nExit codes: 0 success, 1 the operation failed, 2 usage error.\nRun "wasmdrv <command> --help" for a command\'s options.',
    );
  for (const c of COMMANDS) c.register(program);
  // Settings every command shares, applied after registration so that no module has to repeat them.
  const configure = (cmd: Command) => {
    const name = commandPath(cmd);
    cmd
      .exitOverride()
      .configureOutput({ outputError: (s, write) => write(s.replace(/^error: /, `${name}: `)) })
      .showHelpAfterError(`usage: ${name} ${cmd.usage()}\n(run "${name} --help" for details)`);
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);
  return program;
}

let active: Command | undefined;

function debugging(argv: string[]): boolean {
  return argv.includes('--debug') || process.env.WASMDRV_DEBUG === '1';
}

/** Exit code and what to print for an error that reached the top. */
function report(err: unknown, argv: string[]): number {
  if (err instanceof CommanderError) {
    // commander has printed the message (and the usage); help and --version end with exitCode 0.
    return err.exitCode === 0 ? 0 : 2;
  }
  const who = active ? commandPath(active) : 'wasmdrv';
  const e = err instanceof Error ? err : new Error(String(err));
  // A fault while loading (a start function or probe that traps or spins): one line, unless --debug.
  const fault = (err as { fault?: Fault }).fault;
  if (fault) {
    if (debugging(argv)) printFault(fault);
    else
      console.error(`wasmdrv: ${fault.driver}: ${fault.kind} during ${fault.phase}: ${fault.message.split('\n')[0]}`);
    if (debugging(argv)) console.error(e.stack);
    return 1;
  }
  if (err instanceof UsageError) {
    console.error(`${who}: ${e.message}`);
    if (active)
      console.error(
        `usage: ${commandPath(active)} ${active.usage()}\n(run "${commandPath(active)} --help" for details)`,
      );
  } else {
    console.error(`${who}: ${e.message}`);
  }
  if (debugging(argv)) console.error(e.stack);
  else if (err instanceof TypeError || err instanceof ReferenceError)
    console.error('(a bug in wasmdrv: run with --debug for the stack)');
  if (err instanceof UsageError) return 2;
  if (err instanceof CliError) return err.exitCode;
  return 1;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.hook('preAction', (_program, cmd) => {
    active = cmd;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    return report(err, argv);
  }
  return Number(process.exitCode ?? 0);
}

// Exit once stdout and stderr are flushed: written to a pipe, Node 26 may still hold the tail of a
// long output (a flood's log lines, then the fault) when process.exit() runs.
const exitFlushed = (code: number) =>
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
main(process.argv.slice(2)).then(
  (code) => exitFlushed(code),
  (err) => exitFlushed(report(err, process.argv.slice(2))),
);
