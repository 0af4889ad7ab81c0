// Misspelt options: each public entry point of models/ refuses an options key it does
// not know (knownKeysArg in models/args.ts), as torch refuses an unexpected kwarg.
import type { ExecutionContext } from 'ava';

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** knownKeysArg's message for one unknown key (the list of known ones is not checked). */
export function unknownOption(op: string, name: string, key: string): RegExp {
  return new RegExp(`^${escape(op)}: argument '${escape(name)}' has unknown option '${escape(key)}' \\(known: `);
}

/** A call given one misspelt key, and the op, argument and key its TypeError must name. */
export type UnknownOptionCase = [call: () => unknown, op: string, name: string, key: string];

/** Each call throws (or rejects with) that TypeError. */
export async function assertUnknownOptions(t: ExecutionContext, cases: readonly UnknownOptionCase[]): Promise<void> {
  for (const [call, op, name, key] of cases)
    await t.throwsAsync(async () => call(), { instanceOf: TypeError, message: unknownOption(op, name, key) }, `${op}: ${name}.${key}`);
}
