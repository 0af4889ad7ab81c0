// Autograd: every differentiable op's backward against central finite differences of
// its float64 reference (test/helpers/reference.ts) on small random inputs, plus the
// tape's contract (leaves, accumulation, noGrad, retainGraph, errors, no leaks).
// Each case: loss = sum(w * op(inputs)) with random w; the engine's d loss / d input
// must match (ref(x + h e_i) - ref(x - h e_i)) / 2h, computed in double precision.
import test from 'ava';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { native } from '../lib/native.js';
import { wrap } from '../lib/tensor.js';
import {
  assertClose,
  attentionRef,
  batchNormRef,
  binaryRef,
  broadcastRef,
  concatRef,
  conv2dRef,
  embeddingRef,
  geluRef,
  geluTanhRef,
  layerNormRef,
  mapRef,
  matmulRef,
  maxPool2dRef,
  permuteRef,
  randomArray,
  reduceRef,
  sigmoidRef,
  sliceRef,
  softmaxRef,
  type Activation,
} from './helpers/reference.js';
import { baseline, DEVICE_NAME, live, ON_CUDA, rtolFor } from './helpers/device.js';

type Arr = ArrayLike<number>;
type Shape = readonly number[];

interface GradCase {
  /** Input shapes; every input is differentiable unless listed in `constant`. */
  shapes: Shape[];
  /** Engine op on tensors. */
  op: (xs: Tensor[]) => Tensor;
  /** float64 reference on flat arrays; returns the flat output. */
  ref: (xs: Float64Array[]) => ArrayLike<number>;
  /** Inputs that get no gradient check (masks, statistics). */
  constant?: number[];
  /** Custom input values (otherwise uniform in [-1, 1]). */
  values?: (Float32Array | Int32Array | Uint8Array | null)[];
  dtypes?: ('float32' | 'int32' | 'uint8')[];
  tol?: { rtol: number; atol: number };
}

async function checkGrad(t: import('ava').ExecutionContext, name: string, c: GradCase): Promise<void> {
  const before = (await baseline()).tensors;
  const data = c.shapes.map((s, i) => c.values?.[i] ?? randomArray(s.reduce((a, b) => a * b, 1), 100 + i * 7, -1, 1));
  const xs = c.shapes.map((s, i) => {
    const x = P.tensor(data[i], s, { dtype: c.dtypes?.[i] ?? 'float32' });
    if (!c.constant?.includes(i) && (c.dtypes?.[i] ?? 'float32') === 'float32') x.requiresGrad = true;
    return x;
  });
  const out = P.tidy(() => c.op(xs));
  const w = randomArray(out.size, 7, -1, 1);
  const wt = P.tensor(w, out.shape);
  const loss = P.tidy(() => {
    let s = out.mul(wt);
    while (s.rank > 0) s = s.sum(0);
    return s;
  });
  loss.backward();
  const f64 = data.map((d) => Float64Array.from(d));
  const lossRef = (inputs: Float64Array[]) => {
    const y = c.ref(inputs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += w[i] * y[i];
    return s;
  };
  for (let i = 0; i < xs.length; i++) {
    if (!xs[i].requiresGrad) continue;
    const h = 1e-6;
    const numeric = new Float64Array(f64[i].length);
    for (let j = 0; j < numeric.length; j++) {
      const keep = f64[i][j];
      f64[i][j] = keep + h;
      const up = lossRef(f64);
      f64[i][j] = keep - h;
      const down = lossRef(f64);
      f64[i][j] = keep;
      numeric[j] = (up - down) / (2 * h);
    }
    t.truthy(xs[i].grad, `${name}: input ${i} has a gradient`);
    const got = xs[i].grad ? await xs[i].grad!.data() : new Float32Array(numeric.length);
    assertClose(t, got, numeric, { ...(c.tol ?? { rtol: 1e-3, atol: 1e-4 }), msg: `${name}: d loss / d input ${i}` });
  }
  for (const x of [...xs, out, wt, loss]) x.dispose();
  t.is(live().tensors, before, `${name}: no tensor outlives the graph`);
}

const r3 = [2, 3, 4];

// ---- elementwise ---------------------------------------------------------------------------

const binaries: [string, (a: Tensor, b: Tensor) => Tensor, (x: number, y: number) => number, Float32Array?][] = [
  ['add', P.add, (x, y) => x + y],
  ['sub', P.sub, (x, y) => x - y],
  ['mul', P.mul, (x, y) => x * y],
  ['div', P.div, (x, y) => x / y, randomArray(4, 3, 0.5, 2)],
  ['maximum', P.maximum, (x, y) => Math.max(x, y)],
  ['minimum', P.minimum, (x, y) => Math.min(x, y)],
  ['pow', P.pow, (x, y) => x ** y, randomArray(4, 3, 0.5, 2)],
];
for (const [name, op, f, bValues] of binaries)
  test.serial(`${name}: gradients to both operands, summed over broadcast axes`, async (t) => {
    const a = name === 'pow' ? randomArray(24, 5, 0.5, 2) : randomArray(24, 5, -1, 1);
    await checkGrad(t, name, {
      shapes: [r3, [1, 4]],
      values: [a, bValues ?? randomArray(4, 3, -1, 1)],
      op: ([x, y]) => op(x, y),
      ref: ([x, y]) => binaryRef(x, r3, y, [1, 4], f).data,
    });
  });

const erfFreeGelu = geluRef;
const unaries: [string, (x: Tensor) => Tensor, (v: number) => number, [number, number]?][] = [
  ['neg', P.neg, (v) => -v],
  ['exp', P.exp, Math.exp],
  ['log', P.log, Math.log, [0.2, 2]],
  ['sin', P.sin, Math.sin],
  ['cos', P.cos, Math.cos],
  ['sqrt', P.sqrt, Math.sqrt, [0.2, 2]],
  ['rsqrt', P.rsqrt, (v) => 1 / Math.sqrt(v), [0.2, 2]],
  ['tanh', P.tanh, Math.tanh],
  ['sigmoid', P.sigmoid, sigmoidRef],
  ['relu', P.relu, (v) => Math.max(v, 0)],
  ['abs', P.abs, Math.abs],
  ['square', P.square, (v) => v * v],
  ['gelu', (x) => P.gelu(x), erfFreeGelu, [-4, 4]],
  ['gelu tanh', (x) => P.gelu(x, { approximate: 'tanh' }), geluTanhRef, [-4, 4]],
  ['scale', (x) => P.scale(x, -1.5, 0.25), (v) => -1.5 * v + 0.25],
];
for (const [name, op, f, range] of unaries)
  for (const kernels of name.startsWith('gelu') ? [true, false] : [true])
  test.serial(`${name}: gradient${name.startsWith('gelu') ? (kernels ? ' (training kernel)' : ' (composed)') : ''}`, async (t) => {
    P.gradKernels.enabled = kernels;
    t.teardown(() => (P.gradKernels.enabled = true));
    await checkGrad(t, name, { shapes: [[5, 7]], values: [randomArray(35, 11, ...(range ?? [-1, 1]))], op: ([x]) => op(x), ref: ([x]) => mapRef(x, f) });
  });

test.serial('gelu: the gradient at exactly 0 is 1/2', async (t) => {
  const x = P.tensor(new Float32Array([0, 0]), [2]);
  x.requiresGrad = true;
  P.tidy(() => P.gelu(x).sum(0).backward());
  t.deepEqual(Array.from(await x.grad!.data()), [0.5, 0.5]);
  x.dispose();
});

test.serial('where: the gradient goes to the chosen side; the condition gets none', async (t) => {
  const cond = Uint8Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  await checkGrad(t, 'where', {
    shapes: [[3, 4], [3, 4], [1, 4]],
    dtypes: ['uint8', 'float32', 'float32'],
    values: [cond, null, null],
    op: ([c, a, b]) => P.where(c, a, b),
    ref: ([c, a, b]) => {
      const bb = broadcastRef(b, [1, 4], [3, 4]);
      return Float64Array.from(c, (v, i) => (v ? a[i] : bb[i]));
    },
  });
});

// ---- layout --------------------------------------------------------------------------------

test.serial('reshape, permute, transpose, unsqueeze, squeeze, contiguous, broadcastTo, flatten', async (t) => {
  await checkGrad(t, 'permute+reshape', {
    shapes: [r3],
    op: ([x]) => P.reshape(P.contiguous(P.permute(x, [2, 0, 1])), [4, 6]).unsqueeze(0).squeeze(0).flatten(),
    ref: ([x]) => permuteRef(x, r3, [2, 0, 1]).data,
  });
  await checkGrad(t, 'broadcastTo', {
    shapes: [[3, 1]],
    op: ([x]) => P.broadcastTo(x, [2, 3, 5]),
    ref: ([x]) => broadcastRef(x, [3, 1], [2, 3, 5]),
  });
  await checkGrad(t, 'transpose', { shapes: [r3], op: ([x]) => P.transpose(x, 0, 2), ref: ([x]) => permuteRef(x, r3, [2, 1, 0]).data });
});

for (const [start, end, step] of [[1, 3, 1], [0, 4, 2], [1, undefined, 3], [-3, -1, 1]] as [number, number | undefined, number][])
  test.serial(`slice(axis 2, ${start}, ${end}, step ${step}): zeros where the slice did not look`, async (t) => {
    const shape = [2, 3, 7];
    await checkGrad(t, 'slice', { shapes: [shape], op: ([x]) => P.slice(x, 2, start, end, step), ref: ([x]) => sliceRef(x, shape, 2, start, end, step).data });
  });

test.serial('concat: each part gets its slice of the gradient', async (t) => {
  await checkGrad(t, 'concat', {
    shapes: [[2, 2, 3], [2, 1, 3], [2, 4, 3]],
    op: (xs) => P.concat(xs, 1),
    ref: ([a, b, c]) => concatRef([{ data: a, shape: [2, 2, 3] }, { data: b, shape: [2, 1, 3] }, { data: c, shape: [2, 4, 3] }], 1).data,
  });
});

// ---- reductions and normalisation ----------------------------------------------------------

for (const op of ['sum', 'mean', 'max', 'min'] as const)
  for (const axis of [0, 1, -1])
    test.serial(`${op} over axis ${axis}`, async (t) => {
      await checkGrad(t, op, {
        shapes: [r3],
        op: ([x]) => P[op](x, axis, { keepdim: axis === 1 }),
        ref: ([x]) => reduceRef(x, r3, axis, op).data,
      });
    });

test.serial('max: a tie shares the gradient equally', async (t) => {
  const x = P.tensor(new Float32Array([1, 3, 3, 2]), [4]);
  x.requiresGrad = true;
  P.tidy(() => P.max(x, 0).backward());
  t.deepEqual(Array.from(await x.grad!.data()), [0, 0.5, 0.5, 0]);
  x.dispose();
});

test.serial('softmax and log-softmax over the last axis', async (t) => {
  await checkGrad(t, 'softmax', { shapes: [[3, 5]], op: ([x]) => P.softmax(x), ref: ([x]) => softmaxRef(x, 5) });
  await checkGrad(t, 'logSoftmax', { shapes: [[3, 5]], op: ([x]) => P.logSoftmax(x), ref: ([x]) => softmaxRef(x, 5, true) });
});

for (const kernels of [true, false])
test.serial(`layerNorm: gradients to x, weight and bias (${kernels ? "the backend's training kernel" : 'composed of forward ops, as backends without one run it'})`, async (t) => {
  P.gradKernels.enabled = kernels;
  t.teardown(() => (P.gradKernels.enabled = true));
  await checkGrad(t, 'layerNorm', {
    shapes: [[4, 6], [6], [6]],
    op: ([x, w, b]) => P.layerNorm(x, w, b),
    ref: ([x, w, b]) => layerNormRef(x, 6, w, b),
  });
  await checkGrad(t, 'layerNorm without affine', { shapes: [[4, 6]], op: ([x]) => P.layerNorm(x), ref: ([x]) => layerNormRef(x, 6) });
});

test.serial('layerNorm on 16-bit operands: gradients in their dtype, as float32 math on the same values rounded once', async (t) => {
  // Rows of whole 16-byte packs (CUDA's row-per-warp kernel), rows of 261 (element loads),
  // short rows. On CUDA the 16-bit kernel takes the operands as they are; elsewhere
  // they are widened, and the results narrowed.
  for (const [rows, n] of [[16, 1024], [5, 261], [3, 6]]) {
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const xv = randomArray(rows * n, 500 + n, -3, 3), wv = randomArray(n, 501 + n, 0.5, 1.5), bv = randomArray(n, 502 + n);
      const r = P.tensor(randomArray(rows * n, 503 + n), [rows, n]);
      const grads = (dt: 'float32' | typeof dtype) =>
        P.tidy(() => {
          const leaves = [P.tensor(xv, [rows, n]), P.tensor(wv, [n]), P.tensor(bv, [n])].map((v) => P.keep(v.cast(dtype).cast(dt)));
          for (const l of leaves) l.requiresGrad = true;
          P.layerNorm(leaves[0], leaves[1], leaves[2]).cast('float32').mul(r).sum(1).sum(0).backward();
          return leaves;
        });
      const [low, high] = [grads(dtype), grads('float32')];
      for (let i = 0; i < 3; i++) {
        const [g, want] = [low[i].grad!, high[i].grad!];
        t.is(g.dtype, dtype, `${dtype} [${rows}, ${n}] gradient ${i}`);
        const [gv, hv] = [await g.cast('float32').data(), await want.data()];
        const scale = Math.max(...Array.from(hv, Math.abs), 1e-30);
        const worst = Math.max(...Array.from(hv, (h, j) => Math.abs(gv[j] - h))) / scale;
        t.true(worst <= rtolFor(dtype) * 2, `${dtype} [${rows}, ${n}] gradient ${i}: ${worst}`);
      }
      for (const l of [...low, ...high]) l.dispose();
      r.dispose();
    }
  }
});

