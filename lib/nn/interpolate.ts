// Resampling images to another size (torch.nn.functional.interpolate's 'nearest',
// 'bilinear' and 'bicubic' modes on [N, C, H, W]). Each axis is resampled by one
// product with a small [out, in] matrix of the mode's weights, so the result is
// differentiable through matmul and runs wherever matmul runs.
import { Tensor } from '../tensor.js';
import { describe } from '../dtype.js';
import { tensor } from '../creation.js';
import { cast, reshape } from '../ops/layout.js';
import { matmul } from '../ops/linalg.js';
import { bool, optionKeys, options } from '../ops/args.js';
import { tidy } from '../scope.js';

export type InterpolateMode = 'nearest' | 'bilinear' | 'bicubic';
const MODES: readonly string[] = ['nearest', 'bilinear', 'bicubic'];

export interface InterpolateOptions {
  /** Default 'nearest', as torch's. */
  mode?: InterpolateMode;
  /**
   * 'bilinear' and 'bicubic': map the corner pixels' centres onto each other
   * (torch's align_corners=True) instead of the images' edges. Default false.
   */
  alignCorners?: boolean;
}

const INTERPOLATE_OPTIONS = optionKeys<InterpolateOptions>({ mode: true, alignCorners: true });

// torch's cubic convolution constant (Keys' a = -0.75, as OpenCV and TF use).
const CUBIC_A = -0.75;

function cubicInner(x: number): number {
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
}

function cubicOuter(x: number): number {
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
}

// Weight matrices by (mode, corners, sizes), most recently used last, within a byte
// budget: a server resizing images of many sizes would otherwise keep one
// [outSize, inSize] matrix per pair ever seen (about 0.5 MB at 224 wide).
const weightCache = new Map<string, Float32Array>();
/** @internal The byte budget of the cached interpolation weights. */
export const INTERPOLATION_CACHE_BYTES = 32 << 20;
let weightCacheBytes = 0;

function cacheWeights(key: string, w: Float32Array): void {
  weightCache.set(key, w);
  weightCacheBytes += w.byteLength;
  // The newest entry stays even when it alone is over budget.
  for (const [k, old] of weightCache) {
    if (weightCacheBytes <= INTERPOLATION_CACHE_BYTES || k === key) break;
    weightCache.delete(k);
    weightCacheBytes -= old.byteLength;
  }
}

/** @internal What the cache holds now (for tests). */
export function interpolationCacheStats(): { entries: number; bytes: number } {
  return { entries: weightCache.size, bytes: weightCacheBytes };
}

/**
 * The most elements a weight matrix may have (1 GiB of float32: a
 * 16384-pixel axis resampled to 16384). It is built in JS memory, where a larger one
 * fails with a bare allocation error, or takes seconds before it does.
 */
const MAX_INTERPOLATION_WEIGHTS = 2 ** 28;

/**
 * The [outSize, inSize] matrix whose product with a column of inSize samples
 * resamples it as torch does: source coordinates from the output pixel's centre
 * (or corner), taps past the edges clamped onto the edge samples.
 */
export function interpolationWeights(inSize: number, outSize: number, mode: InterpolateMode, alignCorners: boolean): Float32Array {
  for (const [name, v] of [['inSize', inSize], ['outSize', outSize]] as const)
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      throw new (typeof v === 'number' ? RangeError : TypeError)(`interpolationWeights: argument '${name}' must be a positive integer, got ${describe(v)}`);
  if (!MODES.includes(mode)) throw new TypeError(`interpolationWeights: argument 'mode' must be one of ${MODES.map((m) => `'${m}'`).join(', ')}, got ${describe(mode)}`);
  if (typeof alignCorners !== 'boolean') throw new TypeError(`interpolationWeights: argument 'alignCorners' must be a boolean, got ${describe(alignCorners)}`);
  if (outSize * inSize > MAX_INTERPOLATION_WEIGHTS)
    throw new RangeError(
      `interpolationWeights: arguments 'outSize' ${outSize} and 'inSize' ${inSize} make a [${outSize}, ${inSize}] matrix of ${outSize * inSize} elements, more than ${MAX_INTERPOLATION_WEIGHTS}`,
    );
  const key = `${mode}:${alignCorners ? 1 : 0}:${inSize}:${outSize}`;
  const hit = weightCache.get(key);
  if (hit) {
    weightCache.delete(key);
    weightCache.set(key, hit);
    return hit;
  }
  const w = new Float32Array(outSize * inSize);
  const clamp = (i: number) => Math.min(Math.max(i, 0), inSize - 1);
  if (mode === 'nearest') {
    // In float32, as torch picks the source (floorf(o * (float)in / out)): exact
    // arithmetic picks another pixel where o * in / out is an integer that float32
    // rounds from below (224 -> 384: o = 108 takes 62, not 63).
    const scale = Math.fround(inSize / outSize);
    for (let o = 0; o < outSize; o++) w[o * inSize + Math.min(Math.floor(Math.fround(o * scale)), inSize - 1)] = 1;
  } else {
    const scale = alignCorners ? (outSize > 1 ? (inSize - 1) / (outSize - 1) : 0) : inSize / outSize;
    for (let o = 0; o < outSize; o++) {
      let src = alignCorners ? scale * o : scale * (o + 0.5) - 0.5;
      // Linear weights clamp a source before the first sample onto it; cubic ones do not.
      if (mode === 'bilinear' && src < 0) src = 0;
      const i0 = Math.min(Math.floor(src), inSize - 1);
      const t = Math.min(Math.max(src - i0, 0), 1);
      const row = o * inSize;
      if (mode === 'bilinear') {
        w[row + i0] += 1 - t;
        w[row + clamp(i0 + 1)] += t;
      } else {
        const taps = [cubicOuter(t + 1), cubicInner(t), cubicInner(1 - t), cubicOuter(2 - t)];
        for (let j = 0; j < 4; j++) w[row + clamp(i0 - 1 + j)] += taps[j];
      }
    }
  }
  cacheWeights(key, w);
  return w;
}

