// Test support: a seeded PRNG, plain float64 reference implementations (naive loops)
// of every op, strided / broadcast index helpers, and assertClose.
//
// Arrays are flat and row-major with an explicit shape, as Tensor.data() returns them.
// References compute in float64 from the float32 inputs, so the only differences
// an engine may show are its own float32 rounding.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { ON_CUDA } from './device.js';

export type Arr = ArrayLike<number>;
export type Shape = readonly number[];

// ---- random inputs ------------------------------------------------------------------

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n float32 values uniform in [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** n float32 standard-normal values (Box-Muller), times std. */
export function randomNormal(n: number, seed: number, std = 1): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = 1 - r();
    const u2 = r();
    out[i] = std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}

/** n int32 values uniform in [lo, hi). */
export function randomInts(n: number, seed: number, lo: number, hi: number): Int32Array {
  const r = mulberry32(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + Math.floor((hi - lo) * r());
  return out;
}

/** n uint8 values, 1 with probability p. */
export function randomMask(n: number, seed: number, p = 0.5): Uint8Array {
  const r = mulberry32(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r() < p ? 1 : 0;
  return out;
}

// ---- shapes, strides, indices ---------------------------------------------------------

export function numel(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Row-major strides (in elements). */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Multi-index of flat row-major position i. */
export function unravel(i: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = shape[d] === 0 ? 0 : i % shape[d];
    i = shape[d] === 0 ? 0 : Math.floor(i / shape[d]);
  }
  return idx;
}

/** Flat position of idx given strides (and an offset). */
export function ravel(idx: readonly number[], strides: readonly number[], offset = 0): number {
  let p = offset;
  for (let d = 0; d < idx.length; d++) p += idx[d] * strides[d];
  return p;
}

/** numpy broadcasting of two shapes, or null when incompatible. */
export function broadcastShapes(...shapes: Shape[]): number[] | null {
  const n = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(n).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = n - s.length + i;
      const d = s[i];
      if (out[o] === 1) out[o] = d;
      else if (d !== 1 && d !== out[o]) return null;
    }
  }
  return out;
}

/** Strides that read an array of `shape` as if broadcast to `to` (zero on repeated axes). */
export function broadcastStrides(shape: Shape, to: Shape): number[] {
  const st = stridesOf(shape);
  return to.map((d, i) => {
    const j = i - (to.length - shape.length);
    if (j < 0) return 0;
    if (shape[j] === d) return st[j];
    if (shape[j] === 1) return 0;
    throw new Error(`cannot broadcast [${shape}] to [${to}]`);
  });
}

/** Materialises x (shape) broadcast to shape `to`. */
export function broadcastRef(x: Arr, shape: Shape, to: Shape): Float64Array {
  const st = broadcastStrides(shape, to);
  const n = numel(to);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = x[ravel(unravel(i, to), st)];
  return out;
}

