// lib/optim: each update rule against a plain-JS float64 rendering of its definition
// over several steps, clipping, schedules, weight-decay groups, and state that resumes
// exactly.
import test from 'ava';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { assertClose, randomArray } from './helpers/reference.js';

const { SGD, AdamW, LAMB, clipGradNorm, constantCosine, warmupCosine, stepDecay, scaleLearningRate, decayGroups, exemptFromDecay } = P.optim;

/** Runs `steps` updates with fixed per-step gradients; returns the final parameter values. */
async function run(make: (ps: Tensor[]) => P.optim.Optimizer, init: Float32Array[], grads: Float32Array[][]): Promise<Float32Array[]> {
  const ps = init.map((v) => P.tensor(v, [v.length]));
  const opt = make(ps);
  for (const gs of grads) {
    ps.forEach((p, i) => {
      p.grad?.dispose();
      p.grad = P.tensor(gs[i], [gs[i].length]);
    });
    opt.step();
  }
  const out = await Promise.all(ps.map(async (p) => (await p.data()) as Float32Array));
  opt.zeroGrad();
  opt.dispose();
  for (const p of ps) p.dispose();
  return out;
}

const init = [randomArray(6, 1), new Float32Array(4)]; // the second starts at 0 (LAMB's trust ratio 1)
const grads = [0, 1, 2].map((s) => [randomArray(6, 10 + s), randomArray(4, 20 + s)]);

test('SGD with momentum, Nesterov and decoupled weight decay follows its definition', async (t) => {
  for (const nesterov of [false, true]) {
    const [lr, m, wd] = [0.1, 0.9, 0.01];
    const got = await run((ps) => new SGD(ps, { lr, momentum: m, nesterov, weightDecay: wd }), init, grads);
    init.forEach((p0, k) => {
      const p = Float64Array.from(p0);
      const buf = new Float64Array(p.length);
      for (const gs of grads)
        for (let i = 0; i < p.length; i++) {
          const g = gs[k][i];
          buf[i] = m * buf[i] + g;
          const d = nesterov ? g + m * buf[i] : buf[i];
          p[i] = p[i] - lr * d - lr * wd * p[i];
        }
      assertClose(t, got[k], p, { rtol: 1e-6, atol: 1e-7, msg: `nesterov=${nesterov} param ${k}` });
    });
  }
});

function adamRef(p0: Float32Array, gs: Float32Array[], o: { lr: number; b1: number; b2: number; eps: number; wd: number; lamb: boolean }): Float64Array {
  const p = Float64Array.from(p0);
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  gs.forEach((g, s) => {
    const t = s + 1;
    const u = new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) {
      m[i] = o.b1 * m[i] + (1 - o.b1) * g[i];
      v[i] = o.b2 * v[i] + (1 - o.b2) * g[i] * g[i];
      u[i] = m[i] / (1 - o.b1 ** t) / (Math.sqrt(v[i] / (1 - o.b2 ** t)) + o.eps) + o.wd * p[i];
    }
    let trust = 1;
    if (o.lamb) {
      const pn = Math.hypot(...p);
      const un = Math.hypot(...u);
      trust = pn > 0 && un > 0 ? pn / un : 1;
    }
    for (let i = 0; i < p.length; i++) p[i] -= o.lr * trust * u[i];
  });
  return p;
}

test('AdamW: bias-corrected moments, eps outside the root, decoupled weight decay', async (t) => {
  const o = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05, lamb: false };
  const got = await run((ps) => new AdamW(ps, { lr: o.lr, weightDecay: o.wd }), init, grads);
  init.forEach((p0, k) => assertClose(t, got[k], adamRef(p0, grads.map((g) => g[k]), o), { rtol: 1e-5, atol: 1e-7, msg: `param ${k}` }));
});

test("LAMB (the reference's b1 0.9, b2 0.999, eps 1e-6): AdamW's direction scaled by ||p|| / ||u||, 1 for a zero parameter", async (t) => {
  const o = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-6, wd: 0.1, lamb: true };
  const got = await run((ps) => new LAMB(ps, { lr: o.lr, weightDecay: o.wd }), init, grads);
  init.forEach((p0, k) => assertClose(t, got[k], adamRef(p0, grads.map((g) => g[k]), o), { rtol: 1e-5, atol: 1e-7, msg: `param ${k}` }));
});

