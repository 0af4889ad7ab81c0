// Single-head cross-attention without projecting the keys and values.
//
// With one head, scores = Q (X Wkᵀ + bk)ᵀ = (Q Wk) Xᵀ + Q bk, where X = LN(inputs). Q bk
// is the same for every key of a row, so softmax drops it, and
// P (X Wvᵀ + bv) = (P X) Wvᵀ + bv whenever the row of P sums to one. The image encoders
// attend 512 latents to 50,176 pixels: this skips two [50,176 x 261] x [261 x 261]
// projections (~13.7 GFLOP) at the same attention cost, and the engine's fused kernel
// still streams over keys (k = v = X).
//
// A query row whose keys are all masked gets P = 0 from the engine; the projected path
// then yields 0 for that row, so the bias is scaled by "has any allowed key" to match.
import { attention, cast, matmul, minimum, reshape, linear, type Tensor } from '../lib/index.js';

/** Multiply-adds of the plain single-head path, per batch element (the query projection, common to both, left out). */
export function plainCrossAttentionMacs(nq: number, nk: number, kvDim: number, qk: number, v: number): number {
  return nk * kvDim * (qk + v) + nq * nk * (qk + v);
}

/** Multiply-adds of the fast single-head path, per batch element; the query fold counts unless it is cached. */
export function fastCrossAttentionMacs(nq: number, nk: number, kvDim: number, qk: number, v: number, queriesCached = false): number {
  return (queriesCached ? 0 : nq * qk * kvDim) + nq * nk * 2 * kvDim + nq * kvDim * v;
}

/**
 * The projected queries folded through the key weight, pre-scaled by 1/sqrt(qk):
 * q [.., Nq, qk] (the query Linear's output, bias included), keyWeight [qk, kvDim] -> [.., Nq, kvDim].
 */
export function foldQueries(q: Tensor, keyWeight: Tensor): Tensor {
  return matmul(q, keyWeight, { alpha: 1 / Math.sqrt(keyWeight.shape[0]) });
}

/**
 * softmax(qFolded Xᵀ) X Wvᵀ + bv for one head: qFolded [B, Nq, kvDim] from foldQueries,
 * x [B, Nk, kvDim] the normalised keys/values input, value weight [v, kvDim] and bias [v],
 * mask uint8 broadcastable to [B, Nq, Nk] -> [B, Nq, v]. Same function as the plain path
 * with one head, up to float32 rounding.
 */
export function fastSingleHeadCrossAttention(
  qFolded: Tensor,
  x: Tensor,
  valueWeight: Tensor,
  valueBias: Tensor | null,
  mask: Tensor | null,
): Tensor {
  const [B, Nq, C] = qFolded.shape;
  const Nk = x.shape[1];
  const x4 = reshape(x, [B, Nk, 1, C]);
  // The 1/sqrt(qk) is already in qFolded; the engine's default would use sqrt(kvDim).
  const px = reshape(attention(reshape(qFolded, [B, Nq, 1, C]), x4, x4, { mask, scale: 1 }), [B, Nq, C]);
  if (valueBias === null) return linear(px, valueWeight, null);
  if (mask === null) return linear(px, valueWeight, valueBias);
  // 1 where a row has at least one allowed key (any nonzero mask value), else 0:
  // [.., .., 1], broadcast over Nq and v.
  const anyKey = minimum(cast(mask, valueBias.dtype).max(-1, { keepdim: true }), 1);
  return linear(px, valueWeight, null).add(anyKey.mul(valueBias));
}
