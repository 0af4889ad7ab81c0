// Perceiver attention with HF's module tree (attention.self.{layernorm1, layernorm2,
// query, key, value}, attention.output.dense), so HF state dicts load by name.
// The [B, H, Nq, Nk] logits are never materialised: the engine's fused attention
// streams over keys, which is what lets 512 latents attend to 50,176 pixels.
// A one-head cross-attention goes through fast-attention.ts when that is cheaper
// (it never projects the keys and values); the plain path stays the reference.
// Training with attention-weight dropout (HF's attention_probs_dropout_prob) takes the
// unfused attention-dropout.ts instead: the weights must exist to be dropped. The
// projections of one input run as one product (fused-projection.ts), and in inference
// a cross-attention's queries broadcast over the batch are projected as one row.
import { attention, broadcastTo, computeDtype, keep, needsGrad, reshape, slice, tidy, toDtype, Linear, LayerNorm, Module, type Tensor, type InitOptions } from '../lib/index.js';
import { batchBroadcast } from '../lib/tensor.js';
import { describe } from '../lib/dtype.js';
import { boolArg, deviceArg, INIT_OPTIONS, intArg, knownKeysArg, objectArg, optionKeys, optionalTensorArg, tensorArg } from './args.js';
import { attentionWithDropout } from './attention-dropout.js';
import { fastCrossAttentionMacs, fastSingleHeadCrossAttention, foldQueries, plainCrossAttentionMacs } from './fast-attention.js';
import { derivedFrom, stillDerived, type Derived } from './derived.js';
import { canFuseProjections, FusedProjection, type ProjectionPart } from './fused-projection.js';

// Query tensors whose values never change while the tensor lives (the latents'
// broadcast view): their folded queries may be cached. Tensors are immutable, so a
// marked tensor's identity stands for its values.
const staticQueries = new WeakSet<Tensor>();

/** Marks t as reused across forward calls, so attention may cache what it derives from it. */
export function markStaticQueries(t: Tensor): Tensor {
  tensorArg('markStaticQueries', 't', t);
  staticQueries.add(t);
  return t;
}

export interface PerceiverSelfAttentionOptions extends InitOptions {
  /** Keys and values come from a second input (with its own LayerNorm). */
  isCrossAttention?: boolean;
  /** Default qDim. */
  qkChannels?: number | null;
  /** Default qkChannels. */
  vChannels?: number | null;
  /** Default 1. */
  numHeads?: number;
  qDim: number;
  /** Channels of the key/value input; default qDim. */
  kvDim?: number;
  /**
   * Dropout on the attention weights while training (HF's attention_probs_dropout_prob),
   * in [0, 1). Default 0. Evaluation mode never drops.
   */
  attentionProbsDropoutProb?: number;
}

const SELF_ATTENTION_OPTIONS = optionKeys<PerceiverSelfAttentionOptions>({
  isCrossAttention: true, qkChannels: true, vChannels: true, numHeads: true, qDim: true, kvDim: true, attentionProbsDropoutProb: true, initStd: true, device: true,
});

/** The option fields PerceiverSelfAttention and PerceiverAttention read, checked at construction (op names the class). */
function attentionOptionsArg(op: string, opts: PerceiverAttentionOptions, known: readonly string[]): void {
  objectArg(op, 'opts', opts, true);
  knownKeysArg(op, 'opts', opts, known);
  intArg(op, 'opts.qDim', opts.qDim, 1);
  if (opts.kvDim !== undefined) intArg(op, 'opts.kvDim', opts.kvDim, 1);
  if (opts.numHeads !== undefined) intArg(op, 'opts.numHeads', opts.numHeads, 1);
  for (const k of ['qkChannels', 'vChannels'] as const) if (opts[k] !== undefined && opts[k] !== null) intArg(op, `opts.${k}`, opts[k], 1);
  for (const k of ['isCrossAttention', 'useQueryResidual'] as const) if (opts[k] !== undefined) boolArg(op, `opts.${k}`, opts[k]);
  if (opts.shapeForAttention !== undefined && opts.shapeForAttention !== 'q' && opts.shapeForAttention !== 'kv')
    throw new TypeError(`${op}: argument 'opts.shapeForAttention' must be 'q' or 'kv', got ${describe(opts.shapeForAttention)}`);
  deviceArg(op, 'opts.device', opts.device);
}

