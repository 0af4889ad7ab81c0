// Position encodings: trainable tables and Fourier features.
//
// Fourier features are built on the JS side in float32 arithmetic (Math.fround after
// every operation), in the order HF's PyTorch code rounds: torch.linspace positions
// and bands in float32, pos * band rounded, then float32(pi) * that rounded, then
// sin/cos (correctly rounded here; PyTorch's SLEEF sin/cos are within 1 ulp). HF does this in float32 even in a float64 run, and at 224 px the rounded
// arguments (up to pi * 112) differ from exact ones by ~3e-5, a visible share of the
// parity tolerance; reproducing the rounding removes that error. They depend only on
// the index dims, so the tables of the last few shapes are cached (FOURIER_CACHE_SIZE,
// FOURIER_CACHE_BYTES).
import { Module, broadcastTo, computeDtype, initNormal, keep, reshape, tensor, tidy, toDtype, type Tensor, type InitOptions } from '../lib/index.js';
import { interpolateChannelsLast } from '../lib/nn/interpolate.js';
import { DTYPE_SIZE, describe } from '../lib/dtype.js';
import { kMaxLength } from 'node:buffer';
import { cachedIn } from './lru.js';
import { boolArg, deviceArg, INIT_OPTIONS, intArg, intListArg, knownKeysArg, numberArg, objectArg, optionKeys, tensorArg } from './args.js';

const f = Math.fround;

// One float32 multiply-add, rounded once as a fused multiply-add is. The product of
// two float32 values is exact in a double, so the double sum rounds like the FMA does.
const fma = (a: number, b: number, c: number): number => f(a * b + c);

/**
 * torch.linspace(start, end, steps) in float32, bit for bit as PyTorch's x86-64 CPU
 * kernel computes it (AVX2 dispatch, compiled with FMA contraction): the first half
 * counts up from start, the second half down from end, and inside each run of 16 the
 * elements are base + k*step from the run's first element (two 8-wide vectors).
 * Rounding differences of one ulp matter here: positions times bands of up to R/2
 * magnify them. Measured on the image_fourier fixture: 2.3e-5 max logit error with
 * this, 2.0e-4 with the plain per-element formula, 6.8e-5 with exact arithmetic.
 */
// Positions are built in JS arrays: past this many floats (4 GiB) the engine's
// allocation would fail with its own message, naming no function.
const MAX_POSITIONS = 2 ** 30;
// The most elements a typed array may have (2^32 on Node 20), the feature table's bound.
const MAX_TABLE_VALUES = kMaxLength;

