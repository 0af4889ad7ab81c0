// HF's PerceiverBasicDecoder: output queries (a position encoding) cross-attend to
// the latents, then an optional final Linear. Queries are trainable, or Fourier
// features of the output grid: over the full grid linspace(-1, 1, d) per axis, over
// subsampled points -1 + 2*unravel(i)/dims (two conventions, kept from HF and
// DeepMind alike: a grid point's coordinates differ between them); with position_encoding_only the module only builds queries (the
// multimodal decoder's per-modality parts).
// Full-grid Fourier queries follow DeepMind (and the SPEC): the grid is
// output_index_dims. HF's decoder_query builds them over inputs.shape[2:] instead,
// which for [B, M, C] inputs is the channel axis, so HF outputs cannot serve as a
// reference for this path.
import { Linear, Module, Tensor, cast, concat, notEqual, reshape, tidy, toDtype } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import { PerceiverLayer } from '../layer.js';
import { PerceiverFourierPositionEncoding, PerceiverTrainablePositionEncoding, fourierOptionsArg, overBatch, trainableOptionsArg, type FourierOptions } from '../position-encoding.js';
import { describe } from '../../lib/dtype.js';
import { boolArg, configArg, deviceArg, intArg, intListArg, knownKeysArg, objectArg, oneOfArg, optionKeys, optionalTensorArg, tensorArg } from '../args.js';

/** A decoder's forward tensors, checked at entry (op names the decoder). */
export function decoderForwardArgs(op: string, query: unknown, z: unknown, queryMask: unknown): void {
  tensorArg(op, 'query', query, { rank: 3, dtype: 'float', shape: '[B, N_out, C]' });
  tensorArg(op, 'z', z, { rank: 3, dtype: 'float', shape: '[B, N, d_latents]' });
  optionalTensorArg(op, 'queryMask', queryMask, { rank: 2, shape: '[B, N_out]' });
}

/** decoderQuery's inputs [B, M, C] and context object. */
export function decoderQueryArgs(op: string, inputs: unknown, ctx: unknown): void {
  tensorArg(op, 'inputs', inputs, { shape: '[B, M, C]' });
  knownKeysArg(op, 'ctx', objectArg(op, 'ctx', ctx as object), QUERY_CONTEXT_KEYS);
}

export interface PerceiverBasicDecoderOptions {
  outputNumChannels: number;
  /** Default 'trainable'. */
  positionEncodingType?: 'trainable' | 'fourier' | 'none';
  outputIndexDims?: number | readonly number[];
  /** Channels of the queries. Default 128. */
  numChannels?: number;
  qkChannels?: number | null;
  vChannels?: number | null;
  /** Default 1. */
  numHeads?: number;
  /** Default 1. */
  wideningFactor?: number;
  /** Default false. */
  useQueryResidual?: boolean;
  /** Default false. */
  concatPreprocessedInput?: boolean;
  /** Default true. */
  finalProject?: boolean;
  /** Only build queries: no cross-attention, no final layer. Default false. */
  positionEncodingOnly?: boolean;
  /** Trainable query table; required for 'trainable'. */
  trainable?: { indexDims: number | number[]; numChannels: number };
  /** Required for 'fourier'. */
  fourier?: FourierOptions;
  /** > 0: a Linear (positions_projection) maps the position encoding to this many channels. Default -1. */
  projectPosDim?: number;
  device?: string;
}

export const BASIC_DECODER_OPTIONS = optionKeys<PerceiverBasicDecoderOptions>({
  outputNumChannels: true, positionEncodingType: true, outputIndexDims: true, numChannels: true, qkChannels: true, vChannels: true,
  numHeads: true, wideningFactor: true, useQueryResidual: true, concatPreprocessedInput: true, finalProject: true,
  positionEncodingOnly: true, trainable: true, fourier: true, projectPosDim: true, device: true,
});

