// The value after a `--flag` on the command line (benchmarks), and the demo scripts'
// flag parsing, help and error reporting.
import { existsSync, statSync } from 'node:fs';
import { parseFlags, UsageError, type FlagSpec, type ParsedFlags } from './cli/command.js';
import { atomicTarget } from '../lib/io/atomic.js';

/**
 * The argument after `name`, undefined when the flag is absent; a flag with no
 * value is an error. With `flagLike: 'reject'`, a value that looks like another
 * flag counts as missing (for options whose values never start with "--").
 */
export function arg(name: string, flagLike: 'reject' | 'accept' = 'reject'): string | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || (flagLike === 'reject' && v.startsWith('--'))) throw new Error(`${name} needs a value`);
  return v;
}

/**
 * A demo's command line, parsed as `perceiver` parses a command's (unknown, repeated
 * and value-less flags refused; '--' ends the options). `--help` or `-h` prints
 * `usage` and exits 0 before anything runs; a bad flag is one line on stderr,
 * `NAME: error: ...`, and exit 2.
 */
export function demoFlags(name: string, usage: string, spec: FlagSpec, argv: string[] = process.argv.slice(2)): ParsedFlags {
  const end = argv.indexOf('--');
  const options = end < 0 ? argv : argv.slice(0, end);
  if (options.includes('--help') || options.includes('-h')) {
    process.stdout.write(usage.endsWith('\n') ? usage : `${usage}\n`);
    process.exit(0);
  }
  try {
    return parseFlags(name, argv, spec);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${name}: error: ${err.message}\n`);
    process.exit(2);
  }
}

/** Runs a demo's main: a failure is one line on stderr (no stack), exit 1 (2 for a UsageError). */
export function runDemo(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${name}: error: ${message.split('\n')[0]}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  });
}

/**
 * A demo's --out PREFIX, to which '.png' (and other extensions) are added: refused when
 * it names a folder (it would write hidden files such as 'DIR/.png'), and each
 * PREFIX.EXT checked as an output file before the work starts.
 */
export function outputPrefix(prefix: string, extensions: readonly string[]): string {
  const base = prefix.split(/[\\/]/).at(-1) ?? '';
  if (base === '' || base === '.' || base === '..' || (existsSync(prefix) && statSync(prefix).isDirectory()))
    throw new UsageError(`--out is a file name prefix (PREFIX.png is written), not a folder: got '${prefix}'`);
  for (const ext of extensions) atomicTarget(`${prefix}${ext}`, { writable: true });
  return prefix;
}