/** The tensors of an attention forward, checked at entry. */
export function attentionInputsArg(op: string, hiddenStates: unknown, inputs: unknown, mask: unknown, queryScale: unknown): void {
  tensorArg(op, 'hiddenStates', hiddenStates, { rank: 3, dtype: 'float', shape: '[B, Nq, qDim]' });
  optionalTensorArg(op, 'inputs', inputs, { rank: 3, dtype: 'float', shape: '[B, Nk, kvDim]' });
  optionalTensorArg(op, 'mask', mask, { shape: '[B, Nq, Nk] (broadcastable)' });
  optionalTensorArg(op, 'queryScale', queryScale, { rank: 3, dtype: 'float', shape: '[B, 1, 1]' });
}

function divisible(what: string, channels: number, heads: number): void {
  if (!Number.isSafeInteger(heads) || heads <= 0) throw new TypeError(`PerceiverSelfAttention: num_heads must be a positive integer, got ${heads}`);
  if (channels % heads !== 0)
    throw new RangeError(`PerceiverSelfAttention: ${what} (${channels}) must be divisible by num_heads (${heads})`);
}

/** Multi-head {cross, self}-attention: LayerNorm(s), q/k/v projections, fused attend. */
export class PerceiverSelfAttention extends Module {
  readonly numHeads: number;
  readonly qkChannels: number;
  readonly vChannels: number;
  readonly isCrossAttention: boolean;
  readonly layernorm1: LayerNorm;
  readonly layernorm2: LayerNorm | null;
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  /** Probability of dropping each attention weight in training mode. */
  readonly attentionProbsDropoutProb: number;
  /**
   * Let a one-head cross-attention skip the key/value projections when that costs
   * fewer multiply-adds (the same function up to float32 rounding). Default true;
   * false forces the plain path, the reference.
   */
  fastPath = true;
  // The projections of one input (query, key and value in a self-attention; key and
  // value in a cross-attention) as one product: over cached joined weights where no
  // gradient is wanted, over weights joined on the tape in training.
  private fused = new FusedProjection();
  private fuse = true;
  // Folded queries for static query tensors, while derived.ts says they are current.
  private foldCache: (Derived & { folded: Tensor }) | null = null;

  constructor(opts: PerceiverSelfAttentionOptions) {
    super();
    attentionOptionsArg('PerceiverSelfAttention', opts, SELF_ATTENTION_OPTIONS);
    const { qDim, initStd, device } = opts;
    const kvDim = opts.kvDim ?? qDim;
    this.isCrossAttention = opts.isCrossAttention ?? false;
    this.numHeads = opts.numHeads ?? 1;
    this.qkChannels = opts.qkChannels ?? qDim;
    this.vChannels = opts.vChannels ?? this.qkChannels;
    divisible('qk_channels', this.qkChannels, this.numHeads);
    divisible('v_channels', this.vChannels, this.numHeads);
    const p = opts.attentionProbsDropoutProb ?? 0;
    if (typeof p !== 'number' || !(p >= 0 && p < 1))
      throw new RangeError(`PerceiverSelfAttention: attention_probs_dropout_prob must be a number in [0, 1), got ${JSON.stringify(p)}`);
    this.attentionProbsDropoutProb = p;
    const init = { initStd, device };
    this.layernorm1 = this.registerModule('layernorm1', new LayerNorm(qDim, { device }));
    this.layernorm2 = this.isCrossAttention ? this.registerModule('layernorm2', new LayerNorm(kvDim, { device })) : null;
    this.query = this.registerModule('query', new Linear(qDim, this.qkChannels, init));
    this.key = this.registerModule('key', new Linear(kvDim, this.qkChannels, init));
    this.value = this.registerModule('value', new Linear(kvDim, this.vChannels, init));
  }