export function linspaceF32(start: number, end: number, steps: number): Float32Array {
  numberArg('linspaceF32', 'start', start);
  numberArg('linspaceF32', 'end', end);
  intArg('linspaceF32', 'steps', steps, 0, MAX_POSITIONS);
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f(start);
  const e = f(end);
  const step = f((e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const at = (i: number): number => (i < halfway ? fma(step, i, s) : fma(-step, steps - i - 1, e));
  const WIDTH = 8;
  const vectorised = Math.floor(steps / (2 * WIDTH)) * 2 * WIDTH;
  let i = 0;
  for (; i < vectorised; i += WIDTH) {
    const base = at(i);
    out[i] = base;
    for (let k = 1; k < WIDTH; k++) out[i + k] = fma(k, step, base);
  }
  for (; i < steps; i++) out[i] = at(i);
  return out;
}

/** A grid of linspace(-1, 1, d) per axis in 'ij' order, flattened row-major: [prod(dims), dims.length]. */
export function linearPositions(indexDims: readonly number[]): Float32Array {
  intListArg('linearPositions', 'indexDims', indexDims, 1, Infinity, 1);
  const n = indexDims.reduce((a, b) => a * b, 1);
  const k = indexDims.length;
  if (n * k > MAX_POSITIONS)
    throw new RangeError(`linearPositions: argument 'indexDims' ([${indexDims.join(', ')}]) makes ${n * k} coordinates, more than ${MAX_POSITIONS}`);
  const axes = indexDims.map((d) => linspaceF32(-1, 1, d));
  const out = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    let rem = i;
    for (let a = k - 1; a >= 0; a--) {
      out[i * k + a] = axes[a][rem % indexDims[a]];
      rem = Math.floor(rem / indexDims[a]);
    }
  }
  return out;
}

export interface FourierOptions {
  numBands: number;
  /** Per axis; frequencies run linspace(1, R/2, numBands). */
  maxResolution: readonly number[];
  /** Put the raw positions first. Default true. */
  concatPos?: boolean;
  /** Only sin, no cos. Default false. */
  sineOnly?: boolean;
}

const FOURIER_OPTIONS = optionKeys<FourierOptions>({ numBands: true, maxResolution: true, concatPos: true, sineOnly: true });

/**
 * Fourier features of positions pos [n, k] (k = maxResolution.length):
 * [pos if concatPos, sin(pi f), cos(pi f) unless sineOnly], f ordered axis-major.
 */
export function fourierFeatures(pos: Float32Array, opts: FourierOptions): { data: Float32Array; channels: number } {
  fourierOptionsArg('fourierFeatures', opts);
  positionsArg('fourierFeatures', 'pos', pos, opts.maxResolution.length);
  const k = opts.maxResolution.length;
  const K = opts.numBands;
  const concatPos = opts.concatPos ?? true;
  const sineOnly = opts.sineOnly ?? false;
  const n = pos.length / k;
  const bands = opts.maxResolution.map((r) => linspaceF32(1, r / 2, K));
  const pi = f(Math.PI);
  const channels = (concatPos ? k : 0) + k * K * (sineOnly ? 1 : 2);
  // Past what one Float32Array holds, V8's own RangeError names no function and no
  // shape (a 4096x4096 image at 64 bands: 'Invalid typed array length: 4328521728').
  if (n * channels > MAX_TABLE_VALUES)
    throw new RangeError(`fourierFeatures: ${n} positions x ${channels} channels make ${n * channels} values, more than one Float32Array holds (${MAX_TABLE_VALUES}); use a smaller input`);
  const out = new Float32Array(n * channels);
  // A feature depends only on its coordinate's value, and a grid's coordinates take few
  // values (224 per axis of 50,176 positions): each distinct value (by its bits, so -0
  // is not 0) gets its sin/cos rows once, then rows are copied. 224x224 at 64 bands
  // computes 29k sines and cosines instead of 12.8M, which held the event loop ~0.4 s.
  const bits = new Uint32Array(pos.buffer, pos.byteOffset, pos.length);
  // Axis a's K sines of coordinate value v at dst[sinAt..], its cosines at dst[cosAt..].
  const writeFeatures = (a: number, v: number, dst: Float32Array, sinAt: number, cosAt: number): void => {
    for (let b = 0; b < K; b++) {
      const arg = f(pi * f(v * bands[a][b]));
      dst[sinAt + b] = Math.sin(arg);
      if (!sineOnly) dst[cosAt + b] = Math.cos(arg);
    }
  };
  // Per axis, coordinate bits -> the value's K sines and K cosines (views of one row).
  const rows = Array.from({ length: k }, () => new Map<number, { sin: Float32Array; cos: Float32Array }>());
  const rowOf = (a: number, i: number): { sin: Float32Array; cos: Float32Array } => {
    const key = bits[i * k + a];
    let r = rows[a].get(key);
    if (r === undefined) {
      const row = new Float32Array(sineOnly ? K : 2 * K);
      writeFeatures(a, pos[i * k + a], row, 0, K);
      r = { sin: row.subarray(0, K), cos: row.subarray(sineOnly ? 0 : K) };
      rows[a].set(key, r);
    }
    return r;
  };
  // Only an axis whose values repeat: where most are distinct (a 1-D sequence such as
  // audio samples, explicit positions), the lookups, row arrays and copies cost more
  // than they save (61440 audio positions took 1.3x as long, random ones 1.6x).
  const memo = Array.from({ length: k }, (_, a) => {
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) seen.add(bits[i * k + a]);
    return seen.size * 2 <= n;
  });
  for (let i = 0; i < n; i++) {
    const row = i * channels;
    let c = 0;
    if (concatPos) for (let a = 0; a < k; a++) out[row + c++] = pos[i * k + a];
    const base = row + c;
    for (let a = 0; a < k; a++) {
      if (!memo[a]) {
        writeFeatures(a, pos[i * k + a], out, base + a * K, base + k * K + a * K);
        continue;
      }
      const r = rowOf(a, i);
      out.set(r.sin, base + a * K);
      if (!sineOnly) out.set(r.cos, base + k * K + a * K);
    }
  }
  return { data: out, channels };
}