/** What a decoder may use to build its queries. */
export interface DecoderQueryContext {
  inputsWithoutPos?: Tensor | Record<string, Tensor> | null;
  modalitySizes?: Record<string, number>;
  /** Flat indices into the output grid (one decoder), or per modality (multimodal). */
  subsampledPoints?: ArrayLike<number> | Record<string, ArrayLike<number> | null | undefined> | null;
}

const QUERY_CONTEXT_KEYS = optionKeys<DecoderQueryContext>({ inputsWithoutPos: true, modalitySizes: true, subsampledPoints: true });

const f = Math.fround;

/** HF's subsampled coordinates: -1 + 2 * unravel(i) / dims, each step rounded to float32 as torch does. */
export function subsampledPositions(points: ArrayLike<number>, dims: readonly number[]): Float32Array {
  if (!isArrayLike(points)) throw new TypeError(`subsampledPositions: argument 'points' must be an array of flat indices, got ${describe(points)}`);
  intListArg('subsampledPositions', 'dims', dims, 1, Infinity, 1);
  const k = dims.length;
  const size = dims.reduce((a, b) => a * b, 1);
  const out = new Float32Array(points.length * k);
  for (let p = 0; p < points.length; p++) {
    let rem = points[p];
    if (typeof rem !== 'number' || !Number.isInteger(rem))
      throw new TypeError(`subsampledPositions: argument 'points[${p}]' must be an integer index into the output grid [${dims.join(', ')}], got ${describe(rem)}`);
    if (rem < 0 || rem >= size)
      throw new RangeError(`subsampled point ${points[p]} (at ${p}) is outside the output grid [${dims.join(', ')}] (size ${size})`);
    for (let a = k - 1; a >= 0; a--) {
      out[p * k + a] = f(-1 + f((2 * (rem % dims[a])) / dims[a]));
      rem = Math.floor(rem / dims[a]);
    }
  }
  return out;
}

/**
 * A decoder query mask [B, N_out] (1 = query used; any dtype) as the engine's uint8
 * mask [B, N_out, 1], broadcast over the latents: DeepMind's outer(query_mask,
 * kv_mask) with no mask on the latents. The engine outputs 0 for a row with no
 * allowed key, which is DeepMind's rule for a masked query.
 */
export function queryRowMask(queryMask: Tensor, batch: number, numQueries: number): Tensor {
  tensorArg('queryRowMask', 'queryMask', queryMask, { shape: '[B, N_out]' });
  intArg('queryRowMask', 'batch', batch, 0);
  intArg('queryRowMask', 'numQueries', numQueries, 1);
  if (queryMask.rank !== 2 || queryMask.shape[0] !== batch || queryMask.shape[1] !== numQueries)
    throw new RangeError(`query_mask must be [B, N_out] = [${batch}, ${numQueries}], got [${queryMask.shape.join(', ')}]`);
  return tidy(() => {
    const m = queryMask.dtype === 'float32' ? queryMask : cast(queryMask, 'float32');
    return reshape(notEqual(m, 0), [batch, numQueries, 1]);
  });
}

export class PerceiverBasicDecoder extends Module {
  readonly outputPositionEncodings: PerceiverTrainablePositionEncoding | PerceiverFourierPositionEncoding | null;
  readonly decodingCrossAttention: PerceiverLayer | null;
  readonly finalLayer: Linear | null;
  readonly positionsProjection: Linear | null;
  readonly concatPreprocessedInput: boolean;
  readonly positionEncodingOnly: boolean;
  readonly numChannels: number;
  readonly outputNumChannels: number;
  readonly outputIndexDims: readonly number[] | null;