  /**
   * hiddenStates [B, Nq, qDim], inputs [B, Nk, kvDim] (cross-attention only), mask
   * uint8 broadcastable to [B, Nq, Nk] (0 = key not attended) -> [B, Nq, vChannels].
   * queryScale [B, 1, 1] multiplies the projected queries: a 0 there makes every logit
   * of that batch row equal, which is how HF's additive mask behaves when it masks
   * every key (a uniform average of the values; see hfKeyMask in perceiver.ts).
   */
  forward(hiddenStates: Tensor, inputs?: Tensor | null, mask?: Tensor | null, queryScale?: Tensor | null): Tensor {
    attentionInputsArg('PerceiverSelfAttention.forward', hiddenStates, inputs, mask, queryScale);
    if (this.isCrossAttention !== (inputs !== undefined && inputs !== null))
      throw new TypeError(
        this.isCrossAttention
          ? `PerceiverSelfAttention: a cross-attention needs 'inputs' (the keys and values)`
          : `PerceiverSelfAttention: a self-attention takes no 'inputs'`,
      );
    // Dropped-out weights no longer sum to one per row, which the fast path's bias fold
    // relies on, so training with dropout takes the plain path.
    const dropping = this.training && this.attentionProbsDropoutProb > 0;
    return tidy(() => {
      if (!dropping && this.layernorm2 && inputs && this.prefersFastPath(hiddenStates.shape[1], inputs.shape[1], inputs.shape[2])) {
        const folded = this.foldedQueries(hiddenStates);
        // The fast path uses the value weights directly: they compute in the layer's dtype.
        const dt = folded.dtype;
        return fastSingleHeadCrossAttention(
          queryScale ? folded.mul(toDtype(queryScale, dt)) : folded,
          this.layernorm2.forward(inputs),
          toDtype(this.value.weight, dt),
          this.value.bias && toDtype(this.value.bias, dt),
          mask ?? null,
        );
      }
      // A cross-attention's queries broadcast over the batch (the latents, a decoder's
      // position queries) are the same in every batch row: one row's layer norm and
      // projection, broadcast back, where no gradient is wanted (the language model's
      // decoder at batch 32: a [32, 2048, 768] layer norm and a [32, 2048, 256] product).
      const oneRow =
        this.isCrossAttention &&
        !dropping &&
        batchBroadcast(hiddenStates) &&
        !needsGrad(hiddenStates, ...this.layernorm1.parameters(), ...this.query.parameters());
      const q = this.layernorm1.forward(oneRow ? slice(hiddenStates, 0, 0, 1) : hiddenStates);
      const kv = this.layernorm2 && inputs ? this.layernorm2.forward(inputs) : q;
      const [B, Nq] = hiddenStates.shape;
      const Nk = kv.shape[1];
      const H = this.numHeads;
      const heads = (x: Tensor, n: number, c: number) => reshape(x, [B, n, H, c / H]);
      const parts = dropping ? null : this.fusedParts(queryScale);
      const query = () => {
        const projected = this.query.forward(q);
        const scaled = queryScale ? projected.mul(toDtype(queryScale, projected.dtype)) : projected;
        if (scaled.shape[0] === B) return heads(scaled, Nq, this.qkChannels);
        const d = this.qkChannels / H;
        return broadcastTo(reshape(scaled, [1, Nq, H, d]), [B, Nq, H, d]);
      };
      let qh: Tensor, kh: Tensor, vh: Tensor;
      if (parts) {
        // Weights that want gradients are joined on the tape; frozen ones use the cached
        // join, whose product still sends an input's gradient back.
        const weightsGrad = needsGrad(...parts.flatMap((p) => [p.layer.weight, p.layer.bias]));
        const views = weightsGrad ? this.fused.forwardWithGrad(kv, parts, H) : this.fused.forward(kv, parts, H);
        [qh, kh, vh] = parts.length === 3 ? views : [query(), ...views];
      } else {
        qh = query();
        kh = heads(this.key.forward(kv), Nk, this.qkChannels);
        vh = heads(this.value.forward(kv), Nk, this.vChannels);
      }
      const out = dropping
        ? attentionWithDropout(qh, kh, vh, { mask: mask ?? null, p: this.attentionProbsDropoutProb })
        : attention(qh, kh, vh, { mask: mask ?? null });
      // [B, Nq, H, Dv] -> [B, Nq, H*Dv]: heads concatenated head-major, as HF's permute+view.
      return reshape(out, [B, Nq, this.vChannels]);
    });
  }

