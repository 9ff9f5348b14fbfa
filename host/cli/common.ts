// What every wasmdrv command shares: the error classes that pick the exit code, typed option parsers,
// and small helpers for reading the files a user names.
//
// Exit codes (the same for every command; README "Exit codes"):
//   0  success
//   1  the operation failed: a driver faulted or was refused, a device or the daemon failed, a request
//      or a check did not pass
//   2  usage error: unknown command or option, a missing or malformed argument, a file, device or model
//      named on the command line that does not exist
//
// Adding a command: write host/cli/<name>.ts exporting `register(program: Command)` that declares the
// command with program.command(...), its options and an action(...) (below), then add that module to
// host/cli/commands.ts. Help, usage on errors and exit codes come for free.

import { readFileSync, statSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { discoverUio } from '../devices/uio.ts';

/** The command line is wrong: exit 2 and print the command's usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The operation failed in a way the message fully explains: exit 1, one line, no stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * Wrap a command's action: its result (an exit code, or nothing for 0) becomes the process's exit
 * code; a thrown error is reported by host/cli.ts's handler.
 */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<number | void> | number | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const code = (await fn(...args)) ?? 0;
    process.exitCode = Math.max(Number(process.exitCode ?? 0), code);
  };
}

/** An option value parser for whole numbers >= min (commander reports the option by name on failure). */
export function wholeNumber(min = 0): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(min > 0 ? 'wants a positive whole number' : 'wants a whole number');
    return n;
  };
}

/** A positional or option naming a file that must exist: a usage error naming it otherwise. */
export function readUserFile(path: string, what = 'file'): Uint8Array {
  try {
    if (statSync(path).isDirectory()) throw new UsageError(`${path}: is a directory, not a ${what}`);
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new UsageError(`${path}: cannot read: no such ${what}`);
    throw new UsageError(`${path}: cannot read: ${e.code === 'EACCES' ? 'permission denied' : e.message}`);
  }
}

export function readUserText(path: string, what = 'file'): string {
  return new TextDecoder().decode(readUserFile(path, what));
}

/**
 * A --device value, checked before anything is opened: uioN, sim:MODEL (a model the CLI can drive),
 * or a PCI address once a backend for it is registered.
 */
export function checkDeviceId(id: string, models: string[]): void {
  if (id.startsWith('sim:')) {
    const model = id.slice(4).split(':')[0];
    if (!models.includes(model))
      throw new UsageError(
        `device "${id}": unknown simulated model "${model}" (known: ${models.join(', ')}; see \`wasmdrv devices\`)`,
      );
    return;
  }
  // vfio:DDDD:BB:DD.F (the VFIO backend, issue 21): the host names a device it cannot open.
  if (/^vfio:/.test(id)) return;
  if (/^uio\d+$/.test(id)) {
    const known = discoverUio().map((u) => u.id);
    if (!known.includes(id))
      throw new UsageError(
        `device ${id}: no such UIO device under /sys/class/uio (${known.length ? `present: ${known.join(', ')}` : 'none present'})`,
      );
    return;
  }
  throw new UsageError(
    `device "${id}": not a device id (use uioN, vfio:DDDD:BB:DD.F or sim:MODEL; see \`wasmdrv devices\`)`,
  );
}

/** The full name of a command ("wasmdrv verify"). */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}
