// The projections of one input into several arrays of heads (a self-attention's
// query, key and value; a cross-attention's key and value) as one product, in
// inference and in training.
//
// Products over the same input cost more apart than as one over the concatenated
// weights: each pays a launch, and narrow outputs fill a GPU badly. On an H200 (bf16,
// twenty-fifth session's profiles) the language model's latents at batch 1 took 15.9
// us for each of the query and key products (1280 -> 256) and 18.4 us for the value's
// (1280 -> 1280), 26 layers of them per forward; the ImageNet model's 48
// self-attentions three products of 14.8 us each.
//
// The fused weight's rows are head-major: head h's rows of the first part, then its
// rows of the second, and so on. So the product [B, N, H * (w0 + w1 + ...)] reshapes to
// [B, N, H, w0 + w1 + ...] as a view, and each part is a slice of the last axis: a view
// with the row and head strides that the fused attention takes. No copy either way.
//
// The fused weight is cached in the dtype the layers compute in, while derived.ts says
// it is current: a write anywhere has the next forward join the weights again (a copy
// of them per layer), which evaluation between optimizer steps pays once per step.
import { computeDtype, computeIn, concat, keep, linear, reshape, split, tidy, toDtype, type DTypeName, type Linear, type Tensor } from '../lib/index.js';
import { derivedFrom, stillDerived, type Derived } from './derived.js';

/** Weights joined on the tape (their gradient node is the join's), and what of. */
interface TapeJoin {
  readonly of: readonly Tensor[];
  readonly dtype: DTypeName;
  readonly weight: Tensor;
  readonly bias: Tensor | null;
}

// Within shareJoinedWeights (an encoder's forward, whose latent blocks call each layer
// once per block: 8 times in the ImageNet models), every call of a layer takes the same
// weights joined on the tape: one copy and one gradient node per layer, into which
// each call's product folds its weight gradient as it would into the separate
// weights'. A join per call held a copy per call until backward (48 of 12.6 MB in the
// ImageNet model in float32) and summed, sliced and copied each call's gradient apart.
let sharedJoins: Map<FusedProjection, TapeJoin[]> | null = null;

/**
 * Runs fn (synchronous) with the weights that FusedProjection joins on the tape shared
 * by every call of a layer; they are freed when the outermost such call returns (the
 * tape keeps what its products saved). Nested calls share the outer one's.
 */
export function shareJoinedWeights<T>(fn: () => T): T {
  if (sharedJoins) return fn();
  const joins = new Map<FusedProjection, TapeJoin[]>();
  sharedJoins = joins;
  try {
    return fn();
  } finally {
    sharedJoins = null;
    for (const list of joins.values())
      for (const j of list) {
        j.weight.dispose();
        j.bias?.dispose();
      }
  }
}

/** A Linear whose output is `heads` heads of headWidth channels each, head-major (HF's layout). */
export interface ProjectionPart {
  readonly layer: Linear;
  readonly headWidth: number;
}

/**
 * Whether parts may share one product: the same input width and compute dtype, biases
 * all present or all absent, and head widths of whole 16-byte units in 16-bit types
 * (multiples of 8), so that every slice starts where the fused attention's vector
 * loads can read it.
 */
export function canFuseProjections(parts: readonly ProjectionPart[], heads: number): boolean {
  if (parts.length < 2) return false;
  const first = parts[0].layer;
  const dtype = computeDtype(first.weight);
  return parts.every(
    ({ layer, headWidth }) =>
      layer.inFeatures === first.inFeatures &&
      computeDtype(layer.weight) === dtype &&
      (layer.bias === null) === (first.bias === null) &&
      layer.outFeatures === heads * headWidth &&
      headWidth % 8 === 0,
  );
}

/**
 * Tensors whose leading axis is `heads` blocks of widths[i] rows (weights [H * w, in],
 * biases [H * w]) regrouped head-major and joined: [H * sum(widths), ...].
 */
export function headMajorConcat(ts: readonly Tensor[], widths: readonly number[], heads: number): Tensor {
  return tidy(() => {
    const rest = ts[0].shape.slice(1);
    const grouped = ts.map((t, i) => reshape(t, [heads, widths[i], ...rest]));
    const total = widths.reduce((a, b) => a + b, 0);
    return reshape(concat(grouped, 1), [heads * total, ...rest]);
  });
}