  /**
   * Whether the projections of one input run as one product over their weights joined
   * (fused-projection.ts; the same function up to float rounding), in inference and in
   * training. Default true; in inference the joined weights are a second copy of the
   * query, key and value weights (of key and value in a cross-attention) in the
   * compute dtype, which false frees. Attention dropout always takes the three
   * products.
   */
  get fuseProjections(): boolean {
    return this.fuse;
  }
  set fuseProjections(enabled: boolean) {
    boolArg('PerceiverSelfAttention.fuseProjections', 'enabled', enabled);
    this.fuse = enabled;
    if (!enabled) this.fused.clear();
  }

  /** The parts that share one product, or null where they do not. */
  private fusedParts(queryScale: Tensor | null | undefined): ProjectionPart[] | null {
    if (!this.fuse) return null;
    const H = this.numHeads;
    const qk = this.qkChannels / H;
    const kv = [
      { layer: this.key, headWidth: qk },
      { layer: this.value, headWidth: this.vChannels / H },
    ];
    // A scaled query is a separate product (its scale applies to it alone).
    const parts = this.isCrossAttention || queryScale ? kv : [{ layer: this.query, headWidth: qk }, ...kv];
    return canFuseProjections(parts, H) ? parts : null;
  }

  private prefersFastPath(nq: number, nk: number, kvDim: number): boolean {
    if (!this.fastPath || !this.isCrossAttention || this.numHeads !== 1) return false;
    const [qk, v] = [this.qkChannels, this.vChannels];
    return fastCrossAttentionMacs(nq, nk, kvDim, qk, v) < plainCrossAttentionMacs(nq, nk, kvDim, qk, v);
  }

  /** LN(hs) Wqᵀ + bq folded through the key weight, cached for static query tensors. */
  private foldedQueries(hiddenStates: Tensor): Tensor {
    const deps = [
      hiddenStates,
      ...this.layernorm1.namedParameters().map(([, t]) => t),
      ...this.query.namedParameters().map(([, t]) => t),
      this.key.weight,
    ];
    // While training, the fold is part of the graph and must be recomputed every call.
    const fold = (): Tensor => {
      const q = this.query.forward(this.layernorm1.forward(hiddenStates));
      return foldQueries(q, toDtype(this.key.weight, q.dtype));
    };
    if (needsGrad(...deps)) return fold();
    const c = this.foldCache;
    // The same tensors fold to another dtype under autocast.
    if (stillDerived(c, deps) && !c.folded.disposed && c.folded.dtype === computeDtype(this.key.weight)) return c.folded;
    const folded = fold();
    if (staticQueries.has(hiddenStates)) {
      this.clearFoldCache();
      this.foldCache = { ...derivedFrom(deps), folded: keep(folded) };
    }
    return folded;
  }

  private clearFoldCache(): void {
    this.foldCache?.folded.dispose();
    this.foldCache = null;
  }

  protected override onDispose(): void {
    this.clearFoldCache();
    this.fused.clear();
  }

  /** The cached fold and fused weights belong to the weights to() replaced. */
  protected override onTo(): void {
    this.clearFoldCache();
    this.fused.clear();
  }
}

/** Sets fastPath on every PerceiverSelfAttention under module (false: the plain reference path everywhere). */
export function setFastCrossAttention(module: Module, enabled: boolean): void {
  if (!(module instanceof Module)) throw new TypeError(`setFastCrossAttention: argument 'module' must be a Module, got ${describe(module)}`);
  boolArg('setFastCrossAttention', 'enabled', enabled);
  if (module instanceof PerceiverSelfAttention) module.fastPath = enabled;
  for (const [, child] of module.namedChildren()) setFastCrossAttention(child, enabled);
}

/** Sets fuseProjections on every PerceiverSelfAttention under module (false: three products, and no second copy of their weights). */
export function setFusedProjections(module: Module, enabled: boolean): void {
  if (!(module instanceof Module)) throw new TypeError(`setFusedProjections: argument 'module' must be a Module, got ${describe(module)}`);
  boolArg('setFusedProjections', 'enabled', enabled);
  if (module instanceof PerceiverSelfAttention) module.fuseProjections = enabled;
  for (const [, child] of module.namedChildren()) setFusedProjections(child, enabled);
}