/** Checks a FourierOptions object (op's argument 'opts'), with the keys known beside it; O(number of axes). */
export function fourierOptionsArg(op: string, opts: FourierOptions, name = 'opts', extraKeys: readonly string[] = []): void {
  objectArg(op, name, opts, true);
  knownKeysArg(op, name, opts, [...FOURIER_OPTIONS, ...extraKeys]);
  intArg(op, `${name}.numBands`, opts.numBands, 1);
  intListArg(op, `${name}.maxResolution`, opts.maxResolution, 1, Infinity, 1);
  if (opts.concatPos !== undefined) boolArg(op, `${name}.concatPos`, opts.concatPos);
  if (opts.sineOnly !== undefined) boolArg(op, `${name}.sineOnly`, opts.sineOnly);
}

/** The trainable table options of a preprocessor or decoder ({indexDims, numChannels}, op's argument 'opts.trainable'). */
export function trainableOptionsArg(op: string, opts: { indexDims: number | number[]; numChannels: number }): void {
  objectArg(op, 'opts.trainable', opts, true);
  knownKeysArg(op, 'opts.trainable', opts, ['indexDims', 'numChannels']);
}

/** Positions [n, k] as a Float32Array whose length k divides. */
function positionsArg(op: string, name: string, pos: unknown, k: number): void {
  if (!(pos instanceof Float32Array)) throw new TypeError(`${op}: argument '${name}' must be a Float32Array of positions [n, ${k}], got ${describe(pos)}`);
  if (pos.length % k !== 0) throw new RangeError(`${op}: argument '${name}' must hold positions [n, ${k}], got ${pos.length} values`);
}

/**
 * One item's positions pos [1, N, C] as [batchSize, N, C], a broadcast view: what was
 * done to pos (a projection, a cast) ran once for the whole batch.
 */
export function overBatch(pos: Tensor, batchSize: number): Tensor {
  tensorArg('overBatch', 'pos', pos, { rank: [1, 2, 3, 4, 5, 6], shape: '[1, N, C]' });
  intArg('overBatch', 'batchSize', batchSize, 0);
  return broadcastTo(pos, [batchSize, ...pos.shape.slice(1)]);
}

export interface PositionEncodingOptions {
  /**
   * A trainable table of a square grid is resized (bicubic) to the inputs' first two
   * index dims when they differ from its own, as HF's interpolate_pos_encoding. Other
   * encodings ignore it (Fourier features are computed for any size).
   */
  interpolatePosEncoding?: boolean;
}

const POSITION_ENCODING_OPTIONS = optionKeys<PositionEncodingOptions>({ interpolatePosEncoding: true });

export interface PositionEncoding extends Module {
  /** Channels of the encoding. */
  readonly outputSize: number;
  /** Number of index dims it encodes (HF's num_dimensions): 3 marks video [T, H, W]. */
  readonly numDimensions: number;
  /** [B, prod(indexDims), outputSize]. */
  forward(batchSize: number, indexDims: readonly number[], opts?: PositionEncodingOptions): Tensor;
}

/** HF's PerceiverTrainablePositionEncoding: parameter position_embeddings [prod(indexDims), C]. */
export class PerceiverTrainablePositionEncoding extends Module implements PositionEncoding {
  readonly outputSize: number;
  readonly indexDims: readonly number[];

  constructor(indexDims: number | readonly number[], numChannels = 128, opts: InitOptions = {}) {
    super();
    const op = 'PerceiverTrainablePositionEncoding';
    if (typeof indexDims === 'number') intArg(op, 'indexDims', indexDims, 1);
    else intListArg(op, 'indexDims', indexDims, 1, Infinity, 1);
    intArg(op, 'numChannels', numChannels, 1);
    objectArg(op, 'opts', opts);
    knownKeysArg(op, 'opts', opts, INIT_OPTIONS);
    this.indexDims = typeof indexDims === 'number' ? [indexDims] : [...indexDims];
    this.outputSize = numChannels;
    const n = this.indexDims.reduce((a, b) => a * b, 1);
    this.registerParameter('position_embeddings', initNormal([n, numChannels], opts.initStd ?? 1, opts.device));
  }

  get numDimensions(): number {
    return this.indexDims.length;
  }

  // The grid the table's rows are laid out on: its own index dims, or, for a flat
  // table of a square count read by 2-D inputs (HF's image preprocessors make
  // image_size² rows), the square interpolatePosEncoding also reads it as.
  private grid(): readonly number[] {
    const n = this.indexDims[0];
    const side = Math.round(Math.sqrt(n));
    return this.indexDims.length === 1 && side * side === n ? [side, side] : this.indexDims;
  }