  constructor(config: PerceiverConfig, opts: PerceiverBasicDecoderOptions) {
    super();
    const op = 'PerceiverBasicDecoder';
    configArg(op, config);
    objectArg(op, 'opts', opts, true);
    knownKeysArg(op, 'opts', opts, BASIC_DECODER_OPTIONS);
    oneOfArg(op, 'opts.positionEncodingType', opts.positionEncodingType, ['trainable', 'fourier', 'none']);
    for (const k of ['numChannels', 'numHeads', 'wideningFactor'] as const) if (opts[k] !== undefined) intArg(op, `opts.${k}`, opts[k], 1);
    for (const k of ['qkChannels', 'vChannels'] as const) if (opts[k] !== undefined && opts[k] !== null) intArg(op, `opts.${k}`, opts[k], 1);
    if (opts.projectPosDim !== undefined) intArg(op, 'opts.projectPosDim', opts.projectPosDim);
    for (const k of ['useQueryResidual', 'concatPreprocessedInput', 'finalProject', 'positionEncodingOnly'] as const)
      if (opts[k] !== undefined) boolArg(op, `opts.${k}`, opts[k]);
    if (!opts.positionEncodingOnly && (opts.finalProject ?? true)) intArg(op, 'opts.outputNumChannels', opts.outputNumChannels, 1);
    if (opts.positionEncodingType === 'fourier' && opts.fourier !== undefined) fourierOptionsArg(op, opts.fourier, 'opts.fourier');
    if (opts.trainable !== undefined) trainableOptionsArg(op, opts.trainable);
    deviceArg(op, 'opts.device', opts.device);
    const type = opts.positionEncodingType ?? 'trainable';
    const init = { initStd: config.initializer_range, device: opts.device };
    this.numChannels = opts.numChannels ?? 128;
    this.outputNumChannels = opts.outputNumChannels;
    const dims = opts.outputIndexDims;
    this.outputIndexDims = dims === undefined ? null : checkIndexDims(dims);
    this.concatPreprocessedInput = opts.concatPreprocessedInput ?? false;
    this.positionEncodingOnly = opts.positionEncodingOnly ?? false;
    if (type === 'trainable') {
      if (!opts.trainable) throw new TypeError(`PerceiverBasicDecoder: position_encoding_type 'trainable' needs trainable options`);
      this.outputPositionEncodings = this.registerModule(
        'output_position_encodings',
        new PerceiverTrainablePositionEncoding(opts.trainable.indexDims, opts.trainable.numChannels, init),
      );
    } else if (type === 'fourier') {
      if (!opts.fourier) throw new TypeError(`PerceiverBasicDecoder: position_encoding_type 'fourier' needs fourier options`);
      this.outputPositionEncodings = this.registerModule(
        'output_position_encodings',
        new PerceiverFourierPositionEncoding({ ...opts.fourier, device: opts.device }),
      );
    } else this.outputPositionEncodings = null;
    const project = opts.projectPosDim ?? -1;
    // Sized by the encoding's own width, as DeepMind's hk.Linear infers it (HF's
    // build_position_encoding sizes it by a separate out_channels argument).
    this.positionsProjection =
      project > 0 && this.outputPositionEncodings
        ? this.registerModule('positions_projection', new Linear(this.outputPositionEncodings.outputSize, project, init))
        : null;
    if (this.positionEncodingOnly) {
      this.decodingCrossAttention = null;
      this.finalLayer = null;
      return;
    }
    this.decodingCrossAttention = this.registerModule(
      'decoding_cross_attention',
      new PerceiverLayer({
        isCrossAttention: true,
        qkChannels: opts.qkChannels,
        vChannels: opts.vChannels,
        numHeads: opts.numHeads ?? 1,
        qDim: this.numChannels,
        kvDim: config.d_latents,
        wideningFactor: opts.wideningFactor ?? 1,
        useQueryResidual: opts.useQueryResidual ?? false,
        shapeForAttention: config.cross_attention_shape_for_attention,
        hiddenAct: config.hidden_act,
        // HF's decoder layers drop attention weights too (every PerceiverSelfAttention does).
        attentionProbsDropoutProb: config.attention_probs_dropout_prob,
        ...init,
      }),
    );
    this.finalLayer =
      opts.finalProject ?? true ? this.registerModule('final_layer', new Linear(this.numChannels, opts.outputNumChannels, init)) : null;
  }

  /** Channels of the queries this decoder builds (HF's num_query_channels). */
  get numQueryChannels(): number {
    if (!this.outputPositionEncodings) throw new Error(`PerceiverBasicDecoder: position_encoding_type 'none' builds no queries`);
    if (this.positionEncodingOnly) return this.positionsProjection ? this.positionsProjection.outFeatures : this.outputPositionEncodings.outputSize;
    return this.finalLayer ? this.outputNumChannels : this.numChannels;
  }