function checkSize(size: unknown): [number, number] {
  const ok = Array.isArray(size) && size.length === 2 && size.every((s) => Number.isInteger(s) && s > 0);
  if (!ok) throw new TypeError(`interpolate: argument 'size' must be [height, width] of positive integers, got ${describe(size)}`);
  return [size[0] as number, size[1] as number];
}

/**
 * input [N, C, H, W] -> [N, C, size[0], size[1]], as torch.nn.functional.interpolate
 * with that size. 16-bit inputs are resampled in float32 and rounded once at the end.
 */
export function interpolate(input: Tensor, size: readonly [number, number], opts?: InterpolateOptions): Tensor {
  if (!(input instanceof Tensor)) throw new TypeError(`interpolate: argument 'input' must be a Tensor, got ${describe(input)}`);
  if (input.disposed) throw new Error(`interpolate: argument 'input' is a disposed Tensor`);
  if (input.rank !== 4) throw new RangeError(`interpolate: argument 'input' must be [N, C, H, W], got [${input.shape.join(', ')}]`);
  if (input.dtype !== 'float32' && input.dtype !== 'float16' && input.dtype !== 'bfloat16')
    throw new TypeError(`interpolate: argument 'input' must be a floating-point tensor, got ${input.dtype}`);
  const [outH, outW] = checkSize(size);
  const o = options('interpolate', opts, INTERPOLATE_OPTIONS);
  const mode = o.mode ?? 'nearest';
  if (!MODES.includes(mode)) throw new TypeError(`interpolate: option 'mode' must be one of ${MODES.map((m) => `'${m}'`).join(', ')}, got ${describe(mode)}`);
  const alignCorners = o.alignCorners === undefined ? false : bool('interpolate', 'alignCorners', o.alignCorners);
  if (alignCorners && mode === 'nearest') throw new TypeError(`interpolate: option 'alignCorners' only applies to 'bilinear' and 'bicubic'`);
  const [N, C, H, W] = input.shape;
  for (const [from, to] of [[H, outH], [W, outW]])
    if (from !== to && from * to > MAX_INTERPOLATION_WEIGHTS)
      throw new RangeError(
        `interpolate: argument 'size' [${outH}, ${outW}] is too large for input [${N}, ${C}, ${H}, ${W}]: resampling ${from} pixels to ${to} takes a [${to}, ${from}] weight matrix of ${from * to} elements, more than ${MAX_INTERPOLATION_WEIGHTS}`,
      );
  if (outH === H && outW === W) return input;
  return inFloat32(input, (x) => {
    const alongW = (t: Tensor) => (outW === W ? t : matmul(t, weightTensor(W, outW, mode, alignCorners, x.device), { transB: true }));
    const alongH = (t: Tensor) => (outH === H ? t : matmul(weightTensor(H, outH, mode, alignCorners, x.device), t));
    // The axis that shrinks (or grows least) goes first, so the second product runs on less.
    const widthFirst = N * C * H * outW * (W + outH) <= N * C * outH * W * (H + outW);
    return widthFirst ? alongH(alongW(x)) : alongW(alongH(x));
  });
}

/**
 * @internal x [H, W, C] (channels-last, as the models keep position tables) ->
 * [outH, outW, C], resampled as interpolate() resamples [N, C, H, W]: the width by one
 * product broadcast over rows, the height by one over [H, outW * C]. Arguments unchecked.
 */
export function interpolateChannelsLast(x: Tensor, outH: number, outW: number, mode: InterpolateMode, alignCorners = false): Tensor {
  const [H, W, C] = x.shape;
  return inFloat32(x, (x32) => {
    const alongW = matmul(weightTensor(W, outW, mode, alignCorners, x32.device), x32);
    return reshape(matmul(weightTensor(H, outH, mode, alignCorners, x32.device), reshape(alongW, [H, outW * C])), [outH, outW, C]);
  });
}

function weightTensor(from: number, to: number, mode: InterpolateMode, alignCorners: boolean, device: string): Tensor {
  return tensor(interpolationWeights(from, to, mode, alignCorners), [to, from], { device });
}

// 16-bit inputs are resampled in float32 and rounded once at the end.
function inFloat32(input: Tensor, fn: (x: Tensor) => Tensor): Tensor {
  return tidy(() => {
    const y = fn(input.dtype === 'float32' ? input : cast(input, 'float32'));
    return y.dtype === input.dtype ? y : cast(y, input.dtype);
  });
}