test.serial('batchNorm (inference statistics): gradients to x, weight and bias', async (t) => {
  const c = 3;
  await checkGrad(t, 'batchNorm', {
    shapes: [[2, 2, 2, c], [c], [c], [c], [c]],
    values: [null, randomArray(c, 1, -0.5, 0.5), randomArray(c, 2, 0.5, 1.5), null, null],
    constant: [1, 2],
    op: ([x, m, v, w, b]) => P.batchNorm(x, m, v, { weight: w, bias: b }),
    ref: ([x, m, v, w, b]) => batchNormRef(x, c, m, v, w, b),
  });
});

// ---- linear algebra ------------------------------------------------------------------------

for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]])
  for (const act of ['none', 'relu', 'gelu', 'gelu_tanh'] as Activation[])
    test.serial(`matmul transA=${transA} transB=${transB} activation ${act}, bias, alpha, broadcast batch`, async (t) => {
      const [M, K, N] = [3, 4, 5];
      const aShape = [2, ...(transA ? [K, M] : [M, K])];
      const bShape = transB ? [N, K] : [K, N];
      await checkGrad(t, 'matmul', {
        shapes: [aShape, bShape, [N]],
        op: ([a, b, bias]) => P.matmul(a, b, { transA, transB, bias, activation: act, alpha: 0.7 }),
        ref: ([a, b, bias]) => matmulRef(a, aShape, b, bShape, { transA, transB, bias, activation: act, alpha: 0.7 }).data,
      });
    });

for (const addShape of [[2, 3, 5], [3, 1]])
  test.serial(`matmul with an addend [${addShape}] (and bias): the addend's gradient is the output's, summed over broadcast axes`, async (t) => {
    const [M, K, N] = [3, 4, 5];
    const aShape = [2, M, K];
    const bShape = [N, K];
    const outShape = [2, M, N];
    await checkGrad(t, 'matmul', {
      shapes: [aShape, bShape, [N], addShape],
      op: ([a, b, bias, r]) => P.matmul(a, b, { transB: true, bias, addend: r }),
      ref: ([a, b, bias, r]) => {
        const y = matmulRef(a, aShape, b, bShape, { transB: true, bias }).data;
        const rf = broadcastRef(r, addShape, outShape);
        return y.map((v, i) => v + rf[i]);
      },
    });
  });

// A weight shared by several products (the latent blocks share theirs) and an input that
// also feeds a residual: the later uses' gradients join the products as their addends
// (the tape's Accumulated), so they must still sum every use.
for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]])
  test.serial(`matmul transA=${transA} transB=${transB}: a weight used three times and a residual branch get every use's gradient`, async (t) => {
    const D = 4;
    const xShape = [2, 3, D];
    const wShape = [D, D];
    const mm = (a: Float64Array, aShape: Shape, b: Float64Array) => matmulRef(a, aShape, b, wShape, { transB }).data;
    await checkGrad(t, 'shared matmul', {
      shapes: [xShape, wShape, [3, D]],
      op: ([x, w, r]) => {
        const h1 = P.matmul(x, w, { transB });
        const h2 = P.matmul(h1, w, { transB, alpha: 0.5 }).add(h1);
        // r used as op(a) of a plain product and as a residual (broadcast batch: its own path).
        const rr = P.matmul(transA ? P.contiguous(P.transpose(r, 0, 1)) : r, w, { transA, transB });
        return P.matmul(h2, w, { transB }).add(rr).add(r);
      },
      ref: ([x, w, r]) => {
        const h1 = mm(x, xShape, w);
        const h2 = mm(h1, xShape, w).map((v, i) => 0.5 * v + h1[i]);
        const rr = mm(r, [3, D], w);
        const y = mm(h2, xShape, w);
        return y.map((v, i) => v + rr[i % (3 * D)] + r[i % (3 * D)]);
      },
    });
  });

const attentionCases: [string, { B: number; Nq: number; Nk: number; H: number; Dqk: number; Dv: number }, boolean][] = [
  ['two heads, Dqk != Dv', { B: 2, Nq: 3, Nk: 5, H: 2, Dqk: 4, Dv: 3 }, false],
  ['a key mask with a fully masked row', { B: 2, Nq: 3, Nk: 4, H: 1, Dqk: 3, Dv: 2 }, true],
];
for (const [name, d, masked] of attentionCases)
  for (const kernels of [true, false])
  test.serial(`attention: ${name}${kernels ? ' (fused kernel)' : ' (composed)'}`, async (t) => {
    P.gradKernels.enabled = kernels;
    t.teardown(() => (P.gradKernels.enabled = true));
    const q = [d.B, d.Nq, d.H, d.Dqk];
    const k = [d.B, d.Nk, d.H, d.Dqk];
    const v = [d.B, d.Nk, d.H, d.Dv];
    // Allowed keys marked 1, 7 or 255: any nonzero value allows, and none may scale.
    const maskData = Uint8Array.from({ length: d.B * d.Nq * d.Nk }, (_, i) => (i < d.Nk ? 0 : (i * 5) % 3 === 0 ? 0 : [1, 7, 255][i % 3]));
    const mShape = [d.B, d.Nq, d.Nk];
    await checkGrad(t, 'attention', {
      shapes: masked ? [q, k, v, mShape] : [q, k, v],
      dtypes: masked ? ['float32', 'float32', 'float32', 'uint8'] : undefined,
      values: masked ? [null, null, null, maskData] : undefined,
      op: ([tq, tk, tv, tm]) => P.attention(tq, tk, tv, { mask: tm ?? null, scale: 0.6 }),
      ref: ([tq, tk, tv, tm]) => attentionRef(tq, tk, tv, d, tm ? { data: tm, shape: mShape } : null, 0.6),
    });
  });