/** The output projection after attention (HF's `attention.output.dense`). */
export class PerceiverSelfOutput extends Module {
  readonly dense: Linear;

  constructor(inputChannels: number, outputChannels: number, opts: InitOptions = {}) {
    super();
    intArg('PerceiverSelfOutput', 'inputChannels', inputChannels, 1);
    intArg('PerceiverSelfOutput', 'outputChannels', outputChannels, 1);
    objectArg('PerceiverSelfOutput', 'opts', opts);
    knownKeysArg('PerceiverSelfOutput', 'opts', opts, INIT_OPTIONS);
    this.dense = this.registerModule('dense', new Linear(inputChannels, outputChannels, opts));
  }

  /** x, plus `residual` (added in the product's epilogue where the backend can). */
  forward(x: Tensor, residual: Tensor | null = null): Tensor {
    tensorArg('PerceiverSelfOutput.forward', 'x', x, { dtype: 'float' });
    optionalTensorArg('PerceiverSelfOutput.forward', 'residual', residual, { dtype: 'float' });
    return this.dense.forward(x, 'none', residual);
  }
}

export interface PerceiverAttentionOptions extends PerceiverSelfAttentionOptions {
  /** For cross-attention without explicit qkChannels: take them from the 'q' or the 'kv' input (HF's config field). */
  shapeForAttention?: 'q' | 'kv';
  /** Add the (un-normalised) queries to the output. Default true. */
  useQueryResidual?: boolean;
}

export const ATTENTION_OPTIONS = [...SELF_ATTENTION_OPTIONS, ...optionKeys<Omit<PerceiverAttentionOptions, keyof PerceiverSelfAttentionOptions>>({ shapeForAttention: true, useQueryResidual: true })];

/** Attention plus output projection and optional query residual (HF's PerceiverAttention). */
export class PerceiverAttention extends Module {
  readonly self: PerceiverSelfAttention;
  readonly output: PerceiverSelfOutput;
  readonly useQueryResidual: boolean;

  constructor(opts: PerceiverAttentionOptions) {
    super();
    attentionOptionsArg('PerceiverAttention', opts, ATTENTION_OPTIONS);
    const isCross = opts.isCrossAttention ?? false;
    const kvDim = opts.kvDim ?? opts.qDim;
    let qk = opts.qkChannels ?? null;
    let v = opts.vChannels ?? null;
    // HF's channel defaults: a cross-attention sizes qk by the input named in
    // cross_attention_shape_for_attention (v then follows qk); a self-attention by q.
    if (isCross && qk === null) qk = (opts.shapeForAttention ?? 'kv') === 'q' ? opts.qDim : kvDim;
    else {
      qk ??= opts.qDim;
      v ??= qk;
    }
    // The self-attention has no query residual nor shape rule of its own: it is given neither.
    const { shapeForAttention: _shape, useQueryResidual: _residual, ...selfOpts } = opts;
    this.self = this.registerModule('self', new PerceiverSelfAttention({ ...selfOpts, qkChannels: qk, vChannels: v }));
    const outChannels = isCross ? opts.qDim : this.self.vChannels;
    this.useQueryResidual = opts.useQueryResidual ?? true;
    if (this.useQueryResidual && outChannels !== opts.qDim)
      throw new RangeError(`PerceiverAttention: the query residual needs output channels (${outChannels}) equal to q_dim (${opts.qDim})`);
    this.output = this.registerModule(
      'output',
      new PerceiverSelfOutput(this.self.vChannels, outChannels, { initStd: opts.initStd, device: opts.device }),
    );
  }

  /** Channels of the result. */
  get outputChannels(): number {
    return this.output.dense.outFeatures;
  }

  forward(hiddenStates: Tensor, inputs?: Tensor | null, mask?: Tensor | null, queryScale?: Tensor | null): Tensor {
    attentionInputsArg('PerceiverAttention.forward', hiddenStates, inputs, mask, queryScale);
    return tidy(() => {
      // The residual joins in the block's compute dtype (queries may arrive as float32
      // positions): the output projection casts it with its own operands.
      return this.output.forward(this.self.forward(hiddenStates, inputs, mask, queryScale), this.useQueryResidual ? hiddenStates : null);
    });
  }
}