  // Inputs of the table's count in another shape would take its rows by flat index:
  // an 8x8 table read by a 4x16 image puts row 8's positions on the first row's end.
  private sameGrid(dims: readonly number[]): boolean {
    const grid = dims.length === 2 ? this.grid() : this.indexDims;
    if (dims.length !== grid.length) return this.indexDims.length === 1;  // a flat table read by count, as HF does
    return dims.every((d, i) => d === grid[i]);
  }

  get positionEmbeddings(): Tensor {
    return this.tensor('position_embeddings');
  }

  /**
   * The table over the batch as a broadcast view. indexDims, when given, must match
   * the table's size, unless opts.interpolatePosEncoding resizes it to them.
   */
  forward(batchSize: number, indexDims?: readonly number[], opts: PositionEncodingOptions = {}): Tensor {
    const op = 'PerceiverTrainablePositionEncoding.forward';
    intArg(op, 'batchSize', batchSize, 0);
    if (indexDims !== undefined) intListArg(op, 'indexDims', indexDims, 1, Infinity, 1);
    objectArg(op, 'opts', opts);
    knownKeysArg(op, 'opts', opts, POSITION_ENCODING_OPTIONS);
    if (opts.interpolatePosEncoding !== undefined) boolArg(op, 'opts.interpolatePosEncoding', opts.interpolatePosEncoding);
    const table = this.positionEmbeddings;
    return tidy(() => {
      let pos = table;
      if (indexDims !== undefined) {
        const n = indexDims.reduce((a, b) => a * b, 1);
        if (opts.interpolatePosEncoding) {
          if (indexDims.length !== 2)
            throw new RangeError(`PerceiverTrainablePositionEncoding: interpolatePosEncoding resizes a square grid to [height, width], but the inputs' index dims are [${indexDims.join(', ')}]`);
          pos = this.interpolatePosEncoding(indexDims[0], indexDims[1]);
        } else if (n !== table.shape[0] || !this.sameGrid(indexDims))
          throw new RangeError(
            `PerceiverTrainablePositionEncoding: inputs have ${n} positions ([${indexDims.join(', ')}]) but the table has ${table.shape[0]}` +
              (this.indexDims.length > 1 || indexDims.length === 2 ? ` as a [${this.grid().join(', ')}] grid` : '') +
              (indexDims.length === 2 ? ' (interpolatePosEncoding: true resizes the table to the inputs)' : ''),
          );
      }
      return broadcastTo(toDtype(pos, computeDtype(pos)), [batchSize, ...pos.shape]);
    });
  }

  /**
   * HF's interpolate_pos_encoding: the table, read as a square grid of side
   * floor(sqrt(N)), resized to height x width by bicubic interpolation
   * (align_corners false) -> [height * width, C]; the table itself at its own size.
   * Differentiable: the gradient reaches position_embeddings.
   */
  interpolatePosEncoding(height: number, width: number): Tensor {
    for (const [name, v] of [['height', height], ['width', width]] as const)
      if (!Number.isInteger(v) || v < 1)
        throw new (typeof v === 'number' ? RangeError : TypeError)(`PerceiverTrainablePositionEncoding.interpolatePosEncoding: argument '${name}' must be a positive integer, got ${typeof v === 'number' ? v : describe(v)}`);
    const table = this.positionEmbeddings;
    const N = table.shape[0];
    const side = Math.floor(Math.sqrt(N));
    if (side * side !== N)
      throw new RangeError(`PerceiverTrainablePositionEncoding.interpolatePosEncoding: the table's ${N} positions are not a square grid`);
    if (height === side && width === side) return table;
    const C = table.shape[1];
    return tidy(() => reshape(interpolateChannelsLast(reshape(table, [side, side, C]), height, width, 'bicubic'), [height * width, C]));
  }
}

/**
 * Tables kept per encoding. A server seeing many input sizes would otherwise keep
 * one table per size forever (51.8 MB each at 224x224 with 64 bands); a model
 * queries one or two sizes in turn, which a few entries cover.
 */
export const FOURIER_CACHE_SIZE = 4;

/**
 * Bytes of tables kept per encoding (the newest is kept whatever its size). A table
 * grows with the input's area (51.8 MB at 224x224 with 64 bands, 1.1 GB at
 * 1024x1024), so a count alone let a server that had seen four large sizes hold
 * gigabytes of tables for good, which emptyCache() does not return. Four 224x224
 * tables fit.
 */