test.serial('attention with one tensor as keys and values (the image encoders): its gradient sums both uses', async (t) => {
  const d = { B: 2, Nq: 3, Nk: 5, H: 2, Dqk: 4, Dv: 4 };
  for (const kernels of [true, false]) {
    P.gradKernels.enabled = kernels;
    t.teardown(() => (P.gradKernels.enabled = true));
    await checkGrad(t, `attention k = v${kernels ? '' : ' (composed)'}`, {
      shapes: [[d.B, d.Nq, d.H, d.Dqk], [d.B, d.Nk, d.H, d.Dqk]],
      op: ([tq, kv]) => P.attention(tq, kv, kv, { scale: 0.6 }),
      ref: ([tq, kv]) => attentionRef(tq, kv, kv, d, null, 0.6),
    });
  }
  // 16-bit, keys and values a reshape of a leaf's cast (as in the encoders): the same
  // gradient as with two separate casts, whose parts the engine adds.
  P.gradKernels.enabled = false;
  const x = P.tensor(randomArray(2 * 5 * 8, 61), [2, 5, 8]);
  const q = P.tensor(randomArray(2 * 3 * 8, 62), [2, 3, 2, 4], { dtype: 'bfloat16' });
  x.requiresGrad = true;
  const grads: Float32Array[] = [];
  for (const shared of [true, false]) {
    const kv = () => P.reshape(P.cast(x, 'bfloat16'), [2, 5, 2, 4]);
    const k = kv();
    P.tidy(() => P.attention(q, k, shared ? k : kv(), { scale: 0.6 }).cast('float32').square().sum(3).sum(2).sum(1).sum(0).backward());
    grads.push((await x.grad!.data()) as Float32Array);
    x.grad!.dispose();
    x.grad = null;
    k.dispose();
  }
  assertClose(t, grads[0], Float64Array.from(grads[1]), { rtol: 2e-2, atol: 2e-3, msg: 'bf16 k = v against two casts' });
  for (const v of [x, q]) v.dispose();
});

// Parts of x [B, N, H, sum(widths)] along the last axis, as split() cuts them.
function partsRef(x: ArrayLike<number>, rows: number, widths: number[]): Float64Array[] {
  const total = widths.reduce((a, b) => a + b, 0);
  let at = 0;
  return widths.map((w) => {
    const out = new Float64Array(rows * w);
    for (let r = 0; r < rows; r++) for (let c = 0; c < w; c++) out[r * w + c] = x[r * total + at + c];
    at += w;
    return out;
  });
}

test.serial('attention over the parts of one split (a fused projection): the gradient goes to the whole joined, alone or beside other uses', async (t) => {
  const d = { B: 2, Nq: 4, Nk: 4, H: 2, Dqk: 3, Dv: 5 };
  const self = [d.B, d.Nq, d.H, 2 * d.Dqk + d.Dv];
  const rows = d.B * d.Nq * d.H;
  for (const kernels of [true, false]) {
    P.gradKernels.enabled = kernels;
    t.teardown(() => (P.gradKernels.enabled = true));
    const how = kernels ? '' : ' (composed)';
    await checkGrad(t, `q, k and v of one split${how}`, {
      shapes: [self],
      op: ([x]) => P.attention(...(P.split(x, 3, [d.Dqk, d.Dqk, d.Dv]) as [Tensor, Tensor, Tensor]), { scale: 0.6 }),
      ref: ([x]) => attentionRef(...(partsRef(x, rows, [d.Dqk, d.Dqk, d.Dv]) as [Float64Array, Float64Array, Float64Array]), d, null, 0.6),
    });
    // v also added to the output: the split's own slice gradient joins the attention's.
    await checkGrad(t, `q, k and v of one split, v used again${how}`, {
      shapes: [self],
      op: ([x]) => {
        const [q, k, v] = P.split(x, -1, [d.Dqk, d.Dqk, d.Dv]);
        return P.add(P.attention(q, k, v, { scale: 0.6 }), v);
      },
      ref: ([x]) => {
        const [q, k, v] = partsRef(x, rows, [d.Dqk, d.Dqk, d.Dv]);
        return attentionRef(q, k, v, d, null, 0.6).map((o, i) => o + v[i]);
      },
    });
    // A cross-attention's keys and values from one split, queries apart.
    const kv = [d.B, d.Nk + 2, d.H, d.Dqk + d.Dv];
    const dc = { ...d, Nk: d.Nk + 2 };
    await checkGrad(t, `k and v of one split${how}`, {
      shapes: [[d.B, d.Nq, d.H, d.Dqk], kv],
      op: ([q, x]) => P.attention(q, ...(P.split(x, 3, [d.Dqk, d.Dv]) as [Tensor, Tensor]), { scale: 0.6 }),
      ref: ([q, x]) => attentionRef(q, ...(partsRef(x, d.B * dc.Nk * d.H, [d.Dqk, d.Dv]) as [Float64Array, Float64Array]), dc, null, 0.6),
    });
    // The split's whole disposed before the attention (a tidy() around the split): its
    // parts' slices carry the gradient.
    await checkGrad(t, `q, k and v of a split whose whole is gone${how}`, {
      shapes: [self],
      op: ([x]) => {
        const parts = P.tidy(() => P.split(P.add(x, 0), 3, [d.Dqk, d.Dqk, d.Dv]));
        return P.attention(parts[0], parts[1], parts[2], { scale: 0.6 });
      },
      ref: ([x]) => attentionRef(...(partsRef(x, rows, [d.Dqk, d.Dqk, d.Dv]) as [Float64Array, Float64Array, Float64Array]), d, null, 0.6),
    });
    // Parts out of order are not the split's whole: each goes through its slice.
    await checkGrad(t, `parts of one split out of order${how}`, {
      shapes: [[d.B, d.Nq, d.H, 2 * d.Dqk + d.Dqk]],
      op: ([x]) => {
        const [a, b, c] = P.split(x, 3, [d.Dqk, d.Dqk, d.Dqk]);
        return P.attention(b, a, c, { scale: 0.6 });
      },
      ref: ([x]) => {
        const [a, b, c] = partsRef(x, rows, [d.Dqk, d.Dqk, d.Dqk]);
        return attentionRef(b, a, c, { ...d, Dv: d.Dqk }, null, 0.6);
      },
    });
  }
});

test.serial('attention over split parts that are not one split whole, in order: the same gradient as over slices', async (t) => {
  // cut: split() or the same parts by slice(), which attention never takes whole.
  type Cut = (x: Tensor, axis: number, sizes: number[]) => Tensor[];
  const bySplit: Cut = (x, axis, sizes) => P.split(x, axis, sizes);
  const bySlice: Cut = (x, axis, sizes) => {
    let at = 0;
    return sizes.map((n) => P.slice(x, axis, at, (at += n)));
  };
  const cases: [string, number[], (x: Tensor, cut: Cut) => Tensor][] = [
    // Two splits of one tensor that cut it differently: parts of both in one call.
    ['parts of two different splits', [1, 3, 2, 9], (x, cut) => {
      const [a, b] = [cut(x, 3, [2, 2, 5]), cut(x, 3, [1, 2, 6])];
      return P.add(P.attention(a[0], b[1], a[2]).sum(3), P.attention(a[0], a[1], b[2]).sum(3));
    }],
    ['three of a four-part split', [1, 3, 2, 9], (x, cut) => {
      const [q, k, v] = cut(x, 3, [2, 2, 3, 2]);
      return P.attention(q, k, v);
    }],
    ['a split of the heads axis', [1, 3, 3, 4], (x, cut) => {
      const [q, k, v] = cut(x, 2, [1, 1, 1]);
      return P.attention(q, k, v);
    }],
    ['a whole that stopped wanting a gradient after the split', [1, 3, 2, 9], (x, cut) => {
      const [q, k, v] = cut(x, 3, [2, 2, 5]);
      x.requiresGrad = false;
      return P.attention(q, k, v);
    }],
  ];
  for (const [name, shape, f] of cases) {
    const grads: Float32Array[] = [];
    for (const cut of [bySplit, bySlice]) {
      const x = P.tensor(randomArray(shape.reduce((a, b) => a * b, 1), 71, -1, 1), shape);
      x.requiresGrad = true;
      P.tidy(() => {
        let y = f(x, cut).square();
        while (y.rank > 0) y = y.sum(0);
        y.backward();
      });
      // A leaf that stopped wanting a gradient takes none either way (torch's AccumulateGrad).
      if (!x.requiresGrad) {
        t.is(x.grad, null, `${name}: no gradient`);
        x.dispose();
        continue;
      }
      t.truthy(x.grad, `${name}: a gradient`);
      grads.push(Float32Array.from((await x.grad!.data()) as Float32Array));
      x.grad!.dispose();
      x.dispose();
    }
    if (grads.length === 0) continue;
    t.true(grads[1].some((v) => v !== 0), `${name}: not zero`);
    assertClose(t, grads[0], Float64Array.from(grads[1]), { rtol: 1e-5, atol: 1e-6, msg: name });
  }
});