test('stateDict round trip: resuming from a saved state gives the same parameters as an uninterrupted run', async (t) => {
  const full = await run((ps) => new LAMB(ps, { lr: 0.01, weightDecay: 0.1 }), init, grads);
  const ps = init.map((v) => P.tensor(v, [v.length]));
  const first = new LAMB(ps, { lr: 0.01, weightDecay: 0.1 });
  const setGrads = (gs: Float32Array[]) =>
    ps.forEach((p, i) => {
      p.grad?.dispose();
      p.grad = P.tensor(gs[i], [gs[i].length]);
    });
  setGrads(grads[0]);
  first.step();
  const sd = first.stateDict();
  const saved = Object.fromEntries(await Promise.all(Object.entries(sd.tensors).map(async ([k, v]) => [k, P.tensor(await v.data(), [...v.shape])] as const)));
  first.dispose();
  const second = new LAMB(ps, { lr: 0.01, weightDecay: 0.1 });
  second.loadStateDict({ tensors: saved, stepCount: sd.stepCount, groups: sd.groups });
  for (const v of Object.values(saved)) v.dispose();
  for (const gs of grads.slice(1)) {
    setGrads(gs);
    second.step();
  }
  for (let k = 0; k < ps.length; k++) t.deepEqual(Array.from(await ps[k].data()), Array.from(full[k]), `param ${k}`);
  second.zeroGrad();
  second.dispose();
  for (const p of ps) p.dispose();
});

test('clipGradNorm scales every gradient by maxNorm / global norm when above it, and returns the norm', async (t) => {
  const a = P.tensor(new Float32Array([3, 0]), [2]);
  const b = P.tensor(new Float32Array([0, 4]), [2]);
  a.grad = P.tensor(new Float32Array([3, 0]), [2]);
  b.grad = P.tensor(new Float32Array([0, 4]), [2]);
  const n = clipGradNorm([a, b], 1);
  t.is((await n.data())[0], 5);
  assertClose(t, await a.grad.data(), [0.6, 0], { rtol: 1e-6, atol: 1e-7 });
  assertClose(t, await b.grad.data(), [0, 0.8], { rtol: 1e-6, atol: 1e-7 });
  const m = clipGradNorm([a, b], 10);
  assertClose(t, await a.grad.data(), [0.6, 0], { rtol: 1e-6, atol: 1e-7, msg: 'below the bound: unchanged' });
  t.throws(() => clipGradNorm([a], -1), { instanceOf: RangeError, message: /'maxNorm' must be a positive number/ });
  const c = P.tensor(new Float32Array(2), [2]);
  t.throws(() => clipGradNorm([c], 1), { message: /none of the 1 parameters has a gradient/ });
  for (const v of [a, b, c, n, m]) v.dispose();
});

test('clipGradNorm and norm sum half-precision gradients in float32: no overflow to Infinity (float16), no sum stuck at 256 (bfloat16)', async (t) => {
  // 1000 gradients of 1: the global norm is sqrt(1000). In bfloat16 the running sum of
  // squares stopped at 256 (an 8-bit significand), giving 16.
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const ps = Array.from({ length: 1000 }, () => {
      const p = P.ones([1]).cast(dtype);
      p.grad = P.ones([1]).cast(dtype);
      return p;
    });
    const n = clipGradNorm(ps, 1e9);
    t.true(Math.abs((await n.data())[0] - Math.sqrt(1000)) < 1e-4, `${dtype}: ${(await n.data())[0]}`);
    for (const p of ps) p.dispose();
    n.dispose();
  }
  // float16 gradients of 300: each square (90,000) is past float16's 65,504, so the norm
  // was Infinity and the clip factor 0 zeroed every gradient.
  const p = P.ones([4]).cast('float16');
  p.grad = P.ones([4]).mul(300).cast('float16');
  const whole = P.optim.norm(p.grad);
  t.is((await whole.data())[0], 600);
  t.is(whole.dtype, 'float32');
  const n = clipGradNorm([p], 1);
  t.is((await n.data())[0], 600);
  t.is(p.grad.dtype, 'float16');
  t.deepEqual(Array.from(await p.grad.data()), [0.5, 0.5, 0.5, 0.5]);
  for (const v of [p, whole, n]) v.dispose();
});

