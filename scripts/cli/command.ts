// What every `perceiver` subcommand provides, and the flag parser they share.
// Exit status contract: 0 success, 2 bad invocation (UsageError), 1 the work failed,
// 130 / 143 stopped by SIGINT / SIGTERM (its work saved or cleaned up).
import { resolve } from 'node:path';
import { atomicTarget } from '../../lib/io/atomic.js';

/** Exit status after a signal, as a shell reports a process it ended: 128 + the signal's number. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return signal === 'SIGTERM' ? 143 : 130;
}

/** A bad invocation: the dispatcher prints it with the command's usage and exits 2. */
export class UsageError extends Error {}

export interface Command {
  name: string;
  /** One line for `perceiver --help`. */
  summary: string;
  /** The full `perceiver <name> --help` text. */
  usage: string;
  /** Runs with the arguments after the command name; `--help` is handled before. Resolves to the exit status when not 0. */
  run(argv: string[]): Promise<void | number>;
}

export interface FlagSpec {
  /** Flags taking a value, e.g. '--model'. */
  values?: readonly string[];
  /** Flags without a value, e.g. '--json'. */
  switches?: readonly string[];
  /** Flags that must be present. */
  required?: readonly string[];
  /** How many positional arguments are allowed: [min, max]. Default [0, 0]. */
  positional?: readonly [number, number];
}

export interface ParsedFlags {
  values: Record<string, string>;
  switches: Set<string>;
  positional: string[];
}

/**
 * Parses `--flag value`, `--flag=value`, switches and positionals strictly: unknown
 * flags, missing values, repeated flags and extra positionals are UsageErrors.
 */
export function parseFlags(command: string, argv: string[], spec: FlagSpec): ParsedFlags {
  const values = spec.values ?? [];
  const switches = spec.switches ?? [];
  const [minPos, maxPos] = spec.positional ?? [0, 0];
  const out: ParsedFlags = { values: {}, switches: new Set(), positional: [] };
  let onlyPositional = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!onlyPositional && arg === '--') {
      onlyPositional = true;
      continue;
    }
    if (onlyPositional || !arg.startsWith('-') || arg === '-') {
      out.positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (switches.includes(flag)) {
      if (flag !== arg) throw new UsageError(`option '${flag}' takes no value`);
      if (out.switches.has(flag)) throw new UsageError(`option '${flag}' is given twice`);
      out.switches.add(flag);
      continue;
    }
    if (!values.includes(flag)) {
      const known = [...values, ...switches];
      throw new UsageError(`unknown option '${flag}' (${command} takes ${known.length ? known.join(', ') : 'no options'})`);
    }
    let value: string | undefined;
    if (flag !== arg) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`option '${flag}' needs a value`);
      i++;
    }
    if (value === '') throw new UsageError(`option '${flag}' needs a value`);
    if (flag in out.values) throw new UsageError(`option '${flag}' is given twice`);
    out.values[flag] = value;
  }
  const missing = (spec.required ?? []).filter((f) => !(f in out.values));
  if (missing.length) throw new UsageError(`missing required option${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  if (out.positional.length < minPos || out.positional.length > maxPos) {
    const want = minPos === maxPos ? `${minPos}` : `${minPos} to ${maxPos}`;
    if (out.positional.length > maxPos) throw new UsageError(`unexpected argument '${out.positional[maxPos]}' (${command} takes ${want} positional argument${maxPos === 1 ? '' : 's'})`);
    throw new UsageError(`${command} needs ${want} positional argument${maxPos === 1 ? '' : 's'}, got ${out.positional.length}`);
  }
  return out;
}

/** Checks a --device value. */
export function checkDeviceFlag(device: string | undefined): string | undefined {
  if (device !== undefined && device !== 'cpu' && device !== 'cuda' && !/^cuda:\d+$/.test(device))
    throw new UsageError(`--device must be cpu, cuda or cuda:N, got '${device}'`);
  return device;
}

/**
 * Checks an output file flag before any work is done: the file will be written
 * atomically (a temporary file, then a rename), so its folder must exist and be
 * writable, and an existing target must be a regular file (a symbolic link is
 * followed). Returns the absolute path the rename will land on (for same-file checks).
 */
export function checkOutputFile(flag: string, path: string): string {
  if (path === '-') throw new UsageError(`${flag} -: writing to stdout is not supported; give a file path`);
  return resolve(atomicTarget(path, { writable: true }));
}