// The fused gradient against the composed one (gradKernels off) where blocks, key
// ranges and masks take every path of the kernel: 256-row query blocks, 256-key
// blocks, a (batch, head) split into key ranges whose dQ partials are summed, rows
// with every key masked, masks broadcast over queries, strided operands, 16-bit.
interface FusedCase { B: number; Nq: number; Nk: number; H: number; Dqk: number; Dv: number; mask?: 'random' | 'keys' | 'none'; dtype?: 'float32' | 'bfloat16'; strided?: boolean; composedForward?: boolean; dropout?: number }
const fusedCases: [string, FusedCase][] = [
  ['several query and key blocks, one head', { B: 1, Nq: 300, Nk: 1100, H: 1, Dqk: 24, Dv: 20 }],
  ['key ranges with a random mask and fully masked rows', { B: 2, Nq: 70, Nk: 1500, H: 2, Dqk: 16, Dv: 8, mask: 'random' }],
  ['a key mask broadcast over queries', { B: 3, Nq: 33, Nk: 600, H: 3, Dqk: 8, Dv: 12, mask: 'keys' }],
  ['strided q, k and v', { B: 2, Nq: 40, Nk: 300, H: 4, Dqk: 16, Dv: 16, strided: true }],
  ['the row statistics recomputed (forward composed)', { B: 1, Nq: 90, Nk: 700, H: 2, Dqk: 12, Dv: 10, mask: 'random', composedForward: true }],
  ['bfloat16 operands', { B: 2, Nq: 20, Nk: 260, H: 2, Dqk: 16, Dv: 8, dtype: 'bfloat16' }],
  ['one query', { B: 2, Nq: 1, Nk: 513, H: 1, Dqk: 32, Dv: 32, mask: 'random' }],
  // 16-bit heads at the widths of CUDA's flash gradient (its tiers, DEVICE.md), with
  // ragged key and query tiles.
  ['bfloat16 heads of 128, a random mask', { B: 2, Nq: 70, Nk: 150, H: 2, Dqk: 128, Dv: 128, mask: 'random', dtype: 'bfloat16' }],
  ['bfloat16 heads of 32 x 160 (the language model), a key mask', { B: 2, Nq: 40, Nk: 100, H: 2, Dqk: 32, Dv: 160, mask: 'keys', dtype: 'bfloat16' }],
  ['bfloat16 heads of 64, strided', { B: 2, Nq: 65, Nk: 130, H: 3, Dqk: 64, Dv: 64, dtype: 'bfloat16', strided: true }],
  // Dropout: the composed side materialises the weights and draws the same mask.
  ['dropout 0.3 over key ranges, with a random mask', { B: 1, Nq: 300, Nk: 1100, H: 2, Dqk: 16, Dv: 12, mask: 'random', dropout: 0.3 }],
  ['dropout 0.1, several heads, a key mask', { B: 3, Nq: 33, Nk: 600, H: 3, Dqk: 8, Dv: 12, mask: 'keys', dropout: 0.1 }],
];
for (const [name, c] of fusedCases)
  test.serial(`attention: the fused gradient matches the composed one: ${name}`, async (t) => {
    const dtype = c.dtype ?? 'float32';
    if (c.composedForward) {
      process.env.PERCEIVER_ATTENTION_COMPOSE = '1';
      t.teardown(() => delete process.env.PERCEIVER_ATTENTION_COMPOSE);
    }
    const before = (await baseline()).tensors;
    const randn = (shape: number[], seed: number) => P.tidy(() => P.cast(P.randn(shape, { seed }), dtype));
    const make = (shape: number[], seed: number) => {
      if (!c.strided) return randn(shape, seed);
      // [B, H, N, D] storage viewed as [B, N, H, D].
      const [b, n, h, d] = shape;
      return P.tidy(() => P.permute(randn([b, h, n, d], seed), [0, 2, 1, 3]));
    };
    const q = make([c.B, c.Nq, c.H, c.Dqk], 1), k = make([c.B, c.Nk, c.H, c.Dqk], 2), v = make([c.B, c.Nk, c.H, c.Dv], 3);
    const go = randn([c.B, c.Nq, c.H, c.Dv], 4);
    let mask: Tensor | null = null;
    if (c.mask === 'random') {
      // About a fifth of the keys masked, and every key of each seventh query row.
      const m = Uint8Array.from({ length: c.B * c.Nq * c.Nk }, (_, i) => (Math.floor(i / c.Nk) % 7 === 3 || (i * 2654435761) % 5 === 0 ? 0 : 1));
      mask = P.tensor(m, [c.B, c.Nq, c.Nk], { dtype: 'uint8' });
    } else if (c.mask === 'keys') {
      mask = P.tensor(Uint8Array.from({ length: c.B * c.Nk }, (_, i) => (i % 3 === 1 ? 0 : 1)), [c.B, 1, c.Nk], { dtype: 'uint8' });
    }
    const grads = async (kernels: boolean) => {
      P.gradKernels.enabled = kernels;
      // With dropout the forward decides: the composed gradient needs the composed forward.
      const composeDropout = !kernels && c.dropout !== undefined;
      if (composeDropout) process.env.PERCEIVER_ATTENTION_COMPOSE = '1';
      try {
        const leaves = [q, k, v].map((x) => {
          const l = P.tidy(() => P.add(x, 0));
          l.requiresGrad = true;
          return l;
        });
        const attend = () => P.attention(leaves[0], leaves[1], leaves[2], { mask, scale: 0.3, dropout: c.dropout, seed: 123 });
        P.tidy(() => P.backward(attend(), { gradient: go }));
        const out = await Promise.all(leaves.map((l) => l.grad!.data()));
        t.deepEqual(leaves.map((l) => l.grad!.dtype), [dtype, dtype, dtype]);
        leaves.forEach((l) => (l.grad!.dispose(), l.dispose()));
        return out;
      } finally {
        P.gradKernels.enabled = true;
        if (composeDropout) delete process.env.PERCEIVER_ATTENTION_COMPOSE;
      }
    };
    const fused = await grads(true);
    const composed = await grads(false);
    const tol = dtype === 'float32' ? { rtol: 1e-4, atol: 1e-5 } : { rtol: 3e-2, atol: 3e-2 };
    for (let i = 0; i < 3; i++) assertClose(t, fused[i], composed[i], { ...tol, msg: ['dq', 'dk', 'dv'][i] });
    [q, k, v, go, mask].forEach((x) => x?.dispose());
    t.is((await live()).tensors, before);
  });

test.serial('attention: the native gradient op refuses operands that do not match the forward call', (t) => {
  if (!native.hasAttentionBackward(DEVICE_NAME)) return t.pass();
  const made: Tensor[] = [];
  const m = <T extends Tensor>(x: T): T => (made.push(x), x);
  const q = m(P.randn([1, 3, 2, 4], { seed: 1 })), k = m(P.randn([1, 5, 2, 4], { seed: 2 })), v = m(P.randn([1, 5, 2, 6], { seed: 3 }));
  const out = m(P.attention(q, k, v));
  const g = m(P.randn([1, 3, 2, 6], { seed: 4 }));
  const call = (gg: Tensor, lse: Tensor | null, kk = k) => () => native.attentionBackward(q.handle, kk.handle, v.handle, null, out.handle, gg.handle, lse ? lse.handle : null, 0);
  t.throws(call(m(P.randn([1, 3, 2, 5], { seed: 5 })), null), { message: /attention_backward: .*'g'.*\[1, 3, 2, 6\]/ });
  t.throws(call(g, m(P.zeros([1, 3, 2]))), { message: /attention_backward: .*'lse'.*\[1, 2, 3\]/ });
  t.throws(call(g, m(P.zeros([1, 2, 3], { dtype: 'bfloat16' }))), { message: /attention_backward: .*'lse'.*float32/ });
  t.throws(call(g, null, m(P.randn([1, 5, 2, 3], { seed: 6 }))), { message: /attention_backward: argument 'k' must have shape/ });
  const ok = native.attentionBackward(q.handle, k.handle, v.handle, null, out.handle, g.handle, null, 0).map((h) => wrap(h));
  t.deepEqual(ok.map((x) => x.shape), [q.shape, k.shape, v.shape]);
  [...ok, ...made].forEach((x) => x.dispose());
});

test('attention: whether a call takes the fused gradient is asked per dtype, widths and dropout', (t) => {
  // The CPU takes every call; CUDA by its switches (DEVICE.md): its flash kernel (on
  // unless PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD=0) only 16-bit heads of its widths,
  // without dropout; float32 only with the chunked products (=BACKWARD=1).
  for (const dtype of ['float32', 'bfloat16'])
    for (const dropout of [false, true]) t.true(native.attentionBackwardFused('cpu', dtype, 24, 40, dropout));
  t.is(native.attentionBackwardFused(DEVICE_NAME, 'float32', 16, 16, false), native.hasAttentionBackward(DEVICE_NAME) && (!ON_CUDA || process.env.PERCEIVER_CUDA_ATTENTION_BACKWARD === '1'));
  if (ON_CUDA && process.env.PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD !== '0' && process.env.PERCEIVER_CUDA_ATTENTION_BACKWARD !== '1') {
    t.true(native.attentionBackwardFused(DEVICE_NAME, 'bfloat16', 128, 128, false));
    t.true(native.attentionBackwardFused(DEVICE_NAME, 'float16', 32, 160, false));
    t.false(native.attentionBackwardFused(DEVICE_NAME, 'bfloat16', 128, 128, true), 'dropout');
    t.false(native.attentionBackwardFused(DEVICE_NAME, 'bfloat16', 261, 261, false), 'no tier that wide');
    t.false(native.attentionBackwardFused(DEVICE_NAME, 'bfloat16', 36, 36, false), 'rows not in 16-byte units');
  }
  t.throws(() => native.attentionBackwardFused('cpu', 'float32', 16, 16, 'no' as unknown as boolean), { instanceOf: TypeError, message: /attentionBackwardFused: argument 'dropout'/ });
  t.throws(() => native.attentionBackwardFused('cpu', 'float64', 16, 16, false), { message: /attentionBackwardFused: argument 'dtype'/ });
  t.throws(() => native.attentionBackwardFused('tpu', 'float32', 16, 16, false), { message: /attentionBackwardFused: .*device/ });
  t.throws(() => (native.attentionBackwardFused as unknown as (d: string) => boolean)('cpu'), { message: /attentionBackwardFused/ });
});