/** The elements of a strided view of base, in row-major order of `shape`. */
export function stridedRef(base: Arr, shape: Shape, strides: readonly number[], offset = 0): Float64Array {
  const n = numel(shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = base[ravel(unravel(i, shape), strides, offset)];
  return out;
}

/** permute: out.shape[i] = shape[axes[i]]. Returns data and shape. */
export function permuteRef(x: Arr, shape: Shape, axes: readonly number[]): { data: Float64Array; shape: number[] } {
  const st = stridesOf(shape);
  const outShape = axes.map((a) => shape[a]);
  const outStrides = axes.map((a) => st[a]);
  return { data: stridedRef(x, outShape, outStrides), shape: outShape };
}

/** Python-style slice of one axis. */
export function sliceRef(
  x: Arr,
  shape: Shape,
  axis: number,
  start: number,
  end = Number.MAX_SAFE_INTEGER,
  step = 1,
): { data: Float64Array; shape: number[] } {
  const a = axis < 0 ? axis + shape.length : axis;
  const d = shape[a];
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  s = Math.min(Math.max(s, 0), d);
  e = Math.min(Math.max(e, 0), d);
  const len = e > s ? Math.ceil((e - s) / step) : 0;
  const st = stridesOf(shape);
  const outShape = [...shape];
  outShape[a] = len;
  const outStrides = [...st];
  outStrides[a] = st[a] * step;
  return { data: stridedRef(x, outShape, outStrides, s * st[a]), shape: outShape };
}

/** Concatenation along axis. */
export function concatRef(parts: { data: Arr; shape: Shape }[], axis: number): { data: Float64Array; shape: number[] } {
  const rank = parts[0].shape.length;
  const a = axis < 0 ? axis + rank : axis;
  const outShape = [...parts[0].shape];
  outShape[a] = parts.reduce((s, p) => s + p.shape[a], 0);
  const out = new Float64Array(numel(outShape));
  const outer = numel(outShape.slice(0, a));
  const inner = numel(outShape.slice(a + 1));
  let w = 0;
  for (let o = 0; o < outer; o++)
    for (const p of parts) {
      const len = p.shape[a] * inner;
      for (let i = 0; i < len; i++) out[w++] = p.data[o * len + i];
    }
  return { data: out, shape: outShape };
}

// ---- number formats -----------------------------------------------------------------

/** x rounded to nearest, ties to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * x (a float32 value) rounded to a binary format with `mant` fraction bits and
 * exponent range [emin, emax], round to nearest even, subnormals, overflow to inf.
 */
export function roundToFormat(x: number, mant: number, emin: number, emax: number): number {
  if (Number.isNaN(x) || !Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  e = Math.max(e, emin);
  const ulp = 2 ** (e - mant);
  let r = roundHalfEven(a / ulp) * ulp;
  const maxFinite = (2 - 2 ** -mant) * 2 ** emax;
  if (r > maxFinite) r = Infinity;
  return x < 0 ? -r : r === 0 ? 0 : r;
}
/** float32 -> IEEE half -> float32. */
export const toF16 = (x: number): number => {
  const r = roundToFormat(Math.fround(x), 10, -14, 15);
  return r === 0 && (x < 0 || Object.is(x, -0)) ? -0 : r;
};
/** float32 -> bfloat16 -> float32. */
export const toBF16 = (x: number): number => {
  const r = roundToFormat(Math.fround(x), 7, -126, 127);
  return r === 0 && (x < 0 || Object.is(x, -0)) ? -0 : r;
};
/** float -> int32 as the engine defines it: truncate toward zero, saturate, NaN -> 0. */
export const toI32 = (x: number): number =>
  Number.isNaN(x) ? 0 : x >= 2147483647 ? 2147483647 : x <= -2147483648 ? -2147483648 : Math.trunc(x) | 0;
/** float -> uint8: truncate toward zero, saturate to [0, 255], NaN -> 0. */
export const toU8 = (x: number): number => (Number.isNaN(x) || x <= 0 ? 0 : x >= 255 ? 255 : Math.trunc(x));

// ---- elementwise ------------------------------------------------------------------------

/** erf in float64 (series below 3, continued fraction for erfc above): ~1e-15 relative. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  const r = a < 3 ? erfSeries(a) : 1 - erfcFraction(a);
  return x < 0 ? -r : r;
}

/** 1 - erf(x), without the cancellation for large x (the continued fraction from 3 on). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 3) return 1 - erf(x);
  return erfcFraction(x);
}

// erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
function erfSeries(a: number): number {
  let term = a;
  let sum = a;
  const a2 = a * a;
  for (let n = 1; n < 200; n++) {
    term *= -a2 / n;
    const c = term / (2 * n + 1);
    sum += c;
    if (Math.abs(c) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

// erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), x >= 3
function erfcFraction(a: number): number {
  let t = a;
  for (let n = 80; n >= 1; n--) t = a + n / 2 / t;
  return Math.exp(-a * a) / Math.sqrt(Math.PI) / t;
}

// Written where nothing cancels (erfc below 0; the tanh form as x * sigmoid(2u)), so
// that the negative tail is a reference too.
export const geluRef = (x: number): number =>
  x < 0 ? 0.5 * x * erfc(-x / Math.SQRT2) : 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanhRef = (x: number): number =>
  x / (1 + Math.exp(-2 * Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
export const sigmoidRef = (x: number): number => 1 / (1 + Math.exp(-x));
export const reluRef = (x: number): number => (x < 0 ? 0 : x);

export type Activation = 'none' | 'relu' | 'gelu' | 'gelu_tanh';
export function activationRef(act: Activation): (x: number) => number {
  switch (act) {
    case 'none': return (x) => x;
    case 'relu': return reluRef;
    case 'gelu': return geluRef;
    case 'gelu_tanh': return geluTanhRef;
  }
}

export function mapRef(x: Arr, f: (v: number) => number): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return out;
}

/** Broadcasting binary op. */
export function binaryRef(
  a: Arr,
  aShape: Shape,
  b: Arr,
  bShape: Shape,
  f: (x: number, y: number) => number,
): { data: Float64Array; shape: number[] } {
  const shape = broadcastShapes(aShape, bShape);
  if (!shape) throw new Error(`incompatible shapes [${aShape}] [${bShape}]`);
  const sa = broadcastStrides(aShape, shape);
  const sb = broadcastStrides(bShape, shape);
  const n = numel(shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    out[i] = f(a[ravel(idx, sa)], b[ravel(idx, sb)]);
  }
  return { data: out, shape };
}

/** maximum / minimum where NaN wins. */
export const maximumRef = (x: number, y: number): number => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.max(x, y));
export const minimumRef = (x: number, y: number): number => (Number.isNaN(x) || Number.isNaN(y) ? NaN : Math.min(x, y));

// ---- reductions ---------------------------------------------------------------------------

export type ReduceOp = 'sum' | 'mean' | 'max' | 'min' | 'argmax';

/** Reduction over one axis; NaN propagates through max/min, argmax picks the first NaN else the first max. */
export function reduceRef(x: Arr, shape: Shape, axis: number, op: ReduceOp): { data: Float64Array; shape: number[] } {
  const a = axis < 0 ? axis + shape.length : axis;
  const outer = numel(shape.slice(0, a));
  const n = shape[a];
  const inner = numel(shape.slice(a + 1));
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const at = (j: number) => x[(o * n + j) * inner + i];
      let r: number;
      if (op === 'sum' || op === 'mean') {
        r = 0;
        for (let j = 0; j < n; j++) r += at(j);
        if (op === 'mean') r /= n;
      } else if (op === 'max' || op === 'min') {
        r = op === 'max' ? -Infinity : Infinity;
        for (let j = 0; j < n; j++) {
          const v = at(j);
          if (Number.isNaN(v)) { r = NaN; break; }
          r = op === 'max' ? Math.max(r, v) : Math.min(r, v);
        }
      } else {
        r = 0;
        let m = at(0);
        for (let j = 0; j < n && !Number.isNaN(m); j++) {
          const v = at(j);
          if (Number.isNaN(v) || v > m) { m = v; r = j; }
        }
      }
      out[o * inner + i] = r;
    }
  return { data: out, shape: shape.filter((_, i) => i !== a) };
}

