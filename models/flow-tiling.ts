// Optical flow on frames larger than the model's window, as DeepMind's optical_flow
// colab does it (and HF's copy of it): the frames are cut into windows of the
// model's training size (368x496) placed every (size - min_overlap) pixels, the last
// window flush with the far edge; each window's flow is weighted by a pyramid that
// is 1 at the window's border pixels and grows by 1 per pixel inwards,
//   weight(y, x) = min(y + 1, h - y, x + 1, w - x),
// and the flow of a pixel is the weighted average over the windows that cover it.
// Also the model's input for one window: frames normalised to [-1, 1] (colab:
// im / 255 * 2 - 1) and 3x3 patches per pixel, zero-padded at the window's edge
// (patches_for_flow runs on each window), in HF's layout [2, 27, h, w] with
// channels ordered (ph, pw, c). Pure functions over typed arrays, no tensors.

import { describe } from '../lib/dtype.js';
import { intArg } from './args.js';

export type Size2 = readonly [number, number];

/** [a, b]: two integers >= min. */
function pairArg(op: string, name: string, v: unknown, labels: string, min = 1): void {
  if (!Array.isArray(v) || v.length !== 2) throw new TypeError(`${op}: argument '${name}' must be ${labels} (2 integers >= ${min}), got ${describe(v)}`);
  intArg(op, `${name}[0]`, v[0], min);
  intArg(op, `${name}[1]`, v[1], min);
}

/** An array or typed array of numbers (its elements are not read here). */
function valuesArg(op: string, name: string, v: unknown, what: string): void {
  if (!Array.isArray(v) && !(ArrayBuffer.isView(v) && !(v instanceof DataView)))
    throw new TypeError(`${op}: argument '${name}' must be ${what} (an array or typed array of numbers), got ${describe(v)}`);
}

function checkSizes(op: string, imageShape: Size2, patchSize: Size2): void {
  pairArg(op, 'imageShape', imageShape, '[H, W]');
  pairArg(op, 'patchSize', patchSize, '[h, w]');
  if (imageShape[0] < patchSize[0] || imageShape[1] < patchSize[1])
    throw new RangeError(`flow tiling: the frames (${imageShape[0]}x${imageShape[1]}) are smaller than the window (${patchSize[0]}x${patchSize[1]}); pad or resize them first`);
}

/** The colab's origins along one axis: every (p - minOverlap) pixels, the last set to n - p (repeats and all). */
function colabStarts(n: number, p: number, minOverlap: number): number[] {
  const starts: number[] = [];
  for (let s = 0; s < n; s += p - minOverlap) starts.push(s);
  starts[starts.length - 1] = n - p;
  return starts;
}

function checkGrid(op: string, imageShape: Size2, patchSize: Size2, minOverlap: number): void {
  checkSizes(op, imageShape, patchSize);
  intArg(op, 'minOverlap', minOverlap, 0);
  if (minOverlap >= patchSize[0] || minOverlap >= patchSize[1])
    throw new RangeError(`flow tiling: the overlap (${minOverlap}) must be less than the window size (${patchSize[0]}x${patchSize[1]})`);
}

/**
 * Window origins [y, x] (row-major: y outer, x inner), as DeepMind's
 * compute_grid_indices: origins every (size - minOverlap) pixels, the last moved to
 * be flush with the image edge. Repeated origins are dropped (each window runs once)
 * and the rest sorted; gridRepeats says how often the colab's list holds each, which
 * stitchWindows needs to weight them as the colab. Where the colab's next-to-last
 * origin would put a window past the edge (it cannot run there), it is clamped to
 * size - window too.
 */
export function computeGridIndices(imageShape: Size2, patchSize: Size2 = [368, 496], minOverlap = 20): [number, number][] {
  checkGrid('computeGridIndices', imageShape, patchSize, minOverlap);
  const axis = (n: number, p: number): number[] =>
    // The colab's next-to-last window can stick out past the edge (up to minOverlap - 1
    // pixels, e.g. 700 rows: 0, 348, 332); it is pulled back flush as well.
    [...new Set(colabStarts(n, p, minOverlap).map((s) => Math.min(s, n - p)))].sort((a, b) => a - b);
  const ys = axis(imageShape[0], patchSize[0]);
  const xs = axis(imageShape[1], patchSize[1]);
  const out: [number, number][] = [];
  for (const y of ys) for (const x of xs) out.push([y, x]);
  return out;
}

/**
 * For each origin of computeGridIndices (same order), how many times the colab's
 * itertools.product list holds it. The colab runs a repeated window again and adds it
 * again, so it weighs twice in the average: with the flush origin repeated (716 rows:
 * 0, 348, 348) that changes the stitched flow where the windows overlap. An origin
 * only the clamp makes (the colab cannot run there) counts as the colab holds it.
 */
export function gridRepeats(imageShape: Size2, patchSize: Size2 = [368, 496], minOverlap = 20): number[] {
  checkGrid('gridRepeats', imageShape, patchSize, minOverlap);
  const count = (n: number, p: number) => (s: number) => colabStarts(n, p, minOverlap).filter((v) => v === s).length;
  const cy = count(imageShape[0], patchSize[0]);
  const cx = count(imageShape[1], patchSize[1]);
  return computeGridIndices(imageShape, patchSize, minOverlap).map(([y, x]) => cy(y) * cx(x));
}

/** The colab's window weights [h * w], row-major: min(y + 1, h - y, x + 1, w - x) (>= 1). */
export function windowWeights(patchSize: Size2): Float32Array {
  pairArg('windowWeights', 'patchSize', patchSize, '[h, w]');
  const [h, w] = patchSize;
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    const wy = Math.min(y + 1, h - y);
    for (let x = 0; x < w; x++) out[y * w + x] = Math.min(wy, x + 1, w - x);
  }
  return out;
}

