// Loading a HuggingFace reference case from test/fixtures/hf/<case>/ (see
// ../shared/fixtures/README.md) and comparing outputs with its tolerance.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as P from '../../lib/index.js';
import type { Module, Tensor } from '../../lib/index.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/test/helpers -> the repository's test/fixtures/hf. */
export const HF_FIXTURES = join(here, '..', '..', '..', 'test', 'fixtures', 'hf');

export function caseDir(name: string): string {
  return join(HF_FIXTURES, name);
}

export function caseConfig(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(caseDir(name), 'config.json'), 'utf8')) as Record<string, unknown>;
}

/** Loads the case's model.safetensors strictly into model; the file's tensors are disposed after. */
export async function loadCaseWeights(name: string, model: Module): Promise<void> {
  const sd = await P.loadSafetensors(join(caseDir(name), 'model.safetensors'));
  try {
    model.loadStateDict(sd);
  } finally {
    for (const t of Object.values(sd)) t.dispose();
  }
}

export async function caseTensors(name: string, file: 'input' | 'expected', names: string[]): Promise<Record<string, Tensor>> {
  return P.loadSafetensors(join(caseDir(name), `${file}.safetensors`), { names });
}

/** max |got - want| (Infinity where a value is NaN) and max |want|. */
export function diffAndScale(got: ArrayLike<number>, want: ArrayLike<number>): { maxDiff: number; maxAbs: number } {
  if (got.length !== want.length) throw new Error(`diffAndScale: ${got.length} values, expected ${want.length}`);
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
    maxAbs = Math.max(maxAbs, Math.abs(want[i]));
  }
  return { maxDiff, maxAbs };
}

/** max |got - want| and the README's output bound 1e-4 * max(1, max |want|). */
export function outputError(got: ArrayLike<number>, want: ArrayLike<number>): { maxDiff: number; bound: number; summary: string } {
  const { maxDiff, maxAbs } = diffAndScale(got, want);
  const bound = 1e-4 * Math.max(1, maxAbs);
  const summary = `max |diff| ${maxDiff.toExponential(3)}, bound ${bound.toExponential(3)} (${((100 * maxDiff) / bound).toFixed(2)}% of it)`;
  return { maxDiff, bound, summary };
}