/** Softmax (or log-softmax) over rows of length n. */
export function softmaxRef(x: Arr, n: number, log = false): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r * n < x.length; r++) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, x[r * n + j]);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(x[r * n + j] - m);
    const ls = Math.log(s);
    for (let j = 0; j < n; j++) {
      const v = x[r * n + j] - m;
      out[r * n + j] = log ? v - ls : Math.exp(v) / s;
    }
  }
  return out;
}

/** Layer norm over rows of length n (biased variance, as PyTorch). */
export function layerNormRef(x: Arr, n: number, weight?: Arr | null, bias?: Arr | null, eps = 1e-5): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r * n < x.length; r++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += x[r * n + j];
    const mean = s / n;
    let v = 0;
    for (let j = 0; j < n; j++) v += (x[r * n + j] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / n + eps);
    for (let j = 0; j < n; j++) {
      let y = (x[r * n + j] - mean) * rstd;
      if (weight) y *= weight[j];
      if (bias) y += bias[j];
      out[r * n + j] = y;
    }
  }
  return out;
}

// ---- linear algebra ---------------------------------------------------------------------

export interface MatmulRefOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Arr | null;
  activation?: Activation;
  alpha?: number;
}

/** act(alpha * op(a) @ op(b) + bias) with broadcasting batch axes. */
export function matmulRef(
  a: Arr,
  aShape: Shape,
  b: Arr,
  bShape: Shape,
  o: MatmulRefOptions = {},
): { data: Float64Array; shape: number[] } {
  const ra = aShape.length;
  const rb = bShape.length;
  const [ar, ac] = [aShape[ra - 2], aShape[ra - 1]];
  const [br, bc] = [bShape[rb - 2], bShape[rb - 1]];
  const m = o.transA ? ac : ar;
  const k = o.transA ? ar : ac;
  const n = o.transB ? br : bc;
  if ((o.transB ? bc : br) !== k) throw new Error('matmulRef: inner dimensions differ');
  const batch = broadcastShapes(aShape.slice(0, -2), bShape.slice(0, -2));
  if (!batch) throw new Error('matmulRef: batch dims do not broadcast');
  const sa = broadcastStrides(aShape.slice(0, -2), batch).map((s) => s * ar * ac);
  const sb = broadcastStrides(bShape.slice(0, -2), batch).map((s) => s * br * bc);
  const nb = numel(batch);
  const act = activationRef(o.activation ?? 'none');
  const alpha = o.alpha ?? 1;
  const out = new Float64Array(nb * m * n);
  const col = new Float64Array(k);
  for (let bi = 0; bi < nb; bi++) {
    const idx = unravel(bi, batch);
    const oa = ravel(idx, sa);
    const ob = ravel(idx, sb);
    for (let j = 0; j < n; j++) {
      for (let p = 0; p < k; p++) col[p] = o.transB ? b[ob + j * bc + p] : b[ob + p * bc + j];
      for (let i = 0; i < m; i++) {
        let s = 0;
        if (o.transA) for (let p = 0; p < k; p++) s += a[oa + p * ac + i] * col[p];
        else {
          const row = oa + i * ac;
          for (let p = 0; p < k; p++) s += a[row + p] * col[p];
        }
        s *= alpha;
        if (o.bias) s += o.bias[j];
        out[(bi * m + i) * n + j] = act(s);
      }
    }
  }
  return { data: out, shape: [...batch, m, n] };
}