test.serial('attention: the fused gradient materialises no [Nq, Nk] matrix (the composed one does)', async (t) => {
  const kind = ON_CUDA ? 'cuda' : 'cpu';
  const [B, Nq, Nk, H, D] = [1, 256, 8192, 1, 16];
  const fusedHere = native.attentionBackwardFused(DEVICE_NAME, 'float32', D, D, false);
  const scores = B * H * Nq * Nk * 4; // bytes of one [B, H, Nq, Nk] float32 matrix: 8 MiB
  const q = P.randn([B, Nq, H, D], { seed: 1 }), k = P.randn([B, Nk, H, D], { seed: 2 }), v = P.randn([B, Nk, H, D], { seed: 3 });
  const go = P.randn([B, Nq, H, D], { seed: 4 });
  const peakGrowth = async (kernels: boolean) => {
    P.gradKernels.enabled = kernels;
    try {
      const leaves = [q, k, v].map((x) => {
        const l = P.tidy(() => P.add(x, 0));
        l.requiresGrad = true;
        return l;
      });
      const out = P.attention(leaves[0], leaves[1], leaves[2]);
      await out.data();
      const base = P.memory()[kind].bytes;
      P.resetPeakMemoryStats();
      P.tidy(() => P.backward(out, { gradient: go }));
      await Promise.all(leaves.map((l) => l.grad!.data()));
      const growth = P.memory()[kind].peakBytes - base;
      [...leaves.map((l) => l.grad!), ...leaves, out].forEach((x) => x.dispose());
      return growth;
    } finally {
      P.gradKernels.enabled = true;
    }
  };
  const grads = (2 * B * Nk * H * D + B * Nq * H * D) * 4; // dq, dk, dv themselves
  const fused = await peakGrowth(true);
  const composed = await peakGrowth(false);
  if (fusedHere) t.true(fused <= grads + 64 * 1024, `fused: ${fused} bytes beyond the inputs (the gradients are ${grads})`);
  else t.log(`${DEVICE_NAME} has no fused attention gradient here: both runs composed it`);
  t.true(composed >= grads + 2 * scores, `composed: ${composed} bytes`);
  [q, k, v, go].forEach((x) => x.dispose());
});

// ---- nn ------------------------------------------------------------------------------------

test.serial('embedding: rows gathered twice get both gradients', async (t) => {
  const ids = Int32Array.from([2, 0, 2, 3]);
  await checkGrad(t, 'embedding', {
    shapes: [[4, 3], [2, 2]],
    dtypes: ['float32', 'int32'],
    values: [null, ids],
    op: ([w, i]) => P.embedding(w, i),
    ref: ([w]) => embeddingRef(w, 3, ids),
  });
});

test.serial('embedding: a weight tied to a decoder product gets both gradients', async (t) => {
  const ids = Int32Array.from([2, 0, 2, 3, 1, 0]);
  await checkGrad(t, 'tied embedding', {
    shapes: [[4, 3], [2, 3]],
    dtypes: ['float32', 'int32'],
    values: [null, ids],
    // The masked language model's decoder: logits over the vocabulary from the same weight.
    op: ([w, i]) => P.matmul(P.gelu(P.embedding(w, i)), w, { transB: true }),
    ref: ([w]) => matmulRef(mapRef(embeddingRef(w, 3, ids), geluRef), [6, 3], w, [4, 3], { transB: true }).data,
  });
});

test.serial('embedding: a 16-bit weight gets a gradient in its dtype', async (t) => {
  const w = P.tensor(randomArray(12, 51), [4, 3], { dtype: 'bfloat16' });
  w.requiresGrad = true;
  const ids = P.tensor(Int32Array.from([2, 0, 2]), [3], { dtype: 'int32' });
  P.tidy(() => P.embedding(w, ids).mul(P.tensor(new Float32Array([1, 2, 3]), [3], { dtype: 'bfloat16' })).sum(1).sum(0).backward());
  t.is(w.grad!.dtype, 'bfloat16');
  t.deepEqual(Array.from(await w.grad!.data()), [1, 2, 3, 0, 0, 0, 2, 4, 6, 0, 0, 0]);
  for (const v of [w, ids]) v.dispose();
});

const convCases: [string, Shape, Shape, [number, number], 'same' | 'valid' | [number, number, number, number]][] = [
  ['3x3 stride 1 same', [2, 5, 4, 2], [3, 3, 2, 3], [1, 1], 'same'],
  ['3x3 stride 2 same (odd size)', [1, 7, 6, 2], [3, 3, 2, 2], [2, 2], 'same'],
  ['7x7 stride 2, padding 3 (HF conv preprocessor)', [1, 9, 8, 3], [7, 7, 3, 2], [2, 2], [3, 3, 3, 3]],
  ['2x3 stride (2, 1) valid, rows left over', [1, 6, 5, 1], [2, 3, 1, 2], [2, 1], 'valid'],
  ['1x1 stride 2', [2, 5, 5, 3], [1, 1, 3, 4], [2, 2], 'valid'],
];
for (const [name, xs, ws, stride, padding] of convCases)
  test.serial(`conv2d ${name}: gradients to input, weight and bias`, async (t) => {
    await checkGrad(t, 'conv2d', {
      shapes: [xs, ws, [ws[3]]],
      op: ([x, w, b]) => P.conv2d(x, w, { bias: b, stride, padding }),
      ref: ([x, w, b]) => conv2dRef(x, xs, w, ws, { bias: b, stride, padding }).data,
    });
  });

for (const [name, xs, k, s, padding] of [
  ['3x3 stride 2 valid', [1, 7, 7, 2], [3, 3], [2, 2], 'valid'],
  ['3x3 stride 2 same', [2, 6, 5, 1], [3, 3], [2, 2], 'same'],
  ['2x2 stride 1', [1, 4, 4, 2], [2, 2], [1, 1], 'valid'],
] as [string, Shape, [number, number], [number, number], 'same' | 'valid'][])
  for (const kernels of [true, false])
  test.serial(`maxPool2d ${name}: the gradient goes to each window's maximum (${kernels ? 'training kernel' : 'composed'})`, async (t) => {
    P.gradKernels.enabled = kernels;
    t.teardown(() => (P.gradKernels.enabled = true));
    await checkGrad(t, 'maxPool2d', {
      shapes: [xs],
      op: ([x]) => P.maxPool2d(x, { kernel: k, stride: s, padding }),
      ref: ([x]) => maxPool2dRef(x, xs, k, s, padding).data,
    });
  });

test.serial('the training kernels: the backend reports them; 16-bit inputs on the cpu run through float32 and round once', async (t) => {
  t.true(native.hasBackwardKernels('cpu'));
  const x = P.tensor(randomArray(24, 31, -3, 3), [4, 6]);
  const g = P.tensor(randomArray(24, 32), [4, 6]);
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const [x16, g16] = [x.cast(dtype), g.cast(dtype)];
    const want = wrap(native.geluBackward(x16.cast('float32').handle, g16.cast('float32').handle, false)).cast(dtype);
    const got = wrap(native.geluBackward(x16.handle, g16.handle, false));
    t.is(got.dtype, dtype);
    t.deepEqual(Array.from(await got.cast('float32').data()), Array.from(await want.cast('float32').data()), dtype);
    const [gx, gw, gb] = native.layerNormBackward(x16.handle, null, g16.handle, 1e-5, false, false);
    t.is(wrap(gx).dtype, dtype);
    t.is(gw, null);
    t.is(gb, null);
  }
  t.throws(() => native.geluBackward(x.handle, g.cast('bfloat16').handle, false), { message: /gelu_backward: .*dtype/ });
});

test.serial('softmaxBackward: y (g - sum(g y)) per row against float64, written in the requested dtype; bad calls are clear errors', async (t) => {
  const rows = 5;
  for (const n of [1, 7, 64, 300]) {
    const logits = randomArray(rows * n, 40 + n, -4, 4);
    const y = P.softmax(P.tensor(logits, [rows, n]), -1);
    const g = P.tensor(randomArray(rows * n, 41 + n), [rows, n]);
    const [yv, gv] = [await y.data(), await g.data()];
    const want: number[] = [];
    for (let r = 0; r < rows; r++) {
      let dot = 0;
      for (let j = 0; j < n; j++) dot += gv[r * n + j] * yv[r * n + j];
      for (let j = 0; j < n; j++) want.push(yv[r * n + j] * (gv[r * n + j] - dot));
    }
    const scale = Math.max(...want.map(Math.abs), 1e-30);
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const gx = wrap(native.softmaxBackward(y.handle, g.handle, dtype));
      t.is(gx.dtype, dtype);
      t.deepEqual(gx.shape, [rows, n]);
      const got = await gx.cast('float32').data();
      const worst = Math.max(...want.map((w, i) => Math.abs(got[i] - w))) / scale;
      t.true(worst <= (dtype === 'float32' ? 1e-6 : 8e-3), `n=${n} ${dtype}: ${worst}`);
      gx.dispose();
    }
    for (const v of [y, g]) v.dispose();
  }
  const y = P.ones([2, 3]);
  const wrong = P.ones([3, 2]);
  const y16 = y.cast('bfloat16');
  t.throws(() => native.softmaxBackward(y.handle, wrong.handle, 'float32'), { instanceOf: RangeError, message: /softmax_backward: argument 'g' must have shape \[2, 3\]/ });
  t.throws(() => native.softmaxBackward(y.handle, y16.handle, 'float32'), { message: /softmax_backward: .*dtype/ });
  t.throws(() => native.softmaxBackward(y.handle, y.handle, 'int32'), { instanceOf: TypeError, message: /softmax_backward: argument 'dtype' must be a float dtype, got int32/ });
  for (const v of [y, wrong, y16]) v.dispose();
});