/**
 * y [..., N, H * sum(widths)] (head-major groups) -> one view [..., N, H, widths[i]] per
 * part: a split() of the last axis, so that attention() over all of them sends their
 * gradients back to y joined.
 */
export function splitHeads(y: Tensor, widths: readonly number[], heads: number): Tensor[] {
  const total = widths.reduce((a, b) => a + b, 0);
  return split(reshape(y, [...y.shape.slice(0, -1), heads, total]), -1, widths);
}

/** The fused product of a fixed list of parts, with its weight cached. */
export class FusedProjection {
  private cache: (Derived & { weight: Tensor; bias: Tensor | null }) | null = null;

  /**
   * x [B, N, in] -> each part's heads [B, N, H, headWidth] (views of one product), in
   * the dtype parts[0] computes in. The caller checks canFuseProjections and that the
   * weights want no gradient: the cached weight is not on the tape (x may want one:
   * attention() sends it back through the one product, as forwardWithGrad's).
   */
  forward(x: Tensor, parts: readonly ProjectionPart[], heads: number): Tensor[] {
    const dtype = computeDtype(parts[0].layer.weight);
    const { weight, bias } = this.fused(parts, heads, dtype);
    const y = computeIn(dtype, [x], (x) => linear(x, weight, bias));
    return splitHeads(y, parts.map((p) => p.headWidth), heads);
  }

  /**
   * The same product where the weights want gradients (training): the weights are
   * joined by ops on the tape, since every step changes them (a copy of the weights
   * per layer and forward, shared by a layer's calls within shareJoinedWeights), and
   * the product's gradients are one product each for the input and the joined weights
   * where the parts took three. The parts reach the product's gradient joined through
   * attention() (splitHeads).
   */
  forwardWithGrad(x: Tensor, parts: readonly ProjectionPart[], heads: number): Tensor[] {
    const dtype = computeDtype(parts[0].layer.weight);
    const { weight, bias } = this.joinOnTape(parts, heads, dtype);
    // The split outside computeIn: where x is cast, its tidy() would dispose the
    // split's whole before attention() sees it.
    const y = computeIn(dtype, [x], (x) => linear(x, weight, bias));
    return splitHeads(y, parts.map((p) => p.headWidth), heads);
  }

  private joinOnTape(parts: readonly ProjectionPart[], heads: number, dtype: DTypeName): TapeJoin {
    const of = parts.flatMap((p) => (p.layer.bias ? [p.layer.weight, p.layer.bias] : [p.layer.weight]));
    const list = sharedJoins?.get(this);
    const found = list?.find((j) => j.dtype === dtype && j.of.length === of.length && j.of.every((t, i) => t === of[i]));
    if (found) return found;
    const widths = parts.map((p) => p.headWidth);
    const biases = parts.map((p) => p.layer.bias).filter((b): b is Tensor => b !== null);
    const join = (ts: Tensor[]) => headMajorConcat(ts.map((t) => toDtype(t, dtype)), widths, heads);
    const j: TapeJoin = { of, dtype, weight: join(parts.map((p) => p.layer.weight)), bias: biases.length > 0 ? join(biases) : null };
    if (sharedJoins) {
      keep(j.weight);
      if (j.bias) keep(j.bias);
      if (list) list.push(j);
      else sharedJoins.set(this, [j]);
    }
    return j;
  }

  /** Frees the cached weight (the parts' tensors were replaced, or the owner is disposed). */
  clear(): void {
    this.cache?.weight.dispose();
    this.cache?.bias?.dispose();
    this.cache = null;
  }

  private fused(parts: readonly ProjectionPart[], heads: number, dtype: ReturnType<typeof computeDtype>): { weight: Tensor; bias: Tensor | null } {
    const weights = parts.map((p) => p.layer.weight);
    const biases = parts.map((p) => p.layer.bias).filter((b): b is Tensor => b !== null);
    const deps = [...weights, ...biases];
    const c = this.cache;
    if (stillDerived(c, deps) && c.weight.dtype === dtype) return c;
    this.clear();
    const widths = parts.map((p) => p.headWidth);
    const join = (ts: Tensor[]) => keep(tidy(() => headMajorConcat(ts.map((t) => toDtype(t, dtype)), widths, heads)));
    this.cache = { ...derivedFrom(deps), weight: join(weights), bias: biases.length > 0 ? join(biases) : null };
    return this.cache;
  }
}