test('warm-up then cosine: the decay starts at the peak once the warm-up ends, with no drop (as optax and HF); without warm-up, the reference\'s constant_cosine as before', (t) => {
  const w = warmupCosine({ lr: 1, totalSteps: 200, warmupSteps: 100 });
  // Timed from step 0, the cosine was already half way down when the warm-up ended: 1.0, then 0.5.
  t.deepEqual([98, 99, 100].map(w), [0.99, 1, 1]);
  t.true(Math.abs(w(150) - 0.5) < 1e-12, 'half way down the 100 decay steps');
  t.true(Math.abs(w(200)) < 1e-12);
  for (let s = 100; s < 200; s++) t.true(w(s + 1) <= w(s) && w(s) - w(s + 1) < 0.016, `step ${s}: ${w(s)} -> ${w(s + 1)}`);
  // A warm-up outlasting the constant part: the cosine starts where the warm-up ends.
  const c = constantCosine({ lr: 1, totalSteps: 200, constantFraction: 0.1, warmupSteps: 100 });
  t.deepEqual([99, 100].map(c), [1, 1]);
  t.true(Math.abs(c(150) - 0.5) < 1e-12);
  // A warm-up inside the constant part changes nothing after it.
  const r = constantCosine({ lr: 1, totalSteps: 100, constantFraction: 0.5, warmupSteps: 10 });
  t.deepEqual([9, 10, 49, 50].map(r), [1, 1, 1, 1]);
  t.true(Math.abs(r(75) - 0.5) < 1e-12);
});

test("schedules: constant_cosine (the reference's), warm-up cosine, step decay, batch / 256 scaling", (t) => {
  const s = constantCosine({ lr: 1, totalSteps: 100, constantFraction: 0.5, endValue: 0.1 });
  t.is(s(0), 1);
  t.is(s(49), 1);
  t.is(s(50), 1);
  t.true(Math.abs(s(75) - (0.1 + 0.45)) < 1e-12, 'half way down the cosine');
  t.true(Math.abs(s(100) - 0.1) < 1e-12);
  const w = warmupCosine({ lr: 2, totalSteps: 10, warmupSteps: 4 });
  t.deepEqual([0, 1, 2, 3].map(w), [0.5, 1, 1.5, 2]);
  t.true(Math.abs(w(10)) < 1e-12);
  const d = stepDecay({ lr: 1, boundaries: [10, 20], factor: 0.5 });
  t.deepEqual([0, 9, 10, 19, 20, 99].map(d), [1, 1, 0.5, 0.5, 0.25, 0.25]);
  t.is(scaleLearningRate(0.002, 1024), 0.008);
  t.throws(() => constantCosine({ lr: 1, totalSteps: 0 }), { instanceOf: RangeError, message: /'totalSteps' must be a positive integer/ });
  t.throws(() => s(-1), { instanceOf: RangeError, message: /step must be an integer >= 0/ });
  t.throws(() => stepDecay({ lr: 1, boundaries: [5, 3] }), { instanceOf: RangeError, message: /increasing/ });
});

test('decay groups exempt biases, normalisation parameters and (by default) what the reference names pos_embs', (t) => {
  t.true(exemptFromDecay('perceiver.encoder.cross_attention.attention.self.query.bias'));
  t.true(exemptFromDecay('perceiver.encoder.cross_attention.attention.self.layernorm1.weight'));
  t.true(exemptFromDecay('perceiver.encoder.self_attends.0.layernorm.weight'));
  t.true(exemptFromDecay('perceiver.input_preprocessor.convnet.batchnorm.weight'));
  t.true(exemptFromDecay('perceiver.input_preprocessor.position_embeddings.weight'));
  t.false(exemptFromDecay('perceiver.input_preprocessor.position_embeddings.weight', true));
  t.false(exemptFromDecay('perceiver.encoder.self_attends.0.attention.self.query.weight'));
  // The reference's pos_embs: its latent array, multimodal padding and mask tokens too.
  for (const name of ['perceiver.embeddings.latents', 'perceiver.input_preprocessor.padding.audio', 'perceiver.input_preprocessor.mask.image', 'perceiver.decoder.padding.label', 'perceiver.decoder.decoder.output_position_encodings.position_embeddings']) {
    t.true(exemptFromDecay(name), name);
    t.false(exemptFromDecay(name, true), `${name}, decayPositionEmbeddings`);
  }
  t.false(exemptFromDecay('perceiver.input_preprocessor.embeddings.weight'), 'token embeddings are decayed');
  const lin = new P.Linear(3, 2);
  const groups = decayGroups(lin, { weightDecay: 0.1 });
  t.deepEqual(groups.map((g) => [g.names, g.weightDecay]), [[['weight'], 0.1], [['bias'], 0]]);
  lin.dispose();
});