/**
 * Attention on dense arrays: q [B,Nq,H,Dqk], k [B,Nk,H,Dqk], v [B,Nk,H,Dv], mask
 * (uint8, any shape broadcastable to [B,Nq,Nk]) -> [B,Nq,H,Dv]. Rows with no
 * allowed key give 0.
 */
export function attentionRef(
  q: Arr,
  k: Arr,
  v: Arr,
  dims: { B: number; Nq: number; Nk: number; H: number; Dqk: number; Dv: number },
  mask?: { data: Arr; shape: Shape } | null,
  scale?: number,
): Float64Array {
  const { B, Nq, Nk, H, Dqk, Dv } = dims;
  const sc = scale ?? 1 / Math.sqrt(Dqk);
  const ms = mask ? broadcastStrides(mask.shape, [B, Nq, Nk]) : null;
  const out = new Float64Array(B * Nq * H * Dv);
  const logits = new Float64Array(Nk);
  const allowed = new Uint8Array(Nk);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Nq; i++)
      for (let h = 0; h < H; h++) {
        const qo = ((b * Nq + i) * H + h) * Dqk;
        let m = -Infinity;
        for (let j = 0; j < Nk; j++) {
          allowed[j] = mask && ms ? (mask.data[b * ms[0] + i * ms[1] + j * ms[2]] ? 1 : 0) : 1;
          if (!allowed[j]) continue;
          const ko = ((b * Nk + j) * H + h) * Dqk;
          let s = 0;
          for (let d = 0; d < Dqk; d++) s += q[qo + d] * k[ko + d];
          logits[j] = s * sc;
          m = Math.max(m, logits[j]);
        }
        const oo = ((b * Nq + i) * H + h) * Dv;
        if (m === -Infinity) continue; // no allowed key: the row stays 0
        let l = 0;
        for (let j = 0; j < Nk; j++) {
          if (!allowed[j]) continue;
          const p = Math.exp(logits[j] - m);
          l += p;
          const vo = ((b * Nk + j) * H + h) * Dv;
          for (let d = 0; d < Dv; d++) out[oo + d] += p * v[vo + d];
        }
        for (let d = 0; d < Dv; d++) out[oo + d] /= l;
      }
  return out;
}

// ---- nn ---------------------------------------------------------------------------------

export type PaddingRef = 'same' | 'valid' | readonly [number, number, number, number];

/** Output size and leading pad of one axis (TF SAME: out = ceil(in / stride), extra pad at the end). */
export function padAxis(input: number, k: number, stride: number, pad: 'same' | 'valid' | [number, number]): { out: number; lo: number } {
  if (pad === 'same') {
    const out = Math.ceil(input / stride);
    const total = Math.max((out - 1) * stride + k - input, 0);
    return { out, lo: Math.floor(total / 2) };
  }
  const [lo, hi] = pad === 'valid' ? [0, 0] : pad;
  return { out: Math.floor((input + lo + hi - k) / stride) + 1, lo };
}

function pads(p: PaddingRef): { h: 'same' | 'valid' | [number, number]; w: 'same' | 'valid' | [number, number] } {
  if (p === 'same' || p === 'valid') return { h: p, w: p };
  return { h: [p[0], p[1]], w: [p[2], p[3]] };
}

