// Basic layers with PyTorch's parameter names and layouts, so their state dicts load
// PyTorch checkpoints as they are: Linear.weight is [out, in], LayerNorm has
// weight/bias, Embedding.weight is [num, dim].
import { Tensor, handleOf } from '../tensor.js';
import { initConstant, initLayer, initNormal } from './init.js';
import { linear, type Activation } from '../ops/linalg.js';
import { layerNorm } from '../ops/reduce.js';
import { embedding } from '../ops/nn.js';
import { Module } from './module.js';
import { computeDtype, computeIn, toDtype } from './autocast.js';
import { tidy } from '../scope.js';
import { describe } from '../dtype.js';
import { bool, optionKeys, options } from '../ops/args.js';

function positiveInt(layer: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
    throw new (typeof v === 'number' ? RangeError : TypeError)(`${layer}: '${name}' must be a positive integer, got ${describe(v)}`);
  return v;
}

/**
 * @internal A layer's options object (undefined: {}) with only `known` keys, with
 * `initStd` (absent or a finite number >= 0) checked, and `bias` (absent or a
 * boolean) where the layer has one (among `known`).
 */
export function layerOptions<T extends InitOptions & { bias?: boolean }>(layer: string, opts: T | undefined, known: readonly string[]): Partial<T> {
  const o = options(layer, opts, known);
  const hasBias = known.includes('bias');
  if (o.initStd !== undefined && (typeof o.initStd !== 'number' || !Number.isFinite(o.initStd) || o.initStd < 0))
    throw new (typeof o.initStd === 'number' ? RangeError : TypeError)(`${layer}: option 'initStd' must be a finite number >= 0, got ${describe(o.initStd)}`);
  if (hasBias && o.bias !== undefined) bool(layer, 'bias', o.bias);
  return o;
}

/** @internal An `eps` option: absent (the default) or a finite number >= 0. */
export function epsOption(layer: string, eps: unknown, dflt: number): number {
  if (eps === undefined) return dflt;
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0)
    throw new (typeof eps === 'number' ? RangeError : TypeError)(`${layer}: option 'eps' must be a finite number >= 0, got ${describe(eps)}`);
  return eps;
}

/** @internal A layer's forward input: a live Tensor (O(1)). */
export function inputTensor(layer: string, name: string, x: unknown): Tensor {
  handleOf(`${layer}.forward`, name, x);
  return x as Tensor;
}

export interface InitOptions {
  /**
   * Normal(0, initStd) weights and zero biases (HF's `initializer_range` scheme).
   * Default: PyTorch's own initialisation for the layer.
   */
  initStd?: number;
  device?: string;
}

export interface LinearOptions extends InitOptions {
  /** Default true. */
  bias?: boolean;
}

const LINEAR_OPTIONS = optionKeys<LinearOptions>({ initStd: true, device: true, bias: true });

/** y = x Wᵀ + b over the last axis; weight [out, in] (PyTorch layout). */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number, opts?: LinearOptions) {
    super();
    this.inFeatures = positiveInt('Linear', 'inFeatures', inFeatures);
    this.outFeatures = positiveInt('Linear', 'outFeatures', outFeatures);
    const o = layerOptions('Linear', opts, LINEAR_OPTIONS);
    const { initStd, device } = o;
    this.registerParameter('weight', initLayer([outFeatures, inFeatures], inFeatures, false, initStd, device));
    this.registerParameter('bias', o.bias === false ? null : initLayer([outFeatures], inFeatures, true, initStd, device));
  }

  get weight(): Tensor {
    return this.tensor('weight');
  }
  get bias(): Tensor | null {
    return this.optionalTensor('bias');
  }

  /**
   * x [..., in] -> [..., out]; the activation is fused into the matmul epilogue, and so
   * is `addend` (a residual broadcastable to the result, taken in the compute dtype; no
   * activation with it) where the backend can.
   */
  forward(x: Tensor, activation: Activation = 'none', addend: Tensor | null = null): Tensor {
    inputTensor('Linear', 'x', x);
    if (addend !== null && !(addend instanceof Tensor)) throw new TypeError(`Linear.forward: argument 'addend' must be a Tensor or null, got ${describe(addend)}`);
    if (x.shape[x.rank - 1] !== this.inFeatures)
      throw new RangeError(`Linear: input has ${x.shape[x.rank - 1]} features (shape [${x.shape.join(', ')}]), expected ${this.inFeatures}`);
    return computeIn(computeDtype(this.weight), [x, this.weight, this.bias, addend], (x, w, b, r) => linear(x, w, b, activation, r));
  }
}

export interface LayerNormModuleOptions {
  /** Default 1e-5 (PyTorch's default, and what HF's Perceiver uses whatever its config says). */
  eps?: number;
  device?: string;
}

const LAYER_NORM_OPTIONS = optionKeys<LayerNormModuleOptions>({ eps: true, device: true });

/** LayerNorm over the last axis with learned weight (ones) and bias (zeros). */
export class LayerNorm extends Module {
  readonly normalizedShape: number;
  readonly eps: number;

  constructor(normalizedShape: number, opts?: LayerNormModuleOptions) {
    super();
    this.normalizedShape = positiveInt('LayerNorm', 'normalizedShape', normalizedShape);
    const o = options('LayerNorm', opts, LAYER_NORM_OPTIONS);
    this.eps = epsOption('LayerNorm', o.eps, 1e-5);
    this.registerParameter('weight', initConstant([normalizedShape], 1, o.device));
    this.registerParameter('bias', initConstant([normalizedShape], 0, o.device));
  }

  forward(x: Tensor): Tensor {
    inputTensor('LayerNorm', 'x', x);
    if (x.shape[x.rank - 1] !== this.normalizedShape)
      throw new RangeError(`LayerNorm: input has ${x.shape[x.rank - 1]} channels (shape [${x.shape.join(', ')}]), expected ${this.normalizedShape}`);
    const w = this.tensor('weight');
    return computeIn(computeDtype(w), [x, w, this.tensor('bias')], (x, w, b) => layerNorm(x, w, b, { eps: this.eps }));
  }
}

const EMBEDDING_OPTIONS = optionKeys<InitOptions>({ initStd: true, device: true });

/** A lookup table weight [num, dim] indexed by int32 ids. */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;

  constructor(numEmbeddings: number, embeddingDim: number, opts?: InitOptions) {
    super();
    this.numEmbeddings = positiveInt('Embedding', 'numEmbeddings', numEmbeddings);
    this.embeddingDim = positiveInt('Embedding', 'embeddingDim', embeddingDim);
    const o = layerOptions('Embedding', opts, EMBEDDING_OPTIONS);
    // PyTorch's default is N(0, 1).
    this.registerParameter('weight', initNormal([numEmbeddings, embeddingDim], o.initStd ?? 1, o.device));
  }

  get weight(): Tensor {
    return this.tensor('weight');
  }

  /** int32 ids [...] -> [..., dim]. An id out of range rejects the result's data(). */
  forward(ids: Tensor): Tensor {
    // The looked-up rows are cast, not the table: under autocast that is the smaller tensor.
    const dt = computeDtype(this.weight);
    if (dt === this.weight.dtype) return embedding(this.weight, ids);
    return tidy(() => toDtype(embedding(this.weight, ids), dt));
  }
}

