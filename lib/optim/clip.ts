// Global-norm gradient clipping: every gradient scaled by min(1, maxNorm / ||g||) where
// ||g|| is the norm over all of them together (optax.clip_by_global_norm).
import { Tensor } from '../tensor.js';
import { describe } from '../dtype.js';
import { noGrad } from '../autograd/tape.js';
import { keep, tidy } from '../scope.js';
import { sumOfSquares } from './adam.js';

const isTensor = (v: unknown): v is Tensor => v instanceof Tensor;

/**
 * Clips the .grad of params in place; returns the global norm before clipping as a
 * [] tensor (the caller disposes it; reading it is the only wait).
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): Tensor {
  if (!Array.isArray(params)) throw new TypeError(`clipGradNorm: argument 'params' must be an array of Tensors, got ${describe(params)}`);
  if (typeof maxNorm !== 'number' || !(maxNorm > 0) || !Number.isFinite(maxNorm))
    throw new RangeError(`clipGradNorm: argument 'maxNorm' must be a positive number, got ${describe(maxNorm)}`);
  for (let i = 0; i < params.length; i++)
    if (!isTensor(params[i])) throw new TypeError(`clipGradNorm: argument 'params' must be an array of Tensors, element ${i} is ${describe(params[i])}`);
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null && g !== undefined);
  if (grads.length === 0) throw new Error(`clipGradNorm: none of the ${params.length} parameters has a gradient (call backward() first)`);
  return noGrad(() =>
    tidy(() => {
      // The squares summed in float32, without a square root per gradient to square
      // again: half-precision gradients would overflow or round the total away.
      let sq: Tensor | null = null;
      for (const g of grads) {
        const n = sumOfSquares(g);
        sq = sq ? sq.add(n) : n;
      }
      const total = sq!.sqrt();
      // min(1, maxNorm / total), with total = 0 leaving the gradients as they are.
      const factor = total.add(1e-12).div(maxNorm).maximum(1).pow(-1);
      // Half-precision gradients scaled in float32 and rounded once. Each .grad is
      // replaced, not written in place: the backward may hand two leaves one buffer
      // (add's operands), which an in-place write would scale once per leaf.
      for (const p of params) {
        const g = p.grad;
        if (!g) continue;
        p.grad = keep(g.dtype === 'float32' ? g.mul(factor) : g.cast('float32').mul(factor).cast(g.dtype));
        g.dispose();
      }
      return keep(total);
    }),
  );
}