test('optimizers validate their arguments', (t) => {
  const p = P.tensor(new Float32Array(2), [2]);
  t.throws(() => new SGD([], { lr: 0.1 }), { instanceOf: TypeError, message: /'params' must be a non-empty array/ });
  t.throws(() => new SGD([p], { lr: -1 }), { instanceOf: RangeError, message: /'lr' must be a finite number >= 0, got number -1/ });
  t.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), { instanceOf: RangeError, message: /nesterov/ });
  t.throws(() => new AdamW([p], { lr: 0.1, beta1: 1 }), { instanceOf: RangeError, message: /'beta1' must be in \[0, 1\)/ });
  t.throws(() => new AdamW([p, p], { lr: 0.1 }), { message: /appears twice/ });
  t.throws(() => new LAMB([p], { lr: 0.1, eps: 0 }), { instanceOf: RangeError, message: /'eps' must be a positive number/ });
  const i = P.tensor(Int32Array.from([1]), [1]);
  t.throws(() => new AdamW([i], { lr: 0.1 }), { instanceOf: TypeError, message: /must be float32/ });
  const opt = new AdamW([p], { lr: 0.1 });
  t.throws(() => opt.loadStateDict({ tensors: { 'p0.0.bogus': p }, stepCount: 1 }), { message: /unexpected 'p0.0.bogus'/ });
  opt.dispose();
  t.throws(() => opt.step(), { message: /step\(\) after dispose/ });
  for (const v of [p, i]) v.dispose();
});

test("Adam's bias correction counts each parameter's own updates (torch's state['step']): a parameter first updated at step 3 moves as on a fresh optimizer's first step; steps round-trip", async (t) => {
  const late = () => P.tensor(new Float32Array([1, -2, 3]), [3]);
  const grad = new Float32Array([0.5, 0.25, -1]);
  const early = P.tensor(new Float32Array([1]), [1]);
  const p = late();
  const opt = new AdamW([early, p], { lr: 0.1 });
  for (let s = 0; s < 2; s++) {
    early.grad?.dispose();
    early.grad = P.tensor(new Float32Array([1]), [1]);
    opt.step(); // p has no gradient yet: skipped
  }
  p.grad = P.tensor(grad, [3]);
  opt.step();
  const q = late();
  const fresh = new AdamW([q], { lr: 0.1 });
  q.grad = P.tensor(grad, [3]);
  fresh.step();
  t.deepEqual(Array.from(await p.data()), Array.from(await q.data()));
  const sd = opt.stateDict();
  t.deepEqual([sd.stepCount, sd.steps], [3, { 'p0.0': 3, 'p0.1': 1 }]);

  // A state saved before per-parameter steps were kept: each counts the optimizer's.
  const again = new AdamW([early, p], { lr: 0.1 });
  again.loadStateDict({ tensors: sd.tensors, stepCount: 3 });
  t.deepEqual(again.stateDict().steps, { 'p0.0': 3, 'p0.1': 3 });
  again.loadStateDict(sd);
  t.deepEqual(again.stateDict().steps, { 'p0.0': 3, 'p0.1': 1 });
  t.throws(() => again.loadStateDict({ ...sd, steps: { 'p0.1': 4 } }), { message: /steps: 'p0.1' must be an integer in \[0, 3\], got number 4/ });
  t.throws(() => again.loadStateDict({ ...sd, steps: { nope: 1 } }), { message: /steps: unexpected 'nope'/ });
  for (const o of [opt, fresh, again]) {
    o.zeroGrad();
    o.dispose();
  }
  for (const v of [early, p, q]) v.dispose();
});

