// The value after a `--flag` on the command line, shared by the demo scripts.

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