/** x [B,H,W,Cin] NHWC, w [KH,KW,Cin,Cout] HWIO -> [B,OH,OW,Cout]. Zero padding. */
export function conv2dRef(
  x: Arr,
  xShape: Shape,
  w: Arr,
  wShape: Shape,
  o: { bias?: Arr | null; stride?: [number, number]; padding?: PaddingRef } = {},
): { data: Float64Array; shape: number[] } {
  const [B, H, W, C] = xShape;
  const [KH, KW, , CO] = wShape;
  const [sh, sw] = o.stride ?? [1, 1];
  const p = pads(o.padding ?? 'valid');
  const ph = padAxis(H, KH, sh, p.h);
  const pw = padAxis(W, KW, sw, p.w);
  const OH = ph.out;
  const OW = pw.out;
  const out = new Float64Array(B * OH * OW * CO);
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < OH; oy++)
      for (let ox = 0; ox < OW; ox++) {
        const ob = ((b * OH + oy) * OW + ox) * CO;
        for (let co = 0; co < CO; co++) out[ob + co] = o.bias ? o.bias[co] : 0;
        for (let ky = 0; ky < KH; ky++) {
          const iy = oy * sh - ph.lo + ky;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < KW; kx++) {
            const ix = ox * sw - pw.lo + kx;
            if (ix < 0 || ix >= W) continue;
            for (let ci = 0; ci < C; ci++) {
              const xv = x[((b * H + iy) * W + ix) * C + ci];
              const wo = ((ky * KW + kx) * C + ci) * CO;
              for (let co = 0; co < CO; co++) out[ob + co] += xv * w[wo + co];
            }
          }
        }
      }
  return { data: out, shape: [B, OH, OW, CO] };
}

/** Max pool over NHWC; padded positions never win. */
export function maxPool2dRef(
  x: Arr,
  xShape: Shape,
  kernel: [number, number],
  stride: [number, number],
  padding: PaddingRef = 'valid',
): { data: Float64Array; shape: number[] } {
  const [B, H, W, C] = xShape;
  const p = pads(padding);
  const ph = padAxis(H, kernel[0], stride[0], p.h);
  const pw = padAxis(W, kernel[1], stride[1], p.w);
  const out = new Float64Array(B * ph.out * pw.out * C).fill(-Infinity);
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < ph.out; oy++)
      for (let ox = 0; ox < pw.out; ox++)
        for (let ky = 0; ky < kernel[0]; ky++) {
          const iy = oy * stride[0] - ph.lo + ky;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < kernel[1]; kx++) {
            const ix = ox * stride[1] - pw.lo + kx;
            if (ix < 0 || ix >= W) continue;
            for (let c = 0; c < C; c++) {
              const o = ((b * ph.out + oy) * pw.out + ox) * C + c;
              out[o] = Math.max(out[o], x[((b * H + iy) * W + ix) * C + c]);
            }
          }
        }
  return { data: out, shape: [B, ph.out, pw.out, C] };
}

/** Inference batch norm over the last axis. */
export function batchNormRef(x: Arr, c: number, mean: Arr, variance: Arr, weight?: Arr | null, bias?: Arr | null, eps = 1e-5): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const j = i % c;
    let y = (x[i] - mean[j]) / Math.sqrt(variance[j] + eps);
    if (weight) y *= weight[j];
    if (bias) y += bias[j];
    out[i] = y;
  }
  return out;
}

export function embeddingRef(weight: Arr, channels: number, ids: Arr): Float64Array {
  const out = new Float64Array(ids.length * channels);
  for (let i = 0; i < ids.length; i++)
    for (let c = 0; c < channels; c++) out[i * channels + c] = weight[ids[i] * channels + c];
  return out;
}

export function oneHotRef(ids: Arr, depth: number, on = 1, off = 0): Float64Array {
  const out = new Float64Array(ids.length * depth).fill(off);
  for (let i = 0; i < ids.length; i++) out[i * depth + ids[i]] = on;
  return out;
}

// ---- comparison -------------------------------------------------------------------------

export function maxAbs(x: Arr): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) if (Math.abs(x[i]) > m) m = Math.abs(x[i]);
  return m;
}

/** float32 rounding unit. */
export const EPS32 = 2 ** -23;

/**
 * Tolerance of a float32 dot product of length k between vectors bounded by aMax
 * and bMax: the accumulated rounding grows like sqrt(k) for random signs, so
 * atol = 1e-6 * sqrt(k) * aMax * bMax (about 8 * EPS32 * sqrt(k)), plus 1e-5 relative.
 */