// ---- the tape ------------------------------------------------------------------------------

test.serial('gradients accumulate across backward calls until cleared; a leaf used twice gets both contributions', async (t) => {
  const x = P.tensor(new Float32Array([1, 2, 3]), [3]);
  x.requiresGrad = true;
  P.tidy(() => x.mul(x).sum(0).backward());
  t.deepEqual(Array.from(await x.grad!.data()), [2, 4, 6]);
  P.tidy(() => x.mul(3).sum(0).backward());
  t.deepEqual(Array.from(await x.grad!.data()), [5, 7, 9]);
  x.grad!.dispose();
  x.grad = null;
  P.tidy(() => x.sum(0).backward());
  t.deepEqual(Array.from(await x.grad!.data()), [1, 1, 1]);
  x.dispose();
});

test.serial('folds at the edges: a transposed batched operand used twice, a bias broadcast from [1, n], an empty inner dimension', async (t) => {
  // Operand a of two transA products: the second one's product takes the first's gradient.
  await checkGrad(t, 'transA twice', {
    shapes: [[2, 4, 3], [4, 5]],
    op: ([a, w]) => P.matmul(a, w, { transA: true }).add(P.matmul(a, w, { transA: true, alpha: 0.5 })),
    ref: ([a, w]) => matmulRef(a, [2, 4, 3], w, [4, 5], { transA: true }).data.map((v) => 1.5 * v),
  });
  // A [1, n] bias is not the leading-axes sum: nothing folds, the engine adds its parts.
  await checkGrad(t, 'broadcast bias thrice', {
    shapes: [[2, 3, 4], [1, 4]],
    op: ([x, c]) => P.add(P.square(P.add(x, c)), c).mul(P.add(x, c)),
    ref: ([x, c]) => {
      const xc = x.map((v, i) => v + c[i % 4]);
      return xc.map((v, i) => (v * v + c[i % 4]) * v);
    },
  });
  // K = 0: the products are zeros and the input's earlier gradient is empty.
  const x = P.zeros([2, 3, 0]);
  const w = P.zeros([0, 4]);
  for (const v of [x, w]) v.requiresGrad = true;
  const loss = P.tidy(() => P.add(P.matmul(x, w).sum(2), x.sum(2)).sum(1).sum(0));
  loss.backward({ retainGraph: true });
  loss.backward();
  t.deepEqual(x.grad!.shape, [2, 3, 0]);
  t.deepEqual(w.grad!.shape, [0, 4]);
  for (const v of [x, w, loss]) v.dispose();
});

/** The engine's own additions of gradient parts in a profiled backward. */
const backwardAdds = (p: P.Profile) => p.rows.filter((r) => r.op === 'add' && r.scope === 'backward').reduce((n, r) => n + r.calls, 0);

test.serial('shared weights, biases and residual branches: backward folds their sums into the products, column sums and layer norm gradients (no separate additions), across backward calls too', async (t) => {
  // Per use: a weight [4, 4], the product's bias [4], a bias added by broadcast [4] and a
  // layer norm's weight and bias [4].
  const make = () => [21, 24, 25, 26, 27].map((seed, i) => P.tensor(randomArray(i ? 4 : 16, seed), i ? [4] : [4, 4]));
  const shared = make();
  const apart = [make(), make(), make()];
  const w2 = P.tensor(randomArray(16, 22), [4, 4]);
  for (const v of [w2, ...shared, ...apart.flat()]) v.requiresGrad = true;
  const x = P.tensor(randomArray(24, 23), [2, 3, 4]);
  const loss = (uses: Tensor[][]) =>
    P.tidy(() => {
      let h = x;
      // A residual: h gets g first, then its product's part.
      for (const [w, b, c, lw, lb] of uses) h = P.matmul(P.layerNorm(h, lw, lb), w, { bias: b }).add(c).add(h);
      return P.matmul(P.reshape(h, [6, 4]), w2).square().sum(1).sum(0);
    });
  P.profiler.start();
  const l = loss([shared, shared, shared]);
  l.backward({ retainGraph: true });
  const p = P.profiler.stop();
  const engineAdds = backwardAdds(p);
  t.is(engineAdds, 0, 'every later contribution joined a product, a column sum or a layer norm gradient');
  const ref = loss(apart);
  ref.backward();
  const names = ['weight', 'bias', 'added bias', 'layer norm weight', 'layer norm bias'];
  const sums: Float64Array[] = [];
  for (let k = 0; k < names.length; k++) {
    const sum = new Float64Array(shared[k].size);
    for (const use of apart) (await use[k].grad!.data()).forEach((v, i) => (sum[i] += v));
    sums.push(sum);
    assertClose(t, await shared[k].grad!.data(), sum, { rtol: 1e-5, atol: 1e-6, msg: `d loss / d ${names[k]}: the three uses summed` });
  }
  // A second backward adds onto each leaf's .grad, folded as well.
  l.backward({ retainGraph: true });
  for (let k = 0; k < names.length; k++)
    assertClose(t, await shared[k].grad!.data(), sums[k].map((v) => 2 * v), { rtol: 1e-5, atol: 1e-6, msg: `${names[k]}: two backward calls` });
  // gradFold off: each contribution added on its own, the same gradients.
  P.gradFold.enabled = false;
  t.teardown(() => (P.gradFold.enabled = true));
  for (const v of shared) {
    v.grad!.dispose();
    v.grad = null;
  }
  P.profiler.start();
  l.backward();
  const unfolded = backwardAdds(P.profiler.stop());
  t.true(unfolded >= 2 * 5 + 3, `separate additions without folding: ${unfolded}`);
  for (let k = 0; k < names.length; k++)
    assertClose(t, await shared[k].grad!.data(), sums[k], { rtol: 1e-5, atol: 1e-6, msg: `${names[k]}: gradFold off` });
  for (const v of [w2, x, l, ref, ...shared, ...apart.flat()]) v.dispose();
});

test.serial('sum with an addend (the fold of a shared bias): one rounding, sum only, and the result\'s shape, dtype and device', async (t) => {
  const x = P.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
  const add = P.tensor(new Float32Array([10, 20]), [2]);
  const r = wrap(native.reduce('sum', x.handle, 0, false, add.handle));
  t.deepEqual(Array.from(await r.data()), [19, 32]);
  const rows = wrap(native.reduce('sum', x.handle, 1, true, P.tensor(new Float32Array([1, 1, 1]), [3, 1]).handle));
  t.deepEqual(Array.from(await rows.data()), [4, 8, 12]);
  // bfloat16: 256 + (1 + 1/256) rounds once to 258; in two roundings (1 + 1/256 -> 1,
  // then 256 + 1, each a tie to even) it would be 256.
  const xb = P.tensor(new Float32Array([1, 1 / 256]), [2, 1], { dtype: 'bfloat16' });
  const ab = P.tensor(new Float32Array([256]), [1], { dtype: 'bfloat16' });
  t.deepEqual(Array.from(await wrap(native.reduce('sum', xb.handle, 0, false, ab.handle)).data()), [258]);
  t.throws(() => native.reduce('mean', x.handle, 0, false, add.handle), { message: /mean: argument 'addend' is taken by sum only/ });
  t.throws(() => native.reduce('sum', x.handle, 1, false, add.handle), { instanceOf: RangeError, message: "sum: argument 'addend' must have shape [3], got [2]" });
  t.throws(() => native.reduce('sum', x.handle, 0, false, ab.handle), { instanceOf: TypeError, message: "sum: argument 'addend' has dtype bfloat16 but 'x' has float32; cast one first" });
  for (const v of [x, add, r, rows, xb, ab]) v.dispose();
});

test.serial('layerNormBackward with addends: each gradient plus its addend, refused where the addend does not fit', async (t) => {
  const x = P.tensor(randomArray(12, 41), [3, 4]);
  const w = P.tensor(randomArray(4, 42), [4]);
  const g = P.tensor(randomArray(12, 43), [3, 4]);
  const ax = P.tensor(randomArray(12, 44), [3, 4]);
  const aw = P.tensor(randomArray(4, 45), [4]);
  const ab = P.tensor(randomArray(4, 46), [4]);
  const plain = native.layerNormBackward(x.handle, w.handle, g.handle, 1e-5, true, true).map((h) => wrap(h!));
  const added = native.layerNormBackward(x.handle, w.handle, g.handle, 1e-5, true, true, ax.handle, aw.handle, ab.handle).map((h) => wrap(h!));
  for (const [i, a] of [ax, aw, ab].entries()) {
    const want = Float64Array.from(await plain[i].data(), (v, j) => v + (a.dataSync() as Float32Array)[j]);
    assertClose(t, await added[i].data(), want, { rtol: 1e-6, atol: 1e-6, msg: ['gx', 'gw', 'gb'][i] });
  }
  const call = (...adds: (Tensor | null)[]) => () => native.layerNormBackward(x.handle, w.handle, g.handle, 1e-5, true, false, ...adds.map((a) => a?.handle ?? null));
  t.throws(call(aw), { instanceOf: RangeError, message: "layer_norm_backward: argument 'gx_addend' must have shape [3, 4], got [4]" });
  t.throws(call(null, null, ab), { message: "layer_norm_backward: argument 'gb_addend' needs the bias's gradient" });
  const half = P.tensor(randomArray(4, 47), [4], { dtype: 'bfloat16' });
  t.throws(call(null, half), { instanceOf: TypeError, message: /layer_norm_backward: argument 'gw_addend' has dtype bfloat16/ });
  for (const v of [x, w, g, ax, aw, ab, half, ...plain, ...added]) v.dispose();
});