test('assign writes in queue order and refuses shape, device and broadcast mistakes', async (t) => {
  const dst = P.tensor(new Float32Array([1, 2, 3]), [3]);
  const before = dst.mul(10);
  P.assign(dst, P.tensor(Int32Array.from([7, 8, 9]), [3]));
  const after = dst.mul(10);
  t.deepEqual(Array.from(await before.data()), [10, 20, 30], 'ops queued before read the old values');
  t.deepEqual(Array.from(await after.data()), [70, 80, 90], 'ops queued after read the new ones (int32 converted)');
  t.throws(() => P.assign(dst, P.zeros([2])), { instanceOf: RangeError, message: /assign: argument 'src' must have dst's shape \[3\], got \[2\]/ });
  const b = P.broadcastTo(P.zeros([1]), [3]);
  t.throws(() => P.assign(b, dst), { message: /broadcast view/ });
  for (const v of [dst, before, after, b]) v.dispose();
});

test('assign from a view of its own destination reads the old values: a transpose, shifted slices both ways, itself', async (t) => {
  const x = P.tensor(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), [3, 3]);
  P.assign(x, P.transpose(x));
  t.deepEqual(Array.from(await x.data()), [1, 4, 7, 2, 5, 8, 3, 6, 9]);
  const y = P.arange(0, 8);
  P.assign(P.slice(y, 0, 1), P.slice(y, 0, 0, 7)); // shift right
  t.deepEqual(Array.from(await y.data()), [0, 0, 1, 2, 3, 4, 5, 6]);
  P.assign(P.slice(y, 0, 0, 7), P.slice(y, 0, 1)); // shift left
  t.deepEqual(Array.from(await y.data()), [0, 1, 2, 3, 4, 5, 6, 6]);
  P.assign(P.slice(y, 0, 0, 8, 2), P.slice(y, 0, 1, 8, 2)); // odd elements onto the even ones
  t.deepEqual(Array.from(await y.data()), [1, 1, 3, 3, 5, 5, 6, 6]);
  P.assign(y, y);
  t.deepEqual(Array.from(await y.data()), [1, 1, 3, 3, 5, 5, 6, 6]);
  for (const v of [x, y]) v.dispose();
});

test('an optimizer made before loadStateDict replaced the parameters says so instead of training nothing', (t) => {
  const lin = new P.Linear(2, 2);
  const opt = new AdamW(lin.parameters(), { lr: 0.1 });
  const sd = { weight: P.zeros([2, 2]), bias: P.zeros([2]) };
  lin.loadStateDict(sd);
  t.throws(() => opt.step(), { message: /was disposed \(replaced by loadStateDict\?\); create the optimizer after loading weights/ });
  opt.dispose();
  for (const v of Object.values(sd)) v.dispose();
  lin.dispose();
});

// ---- GradScaler (float16 loss scaling) ---------------------------------------------------

test('GradScaler: scaleLoss multiplies by the scale; unscale divides every gradient back and reports finiteness', async (t) => {
  const s = new P.optim.GradScaler({ initScale: 1024 });
  const loss = P.tensor([0.5]);
  const scaled = s.scaleLoss(loss);
  t.deepEqual(Array.from(await scaled.data()), [512]);
  const a = P.tensor([1, 2, 3]);
  const b = P.tensor([4]);
  a.grad = P.tensor([1024, -2048, 512]);
  b.grad = P.tensor([3072]);
  t.true(await s.unscale([a, b]));
  t.deepEqual(Array.from(await a.grad.data()), [1, -2, 0.5]);
  t.deepEqual(Array.from(await b.grad.data()), [3]);
  b.grad.dispose();
  b.grad = P.tensor([Infinity]);
  t.false(await s.unscale([a, b]), 'an inf gradient');
  b.grad.dispose();
  b.grad = P.tensor([NaN]);
  t.false(await s.unscale([a, b]), 'a NaN gradient');
  t.true(await s.unscale([P.tensor([1])]), 'no gradients at all: nothing to skip');
  for (const x of [loss, scaled, a, b]) {
    x.grad?.dispose();
    x.dispose();
  }
});

test('GradScaler: the scale backs off after an overflow and grows after growthInterval finite steps; its state round-trips', (t) => {
  const s = new P.optim.GradScaler({ initScale: 256, growthInterval: 3 });
  s.update(false);
  t.is(s.scale, 128);
  s.update(true);
  s.update(true);
  t.is(s.scale, 128, 'two finite steps: not yet');
  const mid = s.stateDict();
  t.deepEqual(mid, { scale: 128, growthTracker: 2 });
  s.update(true);
  t.is(s.scale, 256, 'the third doubles it');
  const r = new P.optim.GradScaler({ growthInterval: 3 });
  r.loadStateDict(mid);
  r.update(true);
  t.is(r.scale, 256, 'a restored scaler continues where it was');
  s.update(true);
  s.update(false);
  s.update(true);
  s.update(true);
  t.is(s.scale, 128, 'an overflow resets the count of finite steps');
});

test('GradScaler validates its options and arguments', async (t) => {
  t.throws(() => new P.optim.GradScaler({ initScale: 0 }), { instanceOf: RangeError, message: /option 'initScale' must be a finite number > 0, got number 0/ });
  t.throws(() => new P.optim.GradScaler({ growthFactor: 1 }), { instanceOf: RangeError, message: /'growthFactor' must be a finite number > 1/ });
  t.throws(() => new P.optim.GradScaler({ backoffFactor: 1.5 }), { instanceOf: RangeError, message: /'backoffFactor' must be a finite number in \(0, 1\)/ });
  t.throws(() => new P.optim.GradScaler({ growthInterval: 0.5 }), { instanceOf: RangeError, message: /'growthInterval' must be a positive integer/ });
  const s = new P.optim.GradScaler();
  t.throws(() => s.update(1 as unknown as boolean), { instanceOf: TypeError, message: /'finite' must be a boolean/ });
  await t.throwsAsync(s.unscale(null as unknown as P.Tensor[]), { instanceOf: TypeError, message: /'params' must be an array of Tensors/ });
  t.throws(() => s.loadStateDict({ scale: -1, growthTracker: 0 }), { instanceOf: RangeError });
  t.throws(() => s.loadStateDict({ scale: 2, growthTracker: 1.5 }), { instanceOf: RangeError, message: /growthTracker/ });
});

test('schedules, clipping, norm and decay groups refuse missing or malformed arguments with errors naming them', (t) => {
  const lin = new P.Linear(2, 2);
  const bad = (v: unknown) => v as never;
  const cases: [string, () => unknown, typeof Error, RegExp][] = [
    ['constantCosine()', () => constantCosine(bad(undefined)), TypeError, /^constantCosine: argument 'options' must be an object/],
    ['warmupCosine()', () => warmupCosine(bad(undefined)), TypeError, /^warmupCosine: argument 'options' must be an object/],
    ['stepDecay(null)', () => stepDecay(bad(null)), TypeError, /^stepDecay: argument 'options' must be an object .*got null/],
    ['warmup longer than the run', () => warmupCosine({ lr: 0.1, totalSteps: 2, warmupSteps: 5 }), RangeError, /^warmupCosine: 'warmupSteps' \(5\) must not exceed 'totalSteps' \(2\)/],
    ['constantFraction boolean', () => constantCosine({ lr: 0.1, totalSteps: 2, constantFraction: bad(true) }), RangeError, /^constantCosine: 'constantFraction' must be in \[0, 1\], got boolean true/],
    ['norm(string)', () => P.optim.norm(bad('x')), TypeError, /^norm: argument 't' must be a Tensor, got 'x'/],
    ['clipGradNorm([null])', () => clipGradNorm(bad([null]), 1), TypeError, /^clipGradNorm: argument 'params' must be an array of Tensors, element 0 is null/],
    ['exemptFromDecay(5)', () => exemptFromDecay(bad(5)), TypeError, /^exemptFromDecay: argument 'name' must be a string, got number 5/],
    ['exemptFromDecay flag', () => exemptFromDecay('a.weight', bad('yes')), TypeError, /^exemptFromDecay: argument 'decayPositionEmbeddings' must be a boolean, got 'yes'/],
    ['decayGroups()', () => decayGroups(bad(undefined), bad(undefined)), TypeError, /^decayGroups: argument 'model' must be a Module, got undefined/],
    ['decayGroups({})', () => decayGroups(bad({}), { weightDecay: 0.1 }), TypeError, /^decayGroups: argument 'model' must be a Module, got Object/],
    ['decayGroups options string', () => decayGroups(lin, bad('x')), TypeError, /^decayGroups: argument 'options' must be \{ weightDecay, decayPositionEmbeddings\? \}, got 'x'/],
    ['decayGroups weightDecay string', () => decayGroups(lin, { weightDecay: bad('x') }), TypeError, /^decayGroups: option 'weightDecay' must be a finite number >= 0, got 'x'/],
    ['decayGroups weightDecay missing', () => decayGroups(lin, bad({})), TypeError, /^decayGroups: option 'weightDecay' must be a finite number >= 0, got undefined/],
  ];
  for (const [name, fn, instanceOf, message] of cases) t.throws(fn, { instanceOf, message }, name);
  t.is(warmupCosine({ lr: 0.1, totalSteps: 5, warmupSteps: 5 })(4), 0.1, 'a warm-up as long as the run is still valid');
  lin.dispose();
});

test('optimizers, GradScaler, schedules and decayGroups refuse an unknown option key, naming it and the known ones, parameter groups too', (t) => {
  const lin = new P.Linear(2, 2);
  const p = P.ones([2]);
  const bad = (v: unknown) => v as never;
  const cases: [string, () => unknown, RegExp][] = [
    ['AdamW', () => new AdamW([p], bad({ lr: 0.1, weight_decay: 0.1 })), /^AdamW: argument 'opts' has unknown option 'weight_decay' \(known: lr, beta1, beta2, eps, weightDecay\)$/],
    ['LAMB', () => new LAMB([p], bad({ lr: 0.1, betas: [0.9, 0.99] })), /^LAMB: argument 'opts' has unknown option 'betas' \(known: lr, beta1, beta2, eps, weightDecay\)$/],
    ['SGD', () => new SGD([p], bad({ lr: 0.1, momentun: 0.9 })), /^SGD: argument 'opts' has unknown option 'momentun' \(known: lr, momentum, nesterov, weightDecay\)$/],
    ['GradScaler', () => new P.optim.GradScaler(bad({ init_scale: 1024 })), /^GradScaler: argument 'opts' has unknown option 'init_scale' \(known: initScale, growthFactor, backoffFactor, growthInterval\)$/],
    ['constantCosine', () => constantCosine(bad({ lr: 1, totalSteps: 10, warmup: 2 })), /^constantCosine: argument 'options' has unknown option 'warmup' \(known: lr, totalSteps, constantFraction, endValue, warmupSteps\)$/],
    ['warmupCosine', () => warmupCosine(bad({ lr: 1, totalSteps: 10, warmupSteps: 2, endLr: 0.1 })), /^warmupCosine: argument 'options' has unknown option 'endLr' \(known: lr, totalSteps, warmupSteps, endValue\)$/],
    ['stepDecay', () => stepDecay(bad({ lr: 1, boundaries: [1], gamma: 0.5 })), /^stepDecay: argument 'options' has unknown option 'gamma' \(known: lr, boundaries, factor\)$/],
    ['decayGroups', () => decayGroups(lin, bad({ weightDecay: 0.1, decayPositionEmbedding: true })), /^decayGroups: argument 'options' has unknown option 'decayPositionEmbedding' \(known: weightDecay, decayPositionEmbeddings\)$/],
  ];
  for (const [name, fn, message] of cases) t.throws(fn, { instanceOf: TypeError, message }, name);
  // A parameter group varies only lr and weightDecay: torch's per-group momentum or
  // betas would be ignored here, so they are refused, naming the group.
  t.throws(() => new SGD([{ params: [p], lr: 0.5 }, bad({ params: [lin.weight], momentum: 0.9 })], { lr: 0.1 }), {
    instanceOf: TypeError,
    message: /^SGD: argument 'params\[1\]' has unknown option 'momentum' \(known: params, names, lr, weightDecay\)$/,
  });
  const opt = new SGD([{ params: [p], lr: 0.5 }], { lr: 0.1 });
  t.is(opt.groups[0].lr, 0.5);
  opt.dispose();
  p.dispose();
  lin.dispose();
});

test('loadStateDict checks the whole state dict before it changes anything: group rates as the constructor does, tensors, second moments', (t) => {
  const p = P.tensor([1, 2], [2]);
  const q = P.tensor([3], [1]);
  const opt = new AdamW([{ params: [p] }, { params: [q], weightDecay: 0.01 }], { lr: 0.1 });
  p.grad = P.tensor([0.5, -0.5], [2]);
  q.grad = P.tensor([1], [1]);
  opt.step();
  const before = opt.stateDict();
  const snapshot = () => {
    const sd = opt.stateDict();
    return { stepCount: sd.stepCount, steps: sd.steps, groups: sd.groups, tensors: Object.fromEntries(Object.entries(sd.tensors).map(([k, v]) => [k, Array.from(v.dataSync())])) };
  };
  const want = snapshot();
  const good = { tensors: before.tensors, stepCount: 5, steps: { 'p0.0': 5, 'p1.0': 4 }, groups: before.groups };
  const negative = P.tensor([-1e-8, 0], [2]);
  const nan = P.tensor([NaN], [1]);
  const ints = P.tensor([0, 0], [2], { dtype: 'int32' });
  const gone = P.zeros([2]);
  gone.dispose();
  const bad = (v: unknown) => v as never;
  const cases: [string, unknown, typeof Error, RegExp][] = [
    ['tensors null', { ...good, tensors: null }, TypeError, /^AdamW.loadStateDict: 'tensors' must be an object of Tensors by name, got null$/],
    ['groups { length: 1 }', { ...good, groups: { length: 1 } }, TypeError, /^AdamW.loadStateDict: 'groups' must be an array of \{ lr, weightDecay \}, got Object$/],
    ['groups of another length', { ...good, groups: [before.groups[0]] }, RangeError, /^AdamW.loadStateDict: 1 groups, the optimizer has 2$/],
    ['a null group', { ...good, groups: [before.groups[0], null] }, TypeError, /^AdamW.loadStateDict: 'groups\[1\]' must be \{ lr, weightDecay \}, got null$/],
    ['NaN lr', { ...good, groups: [{ lr: NaN, weightDecay: 0 }, before.groups[1]] }, RangeError, /^AdamW.loadStateDict: 'groups\[0\].lr' must be a finite number >= 0, got number NaN$/],
    ['negative weightDecay', { ...good, groups: [before.groups[0], { lr: 0.1, weightDecay: -1 }] }, RangeError, /^AdamW.loadStateDict: 'groups\[1\].weightDecay' must be a finite number >= 0, got number -1$/],
    ['missing lr', { ...good, groups: [{ weightDecay: 0 }, before.groups[1]] }, RangeError, /'groups\[0\].lr' must be a finite number >= 0, got undefined$/],
    ['an int32 moment', { ...good, tensors: { ...before.tensors, 'p0.0.exp_avg': ints } }, Error, /'p0.0.exp_avg' must be a floating Tensor of shape \[2\], got int32 \[2\]$/],
    ['a disposed moment', { ...good, tensors: { ...before.tensors, 'p0.0.exp_avg': gone } }, Error, /'p0.0.exp_avg' must be a floating Tensor of shape \[2\], got a disposed Tensor$/],
    ['a negative second moment', { ...good, tensors: { ...before.tensors, 'p0.0.exp_avg_sq': negative } }, RangeError, /^AdamW.loadStateDict: 'p0.0.exp_avg_sq' \(min -[0-9.e-]+\) must not hold negative or NaN values$/],
    ['a NaN second moment', { ...good, tensors: { ...before.tensors, 'p1.0.exp_avg_sq': nan } }, RangeError, /^AdamW.loadStateDict: 'p1.0.exp_avg_sq' \(min NaN\) must not hold negative or NaN values$/],
  ];
  for (const [name, sd, instanceOf, message] of cases) {
    t.throws(() => opt.loadStateDict(bad(sd)), { instanceOf, message }, name);
    t.deepEqual(snapshot(), want, `${name}: nothing changed`);
  }
  // A negative first moment is fine: only the second moments have a sign.
  opt.loadStateDict({ ...good, tensors: { ...before.tensors, 'p0.0.exp_avg': negative } });
  t.is(opt.stepCount, 5);
  t.deepEqual(Array.from(opt.stateDict().tensors['p0.0.exp_avg'].dataSync()), Array.from(negative.dataSync()).map((v) => Math.fround(v)));
  opt.dispose();
  for (const v of [p, q, negative, nan, ints]) v.dispose();
});