export const FOURIER_CACHE_BYTES = 256 * 2 ** 20;

/** HF's PerceiverFourierPositionEncoding (no parameters). */
export class PerceiverFourierPositionEncoding extends Module implements PositionEncoding {
  readonly opts: Required<FourierOptions>;
  // Map iteration order is insertion order: re-inserting on a hit makes the first key the least recently used.
  private readonly cache = new Map<string, Tensor>();
  private device?: string;
  private bytesBudget = FOURIER_CACHE_BYTES;

  /**
   * The cache's byte budget (FOURIER_CACHE_BYTES): older tables are evicted past it.
   * Checked when set: NaN, a negative number or a string would otherwise compare false
   * with every total and silently keep one table only.
   */
  get cacheBytes(): number {
    return this.bytesBudget;
  }

  set cacheBytes(v: number) {
    this.bytesBudget = numberArg('PerceiverFourierPositionEncoding.cacheBytes', 'cacheBytes', v, 0);
  }

  constructor(opts: FourierOptions & { device?: string }) {
    super();
    fourierOptionsArg('PerceiverFourierPositionEncoding', opts, 'opts', ['device']);
    deviceArg('PerceiverFourierPositionEncoding', 'opts.device', opts.device);
    // Without the device: fourierFeatures() is given these, and knows no such option.
    const { device, ...fourier } = opts;
    this.opts = { concatPos: true, sineOnly: false, ...fourier };
    this.device = device;
  }

  get numDimensions(): number {
    return this.opts.maxResolution.length;
  }

  get outputSize(): number {
    const k = this.opts.maxResolution.length;
    return (this.opts.concatPos ? k : 0) + k * this.opts.numBands * (this.opts.sineOnly ? 1 : 2);
  }

  forward(batchSize: number, indexDims: readonly number[]): Tensor {
    intArg('PerceiverFourierPositionEncoding.forward', 'batchSize', batchSize, 0);
    intListArg('PerceiverFourierPositionEncoding.forward', 'indexDims', indexDims, 1, Infinity, 1);
    if (indexDims.length !== this.opts.maxResolution.length)
      throw new RangeError(
        `PerceiverFourierPositionEncoding: ${indexDims.length} index dims [${indexDims.join(', ')}] but max_resolution has ${this.opts.maxResolution.length}`,
      );
    const key = indexDims.join('x');
    const table = cachedIn(
      this.cache,
      key,
      () => {
        const { data, channels } = fourierFeatures(linearPositions(indexDims), this.opts);
        // keep(): the cache outlives whatever tidy() the first forward ran in.
        return keep(tensor(data, [data.length / channels, channels], { device: this.device }));
      },
      FOURIER_CACHE_SIZE,
    );
    this.trimCache();
    // A broadcast view of the cached table: concat and the other consumers read it in place.
    return broadcastTo(table, [batchSize, ...table.shape]);
  }

  /** Features of explicit positions pos [n, k] (HF's `pos=` argument; not cached) -> [B, n, outputSize]. */
  atPositions(batchSize: number, pos: Float32Array): Tensor {
    const k = this.opts.maxResolution.length;
    intArg('PerceiverFourierPositionEncoding.atPositions', 'batchSize', batchSize, 0);
    positionsArg('PerceiverFourierPositionEncoding.atPositions', 'pos', pos, k);
    const { data, channels } = fourierFeatures(pos, this.opts);
    const n = data.length / channels;
    return tidy(() => broadcastTo(tensor(data, [n, channels], { device: this.device }), [batchSize, n, channels]));
  }

  /** Evicts the least recently used tables, never the newest, while the cache holds more than cacheBytes. */
  private trimCache(): void {
    const bytesOf = (t: Tensor) => t.size * DTYPE_SIZE[t.dtype];
    let total = 0;
    for (const t of this.cache.values()) total += bytesOf(t);
    // Map order is least recently used first; the newest is last.
    for (const [key, t] of this.cache) {
      if (total <= this.bytesBudget || this.cache.size === 1) break;
      this.cache.delete(key);
      total -= bytesOf(t);
      t.dispose(); // views already taken keep its storage
    }
  }

  protected override onDispose(): void {
    for (const t of this.cache.values()) t.dispose();
    this.cache.clear();
  }

  protected override onTo(device: string | undefined): void {
    if (device === undefined) return;
    this.onDispose();
    this.device = device;
  }
}