  /** The decoder queries [B, N_out, C] for a batch of preprocessed inputs [B, M, C']. */
  decoderQuery(inputs: Tensor, ctx: DecoderQueryContext = {}): Tensor {
    decoderQueryArgs('PerceiverBasicDecoder.decoderQuery', inputs, ctx);
    const pe = this.outputPositionEncodings;
    if (!pe) throw new Error(`PerceiverBasicDecoder: position_encoding_type 'none' builds no queries; pass them to forward()`);
    const points = ctx.subsampledPoints;
    if (points !== null && points !== undefined && !isArrayLike(points))
      throw new TypeError(`PerceiverBasicDecoder: subsampledPoints must be flat indices for one decoder`);
    return tidy(() => {
      const B = inputs.shape[0];
      // One item's queries, projected (and cast) once, then broadcast over the batch.
      let pos: Tensor;
      if (pe instanceof PerceiverTrainablePositionEncoding) pos = pe.forward(1);
      else {
        if (!this.outputIndexDims) throw new Error(`PerceiverBasicDecoder: Fourier queries need output_index_dims`);
        // The full grid's table is cached by the encoding, so repeated calls cost a view.
        pos = points ? pe.atPositions(1, subsampledPositions(points, this.outputIndexDims)) : pe.forward(1, this.outputIndexDims);
      }
      if (this.positionsProjection) pos = this.positionsProjection.forward(pos);
      if (!this.concatPreprocessedInput) return overBatch(pos, B);
      const without = ctx.inputsWithoutPos;
      if (!(without instanceof Tensor))
        throw new TypeError(`PerceiverBasicDecoder: concat_preprocessed_input needs the inputs without position encoding`);
      return concat([without, overBatch(toDtype(pos, without.dtype), B)], -1);
    });
  }

  /**
   * query [B, N_out, numChannels], z [B, N, d_latents] -> [B, N_out, outputNumChannels]
   * (numChannels without final projection). queryMask [B, N_out] (DeepMind's
   * query_mask; HF has none): a masked query's attention output is 0, while the query
   * residual and the MLP still apply to its row.
   */
  forward(query: Tensor, z: Tensor, queryMask?: Tensor | null): Tensor {
    const layer = this.decodingCrossAttention;
    if (!layer) throw new Error(`PerceiverBasicDecoder: a position_encoding_only decoder only builds queries`);
    decoderForwardArgs('PerceiverBasicDecoder.forward', query, z, queryMask);
    return tidy(() => {
      const mask = queryMask ? queryRowMask(queryMask, query.shape[0], query.shape[1]) : null;
      const out = layer.forward(query, z, mask);
      return this.finalLayer ? this.finalLayer.forward(out) : out;
    });
  }
}

// A fractional grid would still build Fourier queries (linspace takes any length) and
// accept subsampled points past the real grid, so it is refused here rather than
// giving queries at coordinates HF never produces.
function checkIndexDims(dims: unknown): number[] {
  const list = typeof dims === 'number' ? [dims] : Array.isArray(dims) ? [...(dims as unknown[])] : null;
  const shown = Array.isArray(dims) ? `[${dims.map(String).join(', ')}]` : typeof dims === 'number' ? String(dims) : typeof dims;
  const wanted = `must be a positive integer or a non-empty array of them, got ${shown}`;
  if (list === null || !list.every((d) => typeof d === 'number')) throw new TypeError(`PerceiverBasicDecoder: option 'outputIndexDims' ${wanted}`);
  if (list.length === 0 || !list.every((d) => Number.isInteger(d) && (d as number) > 0))
    throw new RangeError(`PerceiverBasicDecoder: option 'outputIndexDims' ${wanted}`);
  return list as number[];
}

function isArrayLike(v: unknown): v is ArrayLike<number> {
  return Array.isArray(v) || ArrayBuffer.isView(v);
}
