// Tensors derived from other tensors and cached: attention.ts's folded queries,
// fused-projection.ts's joined weights. Such a value stays valid while each input is
// the same live tensor (loadStateDict and to() replace tensors) and no tensor has been
// written in place since (optimizer steps and assign() keep a tensor's identity but
// change its values). The write count is the process's: a write anywhere, to another
// model's tensors too, has every such cache derive its value again.
import type { Tensor } from '../lib/index.js';
import { writeCount } from '../lib/tensor.js';

/** What a cached value was derived from, as it was then. */
export interface Derived {
  readonly deps: readonly Tensor[];
  readonly writes: number;
}

/** deps as they are now, to keep beside the value derived from them. */
export function derivedFrom(deps: readonly Tensor[]): Derived {
  return { deps: [...deps], writes: writeCount() };
}

/** Whether c was derived from deps, unchanged since. */
export function stillDerived<C extends Derived>(c: C | null, deps: readonly Tensor[]): c is C {
  return (
    c !== null &&
    c.writes === writeCount() &&
    c.deps.length === deps.length &&
    c.deps.every((d, i) => d === deps[i] && !d.disposed)
  );
}