/**
 * Weighted average of per-window outputs: pieces[i] is [h, w, channels] (row-major)
 * for the window at indices[i]; returns [H, W, channels]. Accumulated in float64, so
 * windows that agree give their value back exactly. Every pixel must be covered.
 * repeats[i] (default 1) counts window i that many times, as gridRepeats gives it.
 */
export function stitchWindows(
  pieces: readonly ArrayLike<number>[],
  indices: readonly (readonly [number, number])[],
  imageShape: Size2,
  patchSize: Size2,
  channels = 2,
  repeats?: readonly number[],
): Float32Array {
  const op = 'stitchWindows';
  if (!Array.isArray(pieces)) throw new TypeError(`${op}: argument 'pieces' must be an array of per-window flows, got ${describe(pieces)}`);
  if (!Array.isArray(indices)) throw new TypeError(`${op}: argument 'indices' must be an array of window origins [y, x], got ${describe(indices)}`);
  checkSizes(op, imageShape, patchSize);
  intArg(op, 'channels', channels, 1);
  if (pieces.length !== indices.length) throw new RangeError(`flow tiling: ${pieces.length} pieces for ${indices.length} windows`);
  if (repeats !== undefined) {
    if (!Array.isArray(repeats)) throw new TypeError(`${op}: argument 'repeats' must be an array of counts, one per window, got ${describe(repeats)}`);
    if (repeats.length !== indices.length) throw new RangeError(`flow tiling: ${repeats.length} repeats for ${indices.length} windows`);
    repeats.forEach((r, i) => intArg(op, `repeats[${i}]`, r, 1));
  }
  const [H, W] = imageShape;
  const [h, w] = patchSize;
  const weights = windowWeights(patchSize);
  const acc = new Float64Array(H * W * channels);
  const count = new Float64Array(H * W);
  pieces.forEach((piece, i) => {
    valuesArg(op, `pieces[${i}]`, piece, `window ${i}'s flow`);
    pairArg(op, `indices[${i}]`, indices[i], '[y, x]', 0);
    const [y0, x0] = indices[i];
    if (!Number.isSafeInteger(y0) || !Number.isSafeInteger(x0) || y0 < 0 || x0 < 0 || y0 + h > H || x0 + w > W)
      throw new RangeError(`flow tiling: window ${i} at [${y0}, ${x0}] (${h}x${w}) is outside the ${H}x${W} image`);
    if (piece.length !== h * w * channels) throw new RangeError(`flow tiling: piece ${i} has ${piece.length} values, expected ${h}x${w}x${channels} = ${h * w * channels}`);
    const times = repeats?.[i] ?? 1;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const wt = weights[y * w + x] * times;
        const p = (y0 + y) * W + (x0 + x);
        count[p] += wt;
        const src = (y * w + x) * channels;
        for (let c = 0; c < channels; c++) acc[p * channels + c] += wt * piece[src + c];
      }
  });
  const out = new Float32Array(H * W * channels);
  for (let p = 0; p < H * W; p++) {
    if (count[p] === 0) throw new RangeError(`flow tiling: pixel [${Math.floor(p / W)}, ${p % W}] is covered by no window`);
    for (let c = 0; c < channels; c++) out[p * channels + c] = acc[p * channels + c] / count[p];
  }
  return out;
}

/**
 * The model input for one window: frames [2, H, W, 3] (values 0..255) -> [2, 27, h, w]
 * (HF's PerceiverForOpticalFlow layout), each pixel's 3x3 neighbourhood within the
 * window (zeros outside it), channel (ky * 3 + kx) * 3 + c, values im / 255 * 2 - 1.
 */
export function windowPatches(frames: ArrayLike<number>, imageShape: Size2, origin: readonly [number, number], patchSize: Size2): Float32Array {
  const op = 'windowPatches';
  valuesArg(op, 'frames', frames, 'the two frames [2, H, W, 3]');
  checkSizes(op, imageShape, patchSize);
  pairArg(op, 'origin', origin, '[y, x]', 0);
  const [H, W] = imageShape;
  const [h, w] = patchSize;
  const [y0, x0] = origin;
  if (frames.length !== 2 * H * W * 3) throw new RangeError(`flow tiling: frames have ${frames.length} values, expected 2x${H}x${W}x3 = ${2 * H * W * 3}`);
  if (!Number.isSafeInteger(y0) || !Number.isSafeInteger(x0) || y0 < 0 || x0 < 0 || y0 + h > H || x0 + w > W)
    throw new RangeError(`flow tiling: window at [${y0}, ${x0}] (${h}x${w}) is outside the ${H}x${W} image`);
  const out = new Float32Array(2 * 27 * h * w);
  const plane = h * w;
  for (let f = 0; f < 2; f++)
    for (let ky = 0; ky < 3; ky++)
      for (let kx = 0; kx < 3; kx++)
        for (let c = 0; c < 3; c++) {
          const base = (f * 27 + (ky * 3 + kx) * 3 + c) * plane;
          for (let y = 0; y < h; y++) {
            const sy = y + ky - 1;
            if (sy < 0 || sy >= h) continue;
            for (let x = 0; x < w; x++) {
              const sx = x + kx - 1;
              if (sx < 0 || sx >= w) continue;
              const v = frames[((f * H + y0 + sy) * W + x0 + sx) * 3 + c];
              out[base + y * w + x] = (v / 255) * 2 - 1;
            }
          }
        }
  return out;
}