export function dotTol(k: number, aMax: number, bMax: number): { rtol: number; atol: number } {
  return { rtol: 1e-5, atol: 1e-6 * Math.sqrt(Math.max(k, 1)) * aMax * bMax + 1e-30 };
}

export interface CloseOptions {
  rtol?: number;
  atol?: number;
  /** Shape of the arrays, to report the worst element as a multi-index. */
  shape?: Shape;
  msg?: string;
}

/**
 * got ≈ want elementwise: |got - want| <= atol + rtol * |want| (floored on CUDA, see
 * below). NaN must meet NaN,
 * infinities must be equal. Fails with the worst element, its index and the ratio
 * of its error to the tolerance. With PIO_TOL_REPORT=1 in the environment every call
 * prints that ratio to stderr, to see how much margin each tolerance leaves.
 */
export function assertClose(t: ExecutionContext, got: Arr, want: Arr, opts: CloseOptions = {}): void {
  // On the GPU (PERCEIVER_TEST_DEVICE=cuda) float32 results carry a few ulp more:
  // CUDA's expf/erff/tanhf are not correctly rounded and sums run in another order.
  // Tolerances written for the CPU are floored there, never loosened on the CPU.
  const rtol = ON_CUDA ? Math.max(opts.rtol ?? 1e-5, 1e-5) : opts.rtol ?? 1e-5;
  const atol = ON_CUDA ? Math.max(opts.atol ?? 0, 1e-7) : opts.atol ?? 0;
  const where = (i: number) => (opts.shape ? `[${unravel(i, opts.shape).join(', ')}]` : `${i}`);
  const pre = opts.msg ? `${opts.msg}: ` : '';
  if (got.length !== want.length) {
    t.fail(`${pre}length ${got.length}, expected ${want.length}`);
    return;
  }
  let worst = -1;
  let worstRatio = 0;
  let bad = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    let ratio: number;
    if (Number.isNaN(w) || Number.isNaN(g)) ratio = Number.isNaN(w) && Number.isNaN(g) ? 0 : Infinity;
    else if (!Number.isFinite(w) || !Number.isFinite(g)) ratio = g === w ? 0 : Infinity;
    else {
      const tol = atol + rtol * Math.abs(w);
      const err = Math.abs(g - w);
      ratio = err === 0 ? 0 : tol === 0 ? Infinity : err / tol;
    }
    if (ratio > 1) bad++;
    if (ratio > worstRatio || (worst < 0 && ratio > 1)) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (process.env.PIO_TOL_REPORT) console.error(`TOLREPORT ${worstRatio.toFixed(4)} ${t.title} :: ${opts.msg ?? ''}`);
  if (bad > 0) {
    t.fail(
      `${pre}${bad} of ${want.length} elements differ (rtol ${rtol}, atol ${atol}); worst at ${where(worst)}: ` +
        `got ${got[worst]}, expected ${want[worst]} (${worstRatio.toPrecision(3)}x the tolerance)`,
    );
  } else {
    t.pass();
  }
}

/** got equals want exactly (NaN meets NaN; -0 and 0 are equal unless signed is set). */
export function assertExact(t: ExecutionContext, got: Arr, want: Arr, msg = '', signed = false): void {
  const pre = msg ? `${msg}: ` : '';
  if (got.length !== want.length) {
    t.fail(`${pre}length ${got.length}, expected ${want.length}`);
    return;
  }
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    const same = signed ? Object.is(g, w) : g === w || (Number.isNaN(g) && Number.isNaN(w));
    if (!same) {
      t.fail(`${pre}element ${i}: got ${Object.is(g, -0) ? '-0' : g}, expected ${Object.is(w, -0) ? '-0' : w}`);
      return;
    }
  }
  t.pass();
}

// ---- isolation --------------------------------------------------------------------------

const LIB = fileURLToPath(new URL('../../lib/index.js', import.meta.url));

/**
 * Runs an ES module snippet in a fresh node process with the library imported as P,
 * for cases that could crash the process (a crash then fails one test, not the
 * whole file). The snippet prints JSON on its last line of stdout.
 */
export function runIsolated(body: string, timeoutMs = 30_000): { status: number | null; signal: string | null; stdout: string; stderr: string; json?: unknown } {
  const code = `import * as P from ${JSON.stringify(LIB)};\n${body}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: timeoutMs });
  const lines = (r.stdout ?? '').trim().split('\n');
  let json: unknown;
  try {
    json = JSON.parse(lines[lines.length - 1]);
  } catch {
    json = undefined;
  }
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', json };
}