test.serial('noGrad records nothing; constants and integer tensors never require gradients', (t) => {
  const x = P.tensor(new Float32Array([1, 2]), [2]);
  x.requiresGrad = true;
  const y = P.noGrad(() => x.mul(2));
  t.is(y.gradFn, null);
  t.false(P.isGradEnabled() === false, 'restored after noGrad');
  const c = P.tensor(new Float32Array([1, 2]), [2]);
  const z = c.mul(2);
  t.is(z.gradFn, null, 'no graph without a leaf');
  t.throws(() => P.tidy(() => z.sum(0).backward()), { message: /does not require gradients/ });
  for (const v of [x, y, c, z]) v.dispose();
});

test.serial('backward: a non-scalar root needs a gradient of its shape; a used graph is refused unless retained', async (t) => {
  const x = P.tensor(new Float32Array([1, 2, 3]), [3]);
  x.requiresGrad = true;
  const y = x.mul(x);
  t.throws(() => y.backward(), { instanceOf: RangeError, message: /must be a scalar/ });
  const seed = P.tensor(new Float32Array([1, 0, 2]), [3]);
  y.backward({ gradient: seed, retainGraph: true });
  t.deepEqual(Array.from(await x.grad!.data()), [2, 0, 12]);
  t.false(seed.disposed, 'the caller keeps its gradient tensor');
  y.backward({ gradient: seed });
  t.deepEqual(Array.from(await x.grad!.data()), [4, 0, 24]);
  t.throws(() => y.backward({ gradient: seed }), { message: /already used by a backward/ });
  const bad = P.tensor(new Float32Array([1, 2]), [2]);
  t.throws(() => y.backward({ gradient: bad }), { instanceOf: RangeError, message: /root's shape \[3\]/ });
  const y2 = x.mul(x);
  const bf16 = P.tensor(new Float32Array([1, 0, 2]), [3], { dtype: 'bfloat16' });
  t.throws(() => y2.backward({ gradient: bf16 }), { instanceOf: TypeError, message: new RegExp(`option 'gradient' must be float32 on ${x.device} as the root is, got bfloat16 on ${bf16.device}`) });
  for (const v of [x, y, y2, seed, bad, bf16]) v.dispose();
});

test('gradients of broadcasts with an empty axis are empty, not an error', async (t) => {
  const a = P.zeros([3, 0]);
  const b = P.zeros([0]);
  for (const v of [a, b]) v.requiresGrad = true;
  P.tidy(() => P.backward(P.sum(P.sum(P.add(a, b), 1), 0)));
  t.deepEqual(a.grad!.shape, [3, 0]);
  t.deepEqual(b.grad!.shape, [0]);
  for (const v of [a, b]) v.dispose();
});

test.serial('intermediates disposed by tidy() do not break backward, and training leaves no tensors behind', async (t) => {
  const before = (await baseline()).tensors;
  const w = P.tensor(randomArray(12, 3), [4, 3]);
  w.requiresGrad = true;
  for (let step = 0; step < 20; step++) {
    const loss = P.tidy(() => {
      const x = P.tensor(randomArray(8, step), [2, 4]);
      const h = P.gelu(P.matmul(x, w)).softmax(-1);
      return P.layerNorm(h).square().sum(1).sum(0);
    });
    loss.backward();
    loss.dispose();
  }
  t.truthy(w.grad);
  t.true((await w.grad!.data()).every(Number.isFinite));
  w.dispose();
  t.is(live().tensors, before);
});

test.serial('Module.requiresGrad_ marks every parameter; loadStateDict keeps the flag; zeroGrad clears', async (t) => {
  const lin = new P.Linear(3, 2);
  lin.requiresGrad_();
  t.true(lin.parameters().every((p) => p.requiresGrad));
  const sd = { weight: P.tensor(randomArray(6, 1), [2, 3]), bias: P.tensor(randomArray(2, 2), [2]) };
  lin.loadStateDict(sd);
  t.true(lin.parameters().every((p) => p.requiresGrad), 'the loaded tensors are leaves too');
  const x = P.tensor(randomArray(6, 3), [2, 3]);
  P.tidy(() => lin.forward(x).sum(1).sum(0).backward());
  t.deepEqual(Array.from(await lin.bias!.grad!.data()), [2, 2]);
  lin.zeroGrad();
  t.true(lin.parameters().every((p) => p.grad === null));
  t.throws(() => lin.requiresGrad_('yes' as unknown as boolean), { instanceOf: TypeError, message: /'flag' must be a boolean/ });
  for (const v of [x, ...Object.values(sd)]) v.dispose();
  lin.dispose();
});

test('a tensor saved for a gradient and then written in place (assign, an optimizer step) makes backward throw instead of using the new values', async (t) => {
  const x = P.tensor(new Float32Array([1, 2]), [2]);
  const w = P.tensor(new Float32Array([3, 4]), [2]);
  x.requiresGrad = true;
  const y = P.tidy(() => x.mul(w).sum(0));
  P.assign(w, P.tensor(new Float32Array([100, 100]), [2]));
  t.throws(() => y.backward(), { message: /backward: a tensor that 'mul' saved for its gradient \(shape \[2\]\) was written in place \(assign\(\), an optimizer step\) after the forward read it/ });
  y.dispose();

  // A write through a view of the saved tensor counts; one into another tensor does not.
  const y2 = P.tidy(() => x.mul(w).sum(0));
  const other = P.zeros([2]);
  P.assign(other, w);
  y2.backward({ retainGraph: true });
  t.deepEqual(Array.from(await x.grad!.data()), [100, 100]);
  P.assign(P.slice(w, 0, 1), P.zeros([1]));
  t.throws(() => y2.backward(), { message: /written in place/ });

  // The usual order: backward, then the step, then the next forward.
  const p = P.tensor(new Float32Array([1, 2]), [2]);
  p.requiresGrad = true;
  const opt = new P.optim.SGD([p], { lr: 0.1 });
  for (let s = 0; s < 2; s++) {
    const loss = P.tidy(() => p.mul(p).sum(0));
    loss.backward();
    loss.dispose();
    opt.step();
    opt.zeroGrad();
  }
  // A step between a forward and its backward: refused.
  const loss = P.tidy(() => p.mul(p).sum(0));
  p.grad = P.ones([2]);
  opt.step();
  t.throws(() => loss.backward(), { message: /written in place/ });
  opt.zeroGrad();
  opt.dispose();
  for (const v of [x, w, y2, other, p, loss]) v.dispose();
});

test.serial('noGrad refuses an async fn, whose code after an await would record gradients again; the setting is restored', async (t) => {
  const x = P.tensor([1, 2]);
  x.requiresGrad = true;
  let inside: boolean | undefined;
  t.throws(
    () =>
      P.noGrad(async () => {
        inside = P.isGradEnabled();
        await null;
        throw new Error('rejected after the call returned');
      }),
    { instanceOf: TypeError, message: /^noGrad: argument 'fn' must be synchronous; it returned a Promise/ },
  );
  t.is(inside, false, 'its synchronous part ran under noGrad');
  t.true(P.isGradEnabled());
  // Its rejection was handled: an unhandled one would fail this test run.
  await new Promise((r) => setTimeout(r, 10));
  const y = P.noGrad(() => x.mul(2));
  t.is(y.gradFn, null, 'synchronous fns are unchanged');
  for (const v of [x, y]) v.dispose();
});

test.serial('a leaf whose requiresGrad was cleared after the forward takes no gradient, as torch\'s AccumulateGrad (its .grad stays as it was, folded or not)', async (t) => {
  for (const fold of [true, false]) {
    P.gradFold.enabled = fold;
    try {
      const x = P.tensor([1, 2]);
      const w = P.tensor([3, 4]);
      x.requiresGrad = w.requiresGrad = true;
      const y = P.tidy(() => x.mul(w).sum(0));
      x.requiresGrad = false;
      y.backward();
      t.is(x.grad, null, `fold ${fold}`);
      t.deepEqual(Array.from(await w.grad!.data()), [1, 2]);
      // A .grad already there is neither summed into nor taken as a product's addend.
      const a = P.tensor([1, 2, 3, 4], [2, 2]);
      const b = P.tensor([1, 0, 0, 1], [2, 2]);
      a.requiresGrad = b.requiresGrad = true;
      a.grad = P.full([2, 2], 5);
      const z = P.matmul(a, b);
      a.requiresGrad = false;
      z.backward({ gradient: P.ones([2, 2]) });
      t.deepEqual(Array.from(await a.grad!.data()), [5, 5, 5, 5], `fold ${fold}`);
      t.deepEqual(Array.from(await b.grad!.data()), [4, 4, 6, 6]);
      for (const v of [x, w, y, a, b, z]) v.dispose();
    } finally {
      P.gradFold.enabled = true;
    }
  }
});

test('backward refuses a leaf whose .grad was disposed by hand, before summing any gradient', (t) => {
  const a = P.tensor([1, 2]);
  const b = P.tensor([3, 4]);
  a.requiresGrad = b.requiresGrad = true;
  const loss = P.tidy(() => a.mul(b).sum(0));
  const stale = P.ones([2]);
  a.grad = stale;
  stale.dispose();
  t.throws(() => loss.backward({ retainGraph: true }), { message: /^backward: the \.grad of a leaf of shape \[2\] is a disposed Tensor; set \.grad = null/ });
  t.is(b.grad, null, "the other leaf's gradient was not touched");
  a.grad = null;
  loss.backward();
  t.deepEqual(Array.from(a.grad!.dataSync()), [3, 4]);
  for (const v of [a, b, loss]) v.dispose();
});

test('the gradient of embedding with ids known to be out of range is refused by backward naming embedding and ids, not one_hot', (t) => {
  const w = P.tensor(randomArray(6, 3), [3, 2]);
  const bias = P.tensor([0.5, -0.5]);
  w.requiresGrad = bias.requiresGrad = true;
  for (const ids of [P.tensor([0, 3], [2], { dtype: 'int32' }), P.tensor([-1, 2], [2], { dtype: 'int32' })]) {
    const loss = P.tidy(() => P.embedding(w, ids).add(bias).sum(1).sum(0));
    t.throws(() => loss.backward(), { instanceOf: RangeError, message: /^backward: the gradient of embedding needs argument 'ids' in \[0, 3\) \(the rows of 'weight'\), got ids from -?\d+ to \d+$/ });
    t.is(bias.grad, null, 'refused before any gradient was summed');
    loss.dispose();
    ids.dispose();
  }
  // Good ids, and ids whose range is not known on the host, run as before.
  const good = P.tensor([2, 0], [2], { dtype: 'int32' });
  const loss = P.tidy(() => P.embedding(w, good).sum(1).sum(0));
  loss.backward();
  t.deepEqual(Array.from(w.grad!.dataSync()), [1, 1, 0, 0, 1, 1]);
  for (const v of [w, bias, good, loss]) v.dispose();
});

test('clipGradNorm scales each gradient once where the backward handed two leaves one buffer (add\'s operands), and leaves the caller\'s seed alone', async (t) => {
  const a = P.tensor([3, 4]);
  const b = P.tensor([1, 1]);
  a.requiresGrad = b.requiresGrad = true;
  P.tidy(() => {
    const s = P.add(a, b);
    P.backward(P.sum(P.mul(s, s), 0));
  });
  // Both [8, 10]: global norm sqrt(2 * 164) = 18.1; clipped to 1 each becomes [0.442, 0.552].
  P.optim.clipGradNorm([a, b], 1);
  for (const [name, x] of [['a', a], ['b', b]] as const)
    assertClose(t, await x.grad!.data(), [8 / Math.sqrt(328), 10 / Math.sqrt(328)], { rtol: 1e-5, atol: 0, msg: name });
  // GradScaler.unscale divides each once as well ([8, 10] x 1024, back to [8, 10]).
  a.grad = b.grad = null;
  P.tidy(() => {
    const s = P.add(a, b);
    P.backward(P.sum(P.mul(s, s), 0).mul(1024));
  });
  t.true(await new P.optim.GradScaler({ initScale: 1024 }).unscale([a, b]));
  for (const [name, x] of [['a', a], ['b', b]] as const) assertClose(t, await x.grad!.data(), [8, 10], { rtol: 1e-6, atol: 0, msg: `unscaled ${name}` });
  const w = P.tensor([1, 2]);
  w.requiresGrad = true;
  const seed = P.tensor([1, 1]);
  P.backward(w, { gradient: seed });
  P.optim.clipGradNorm([w], 0.5);
  t.deepEqual(Array.from(await seed.data()), [1, 1], 'the seed is the caller\'s, untouched');
  for (const x of [a, b, w, seed]) x.dispose();
});

test('maximum, minimum and pow take torch\'s gradients where the formula has a choice: ties split in halves, NaN to both; pow\'s d/dx 0 at y = 0, d/dy 0 at x = 0 with y >= 0', async (t) => {
  const grads = (f: (a: Tensor, b: Tensor) => Tensor, xs: number[], ys: number[]) => {
    const a = P.tensor(xs);
    const b = P.tensor(ys);
    a.requiresGrad = b.requiresGrad = true;
    P.tidy(() => P.backward(P.sum(f(a, b), 0)));
    const out = [Array.from(a.grad!.dataSync()), Array.from(b.grad!.dataSync())];
    a.dispose();
    b.dispose();
    return out;
  };
  t.deepEqual(grads(P.maximum, [1, 2, 3], [1, 0, 3]), [[0.5, 1, 0.5], [0.5, 0, 0.5]]);
  t.deepEqual(grads(P.minimum, [1, 2, NaN], [1, 5, 3]), [[0.5, 1, 1], [0.5, 0, 1]]);
  const [dx, dy] = grads(P.pow, [0, 0, 2], [0, 2, 3]);
  t.deepEqual(dx, [0, 0, 12], 'd/dx: 0 where y = 0 (not 0 x 0^-1 = NaN)');
  t.deepEqual(dy.slice(0, 2), [0, 0], 'd/dy: 0 where x = 0 and y >= 0');
  assertClose(t, dy.slice(2), [8 * Math.log(2)], { rtol: 1e-6, atol: 0 });
});

test('maxPool2d: a window holding NaN outputs NaN and sends its gradient to the NaN (the last, if several), as torch does, not to the largest finite element', async (t) => {
  // NHWC [1, 2, 2, 1], one 2x2 window.
  for (const [xs, want] of [
    [[1, NaN, 5, 2], [0, 1, 0, 0]],
    [[NaN, 3, NaN, 2], [0, 0, 1, 0]],
  ] as const) {
    const x = P.tensor([...xs], [1, 2, 2, 1]);
    x.requiresGrad = true;
    const y = P.tidy(() => {
      const out = P.maxPool2d(x, { kernel: 2 });
      P.backward(P.reshape(out, [1]).sum(0));
      return P.keep(out);
    });
    t.true(Number.isNaN((await y.data())[0]));
    t.deepEqual(Array.from(await x.grad!.data()), [...want], String(xs));
    y.dispose();
    x.dispose();
  }
});

test('div, relu, gelu and maxPool2d take torch\'s gradients at edge values: d(x/y)/dy 0 at x = 0 for a tiny y; relu passes g at NaN; 16-bit gelu and a 16-bit NaN window as in float32', async (t) => {
  const grad = (f: (x: Tensor) => Tensor, x: Tensor, seed = P.ones(x.shape, { dtype: x.dtype })) => {
    x.requiresGrad = true;
    P.tidy(() => P.backward(f(x), { gradient: seed }));
    const g = Array.from(x.grad!.dataSync());
    x.dispose();
    seed.dispose();
    return g;
  };
  const zero = P.tensor([0, 1]);
  // torch: -g (x / y) / y = -0 where x = 0 (not (g / y) (x / y) = inf x 0).
  t.deepEqual(grad((y) => P.div(zero, y), P.tensor([1e-40, 1e-20])), [-0, -Infinity]);
  zero.dispose();
  t.deepEqual(grad((x) => P.relu(x), P.tensor([NaN, 1, 0, -1])), [1, 1, 0, 0], 'threshold_backward: 0 where x <= 0');
  for (const dtype of ['float16', 'bfloat16'] as const) {
    // Phi(x) ~ 1/2 at tiny x (float16 subnormals), 1 and 0 far out for the tanh form.
    const xs = [3e-7, 1e-7, 2e-5, 800, -800];
    for (const approximate of ['none', 'tanh'] as const) {
      const g = grad((x) => P.gelu(x, { approximate }), P.cast(P.tensor(xs), dtype));
      assertClose(t, g, [0.5, 0.5, 0.5, 1, 0], { rtol: 0, atol: 1e-3, msg: `${dtype} ${approximate}` });
    }
    const pooled = grad((x) => P.maxPool2d(x, { kernel: 2 }), P.cast(P.tensor([1, NaN, 5, 2], [1, 2, 2, 1]), dtype), P.ones([1, 1, 1, 1], { dtype }));
    t.deepEqual(pooled, [0, 1, 0, 0], `${dtype} max_pool2d NaN window`);
  }
});

test.serial('.grad never shares memory with the seed or another leaf\'s .grad (as torch), so writing one changes nothing else', async (t) => {
  for (const fold of [true, false]) {
    P.gradFold.enabled = fold;
    try {
      const a = P.tensor([3, 4]);
      const b = P.tensor([1, 1]);
      a.requiresGrad = b.requiresGrad = true;
      const seed = P.tensor([1, 2]);
      P.add(a, b).backward({ gradient: seed }); // add passes the seed through to both
      P.assign(a.grad!, P.zeros([2]));
      t.deepEqual(Array.from(await b.grad!.data()), [1, 2], `fold ${fold}: b.grad`);
      t.deepEqual(Array.from(await seed.data()), [1, 2], `fold ${fold}: the seed`);
      // A leaf as the root takes the seed itself as its gradient.
      const u = P.tensor([1, 2]);
      u.requiresGrad = true;
      const s = P.tensor([7, 8]);
      P.backward(u, { gradient: s });
      P.assign(s, P.zeros([2]));
      t.deepEqual(Array.from(await u.grad!.data()), [7, 8], `fold ${fold}: u.grad`);
      for (const v of [a, b, seed, u, s]) v.dispose();
    } finally {
      P.gradFold.enabled = true;
    }
  }
});

test.serial('backward copies no .grad whose storage id was only that of a .grad it has since replaced (ids are addresses, reused once freed)', (t) => {
  // Each weight is used twice, so its .grad is replaced by a sum in the pass and the old
  // one freed; the allocator then hands its address to a later leaf's new gradient.
  // Nothing is shared there: a copy would be pure cost (it happened in about half the
  // passes, 11 copies in a step of the image_fourier case).
  const assign = native.assign;
  let copies = 0;
  native.assign = (...args: Parameters<typeof assign>) => {
    copies++;
    return assign(...args);
  };
  try {
    for (const fold of [true, false]) {
      P.gradFold.enabled = fold;
      for (let trial = 0; trial < 20; trial++) {
        const ws = Array.from({ length: 8 }, () => {
          const w = P.tensor([1, 2, 3, 4]);
          w.requiresGrad = true;
          return w;
        });
        const loss = P.tidy(() => {
          let h = P.ones([4]);
          for (const w of ws) h = h.mul(w).add(w);
          return h.sum(0);
        });
        loss.backward();
        for (const v of [...ws, loss]) {
          v.grad?.dispose();
          v.dispose();
        }
      }
    }
  } finally {
    native.assign = assign;
    P.gradFold.enabled = true;
  }
  t.is(copies, 0);
});
