// Fused projections (models/fused-projection.ts): a self-attention's
// query, key and value products, and a cross-attention's key and value products, run
// as one product over their weights joined head-major, whose output's slices are the
// heads the attention reads. Specified here: the layout (each view is its part's
// heads), that a layer computes the same function either way, that one product runs
// where three did (one head too), that the joined weights follow in-place writes,
// replaced tensors and dtype changes, that training runs one product too (the weights
// joined on the tape) with the gradients of three, that widths off 16-byte units keep
// the three products, that nothing leaks, and the arguments' checks.
import test from 'ava';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { PerceiverEncoder, PerceiverSelfAttention, perceiverConfig, setFusedProjections } from '../models/index.js';
import { canFuseProjections, FusedProjection, headMajorConcat, splitHeads } from '../models/fused-projection.js';
import { baseline, live, rtolFor } from './helpers/device.js';

P.manualSeed(4321);

function randomize(m: P.Module): void {
  const sd: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(m.stateDict()))
    sd[k] = /layernorm\d\.weight$/.test(k) ? P.rand([...t.shape], { low: 0.5, high: 1.5 }) : P.randn([...t.shape], { std: 0.3 });
  m.loadStateDict(sd);
  for (const t of Object.values(sd)) t.dispose();
}

/** Largest |a - b| over the largest |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Number.isNaN(a[i] - b[i]) ? Infinity : Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

function data(t: Tensor): Float32Array {
  return P.tidy(() => t.cast('float32').dataSync() as Float32Array);
}

/** forward() with the fused products on, then off, as float32 host arrays. */
function bothWays(attn: PerceiverSelfAttention, run: () => Tensor): { fused: Float32Array; apart: Float32Array } {
  const once = (on: boolean) =>
    P.tidy(() => {
      attn.fuseProjections = on;
      return data(run());
    });
  const fused = once(true);
  const apart = once(false);
  attn.fuseProjections = true;
  return { fused, apart };
}

/**
 * The products with [B, N, C] results in a profile: the projections. Where the
 * backend composes attention from products (CUDA in float32 at these widths), those
 * have [B, H, N, N'] results and are not counted.
 */
function projections(prof: P.Profile): number {
  return prof.rows.filter((r) => r.op === 'matmul' && r.shape.split(',').length === 3).reduce((a, r) => a + r.calls, 0);
}

/** fn's result, and the profile (with shapes) of the ops it issued. */
function profiled<T>(fn: () => T): { result: T; prof: P.Profile } {
  P.profiler.start({ shapes: true });
  let result: T | undefined;
  let prof: P.Profile;
  try {
    result = fn();
  } finally {
    prof = P.profiler.stop();
  }
  return { result: result as T, prof };
}

const matmulCalls = (fn: () => void): number => projections(profiled(fn).prof);

/** The sum of t's squares: a scalar loss. */
function squaredSum(t: Tensor): Tensor {
  let s = t.square();
  while (s.rank > 0) s = s.sum(0);
  return s;
}

/** attn.forward(hs) summed to a scalar (a loss), and the projections its forward made. */
function profiledLoss(attn: PerceiverSelfAttention, hs: Tensor): { loss: Tensor; calls: number } {
  const { result: loss, prof } = profiled(() => P.tidy(() => squaredSum(attn.forward(hs))));
  return { loss, calls: projections(prof) };
}

const selfAttention = (heads = 4, qk = 32, v = 64) =>
  new PerceiverSelfAttention({ qDim: 48, qkChannels: qk, vChannels: v, numHeads: heads });
const crossAttention = () =>
  new PerceiverSelfAttention({ isCrossAttention: true, qDim: 48, kvDim: 40, qkChannels: 32, vChannels: 64, numHeads: 4 });

test('splitHeads of a product over headMajorConcat weights gives each part its heads, as views', (t) => {
  P.tidy(() => {
    const H = 4;
    const widths = [8, 8, 16];
    const ws = widths.map((w) => P.randn([H * w, 24]));
    const bs = widths.map((w) => P.randn([H * w]));
    const x = P.randn([2, 5, 24]);
    const views = splitHeads(P.linear(x, headMajorConcat(ws, widths, H), headMajorConcat(bs, widths, H)), widths, H);
    views.forEach((v, i) => {
      t.deepEqual(v.shape, [2, 5, H, widths[i]]);
      const want = P.reshape(P.linear(x, ws[i], bs[i]), [2, 5, H, widths[i]]);
      t.true(relErr(data(v), data(want)) <= 1e-6, `part ${i}`);
    });
    t.false(views[1].isContiguous, 'a slice of the product, not a copy');
  });
});

test('headMajorConcat groups each head\'s rows of every part in turn', (t) => {
  P.tidy(() => {
    // Two heads; part a has 1 row per head, part b 2: rows a0 b0 b1 | a1 b2 b3.
    const a = P.tensor([10, 11], [2]);
    const b = P.tensor([20, 21, 22, 23], [4]);
    t.deepEqual(Array.from(headMajorConcat([a, b], [1, 2], 2).dataSync()), [10, 20, 21, 11, 22, 23]);
  });
});

test('canFuseProjections: same input width, biases all or none, whole 16-byte head widths', (t) => {
  const m = selfAttention();
  const parts = (qk: number) => [
    { layer: m.query, headWidth: qk },
    { layer: m.key, headWidth: qk },
    { layer: m.value, headWidth: 16 },
  ];
  t.true(canFuseProjections(parts(8), 4));
  t.false(canFuseProjections(parts(8).slice(0, 1), 4), 'one part has nothing to share');
  t.false(canFuseProjections(parts(8), 2), 'widths that do not match the layers');
  const odd = new PerceiverSelfAttention({ qDim: 48, qkChannels: 12, vChannels: 12, numHeads: 2 });
  t.false(canFuseProjections([{ layer: odd.query, headWidth: 6 }, { layer: odd.key, headWidth: 6 }], 2), 'head width 6');
  const cross = crossAttention();
  t.false(canFuseProjections([{ layer: cross.query, headWidth: 8 }, { layer: cross.key, headWidth: 8 }], 4), 'inputs of 48 and 40');
  const noBias = new P.Linear(48, 32, { bias: false });
  t.false(canFuseProjections([{ layer: m.query, headWidth: 8 }, { layer: noBias, headWidth: 8 }], 4), 'one bias missing');
  const mixed = selfAttention();
  mixed.value.to('bfloat16');
  t.false(canFuseProjections([{ layer: mixed.key, headWidth: 8 }, { layer: mixed.value, headWidth: 16 }], 4), 'float32 and bfloat16');
  mixed.dispose();
  m.dispose();
  odd.dispose();
  cross.dispose();
  noBias.dispose();
});

for (const dtype of ['float32', 'bfloat16'] as const) {
  test(`self-attention (${dtype}): one product for query, key and value, the same function as three`, (t) => {
    const attn = selfAttention();
    randomize(attn);
    if (dtype !== 'float32') attn.to(dtype);
    const hs = P.randn([2, 6, 48]).cast(dtype);
    const { fused, apart } = bothWays(attn, () => attn.forward(hs));
    t.true(relErr(fused, apart) <= rtolFor(dtype), `rel err ${relErr(fused, apart)}`);
    // The first call joins the weights (two concats, no product); a warm one: one
    // product for q, k and v against three.
    attn.forward(hs).dispose();
    t.is(matmulCalls(() => attn.forward(hs).dispose()), 1);
    attn.fuseProjections = false;
    t.is(matmulCalls(() => attn.forward(hs).dispose()), 3);
    hs.dispose();
    attn.dispose();
  });

  test(`cross-attention (${dtype}): one product for key and value, masks and query scales as before`, (t) => {
    const attn = crossAttention();
    randomize(attn);
    if (dtype !== 'float32') attn.to(dtype);
    const hs = P.randn([2, 6, 48]).cast(dtype);
    const x = P.randn([2, 9, 40]).cast(dtype);
    const mask = P.tensor(Uint8Array.from({ length: 2 * 9 }, (_, i) => (i % 4 === 1 ? 0 : 1)), [2, 1, 9], { dtype: 'uint8' });
    const scale = P.tensor([1, 0.5], [2, 1, 1]).cast(dtype);
    for (const [m, s] of [[null, null], [mask, null], [mask, scale]] as const) {
      const { fused, apart } = bothWays(attn, () => attn.forward(hs, x, m, s));
      t.true(relErr(fused, apart) <= rtolFor(dtype), `mask ${m !== null}, scale ${s !== null}: rel err ${relErr(fused, apart)}`);
    }
    attn.forward(hs, x).dispose();
    t.is(matmulCalls(() => attn.forward(hs, x).dispose()), 2, 'the query product, and one for key and value');
    for (const u of [hs, x, mask, scale]) u.dispose();
    attn.dispose();
  });
}

test('a self-attention with a query scale fuses key and value only', (t) => {
  const attn = selfAttention();
  randomize(attn);
  const hs = P.randn([2, 6, 48]);
  const scale = P.tensor([2, 0], [2, 1, 1]);
  const { fused, apart } = bothWays(attn, () => attn.forward(hs, null, null, scale));
  t.true(relErr(fused, apart) <= 1e-5);
  attn.forward(hs, null, null, scale).dispose();
  t.is(matmulCalls(() => attn.forward(hs, null, null, scale).dispose()), 2);
  hs.dispose();
  scale.dispose();
  attn.dispose();
});

test('the joined weights follow in-place writes, replaced tensors and dtype changes', (t) => {
  const attn = selfAttention();
  randomize(attn);
  const hs = P.randn([2, 6, 48]);
  // Each check starts with the joined weights of the last call cached (bothWays turns
  // fusion off last, which frees them; the extra call joins them again).
  const check = (what: string) => {
    const { fused, apart } = bothWays(attn, () => attn.forward(hs));
    t.true(relErr(fused, apart) <= 1e-5, what);
    attn.forward(hs).dispose();
  };
  attn.forward(hs).dispose();
  check('fresh');
  P.tidy(() => P.assign(attn.key.weight, P.randn([...attn.key.weight.shape])));
  check('after assign() into key.weight');
  P.tidy(() => attn.loadStateDict({ 'value.bias': P.randn([64]) }, { strict: false }));
  check('after loadStateDict replaced value.bias');
  // assign: true puts the given tensor in the parameter's place: a new identity, no write.
  P.tidy(() => attn.loadStateDict({ 'query.weight': P.randn([32, 48]) }, { strict: false, assign: true }));
  check('after loadStateDict assigned a new query.weight');
  attn.to('bfloat16');
  const hb = hs.cast('bfloat16');
  const { fused, apart } = bothWays(attn, () => attn.forward(hb));
  t.true(relErr(fused, apart) <= rtolFor('bfloat16'), 'after to(bfloat16)');
  // Under autocast the float32 weights are joined in the autocast dtype.
  attn.to('float32');
  attn.forward(hs).dispose(); // float32 joined weights cached: autocast must not take them
  const viaAutocast = P.autocast('bfloat16', () => P.tidy(() => data(attn.forward(hs))));
  attn.fuseProjections = false;
  const apartAutocast = P.autocast('bfloat16', () => P.tidy(() => data(attn.forward(hs))));
  t.true(relErr(viaAutocast, apartAutocast) <= rtolFor('bfloat16'), 'under autocast');
  hs.dispose();
  hb.dispose();
  attn.dispose();
});

/**
 * One training step's forward and backward through attn, fused or apart: the forward's
 * projections, the backward's scopes (profiler rows), and every gradient (parameters,
 * then the inputs that want one) as float32 arrays.
 */
function trainStep(attn: PerceiverSelfAttention, fuse: boolean, run: () => Tensor, inputs: Tensor[] = []) {
  attn.fuseProjections = fuse;
  attn.zeroGrad();
  for (const x of inputs) {
    x.grad?.dispose();
    x.grad = null;
  }
  const forward = profiled(() => P.tidy(() => squaredSum(run())));
  const backward = profiled(() => forward.result.backward());
  forward.result.dispose();
  const grads = [...attn.namedParameters().map(([, p]) => p), ...inputs].map((p) => (p.grad ? data(p.grad) : null));
  return { calls: projections(forward.prof), scopes: new Set(backward.prof.rows.map((r) => r.scope)), grads };
}

test('training: one product over the weights joined on the tape; every gradient as with three products', (t) => {
  const cases: [string, PerceiverSelfAttention, number, (a: PerceiverSelfAttention, x: Tensor[]) => Tensor][] = [
    ['self-attention (query, key, value)', selfAttention(), 1, (a, [hs]) => a.forward(hs)],
    ['self-attention with a query scale (key, value)', selfAttention(), 2, (a, [hs, s]) => a.forward(hs, null, null, s)],
    ['cross-attention (key, value)', crossAttention(), 2, (a, [hs, kv]) => a.forward(hs, kv)],
  ];
  for (const [name, attn, fusedCalls, forward] of cases) {
    randomize(attn);
    attn.requiresGrad_(true);
    const second = name.startsWith('cross') ? [P.randn([2, 9, 40], { seed: 4 })] : name.includes('scale') ? [P.rand([2, 1, 1], { low: 0.5, high: 1.5 })] : [];
    const inputs = [P.randn([2, 6, 48], { seed: 3 }), ...second];
    for (const x of inputs) x.requiresGrad = true;
    const on = trainStep(attn, true, () => forward(attn, inputs), inputs);
    const off = trainStep(attn, false, () => forward(attn, inputs), inputs);
    t.is(on.calls, fusedCalls, `${name}: the forward's projections`);
    t.is(off.calls, 3, `${name}: three apart`);
    // The parts' gradients reach the product joined, none through a slice's gradient.
    t.false([...on.scopes].some((s) => s.endsWith('backward/slice')), `${name}: no slice gradient`);
    t.true([...off.scopes].some((s) => s.endsWith('backward/matmul')), `${name}: the profile names the backward's nodes`);
    on.grads.forEach((g, i) => {
      const h = off.grads[i];
      t.truthy(g, `${name}: gradient ${i}`);
      t.truthy(h);
      t.true(Math.max(...Array.from(h!, Math.abs)) > 0, `${name}: gradient ${i} is not zero`);
      const err = relErr(g!, h!);
      t.true(err < 10 * rtolFor('float32'), `${name}: gradient ${i} within ${err}`);
    });
    for (const x of inputs) {
      x.grad?.dispose();
      x.dispose();
    }
    attn.zeroGrad();
    attn.dispose();
  }
});

test('training under bfloat16 autocast: the joined weights are cast on the tape, gradients reach the float32 weights', (t) => {
  const attn = selfAttention();
  randomize(attn);
  attn.requiresGrad_(true);
  const hs = P.randn([2, 6, 48], { seed: 5 });
  const step = (fuse: boolean) => trainStep(attn, fuse, () => P.autocast('bfloat16', () => attn.forward(hs)).cast('float32'));
  const on = step(true);
  const off = step(false);
  t.is(on.calls, 1);
  t.false([...on.scopes].some((s) => s.endsWith('backward/slice')), 'the parts reach the product joined');
  on.grads.forEach((g, i) => {
    t.truthy(g);
    // bf16 products: both sides round, apart.
    t.true(relErr(g!, off.grads[i]!) < 5e-2, `gradient ${i}`);
  });
  for (const p of attn.parameters()) t.is(p.grad!.dtype, 'float32');
  attn.zeroGrad();
  hs.dispose();
  attn.dispose();
});

test('frozen weights, an input that wants a gradient: one product over the cached join; the input\'s gradient as with three', (t) => {
  const attn = selfAttention();
  randomize(attn);
  const hs = P.randn([2, 6, 48], { seed: 7 });
  hs.requiresGrad = true;
  const on = trainStep(attn, true, () => attn.forward(hs), [hs]);
  const off = trainStep(attn, false, () => attn.forward(hs), [hs]);
  t.is(on.calls, 1);
  t.false([...on.scopes].some((s) => s.endsWith('backward/slice')));
  // The weights' grads are null both ways; the input's last.
  t.deepEqual(on.grads.slice(0, -1), off.grads.slice(0, -1).map(() => null));
  t.true(relErr(on.grads.at(-1)!, off.grads.at(-1)!) < 10 * rtolFor('float32'));
  hs.grad?.dispose();
  hs.dispose();
  attn.dispose();
});

test('training steps hold no tensors past their backward, fused or apart', async (t) => {
  const attn = crossAttention();
  randomize(attn);
  attn.requiresGrad_(true);
  const hs = P.randn([2, 6, 48], { seed: 8 });
  const kv = P.randn([2, 9, 40], { seed: 9 });
  for (const fuse of [true, false]) {
    trainStep(attn, fuse, () => attn.forward(hs, kv));
    const before = (await baseline()).tensors;
    for (let i = 0; i < 3; i++) trainStep(attn, fuse, () => attn.forward(hs, kv));
    t.is((await live()).tensors, before, fuse ? 'fused' : 'apart');
  }
  attn.zeroGrad();
  for (const x of [hs, kv]) x.dispose();
  attn.dispose();
});

test('an encoder joins each layer\'s weights once per forward for all its blocks; gradients as with three products', (t) => {
  // No attention dropout: training with it keeps the three products.
  const make = (blocks: number) => {
    const config = perceiverConfig({ d_latents: 64, d_model: 24, num_latents: 8, num_blocks: blocks, num_self_attends_per_block: 2, num_self_attention_heads: 2, num_cross_attention_heads: 1, attention_probs_dropout_prob: 0 });
    const enc = new PerceiverEncoder(config, { kvDim: 24 });
    randomize(enc);
    return enc.train().requiresGrad_(true);
  };
  const lat = P.randn([2, 8, 64], { seed: 10 });
  const inp = P.randn([2, 5, 24], { seed: 11 });
  const step = (enc: PerceiverEncoder, fuse: boolean) => {
    setFusedProjections(enc, fuse);
    enc.zeroGrad();
    const { result: loss, prof } = profiled(() => P.tidy(() => squaredSum(enc.forward(lat, inp))));
    loss.backward();
    loss.dispose();
    // The joins' ops in the forward (the profile counts a join's pieces).
    const joins = prof.rows.filter((r) => r.op === 'concat').reduce((a, r) => a + r.calls, 0);
    const products = projections(prof);
    const grads = enc.namedParameters().map(([, p]) => data(p.grad!));
    enc.zeroGrad();
    return { joins, products, grads };
  };
  const one = make(1);
  const three = make(3);
  const once = step(one, true);
  const on = step(three, true);
  const off = step(three, false);
  t.true(once.joins > 0);
  t.is(on.joins, once.joins, 'three blocks join as often as one');
  t.is(off.joins, 0);
  // Per self-attention call one projection product where there were three.
  t.is(off.products - on.products, 2 * 3 * 2 + 1);
  // Not the key biases': a bias on every key shifts each query's logits alike, so their
  // true gradient is zero and what either way computes is rounding.
  const names = three.namedParameters().map(([n]) => n);
  on.grads.forEach((g, i) => {
    if (!names[i].endsWith('key.bias')) t.true(relErr(g, off.grads[i]) < 10 * rtolFor('float32'), names[i]);
  });
  for (const x of [lat, inp]) x.dispose();
  one.dispose();
  three.dispose();
});

test('one head: a cross-attention on the plain path fuses key and value too', (t) => {
  const attn = new PerceiverSelfAttention({ isCrossAttention: true, qDim: 48, kvDim: 40, qkChannels: 16, vChannels: 24, numHeads: 1 });
  randomize(attn);
  attn.fastPath = false;
  const hs = P.randn([2, 6, 48]);
  const x = P.randn([2, 9, 40]);
  const { fused, apart } = bothWays(attn, () => attn.forward(hs, x));
  t.true(relErr(fused, apart) <= 1e-5);
  attn.forward(hs, x).dispose();
  t.is(matmulCalls(() => attn.forward(hs, x).dispose()), 2);
  hs.dispose();
  x.dispose();
  attn.dispose();
});

test('head widths off whole 16-byte units keep the three products', (t) => {
  const attn = new PerceiverSelfAttention({ qDim: 48, qkChannels: 12, vChannels: 20, numHeads: 2 });
  randomize(attn);
  const hs = P.randn([1, 5, 48]);
  t.is(matmulCalls(() => attn.forward(hs).dispose()), 3);
  hs.dispose();
  attn.dispose();
});

test('the joined weights live while the layer does; turning fusion off or disposing frees them', async (t) => {
  const before = await baseline();
  const attn = selfAttention();
  randomize(attn);
  const hs = P.randn([2, 6, 48]);
  const withLayer = live();
  for (let i = 0; i < 3; i++) attn.forward(hs).dispose();
  const cached = live();
  t.is(cached.tensors, withLayer.tensors + 2, 'one joined weight and one joined bias, made once');
  setFusedProjections(attn, false);
  t.deepEqual(live(), withLayer, 'freed by turning fusion off');
  setFusedProjections(attn, true);
  attn.forward(hs).dispose();
  hs.dispose();
  attn.dispose();
  t.deepEqual(live(), before, 'nothing left after dispose');
});

test('FusedProjection.clear() may be called with nothing cached', (t) => {
  const f = new FusedProjection();
  t.notThrows(() => f.clear());
});

test('bad arguments: fuseProjections takes a boolean, setFusedProjections a Module and a boolean', (t) => {
  const attn = selfAttention();
  t.throws(() => { (attn as unknown as { fuseProjections: unknown }).fuseProjections = 'yes'; }, {
    instanceOf: TypeError,
    message: /fuseProjections.*'enabled' must be a boolean, got .*yes/,
  });
  t.throws(() => setFusedProjections({} as never, true), { instanceOf: TypeError, message: /setFusedProjections: argument 'module' must be a Module/ });
  t.throws(() => setFusedProjections(attn, 1 as never), { instanceOf: TypeError, message: /setFusedProjections: argument 'enabled' must be a boolean, got number 1/ });
  t.true(attn.fuseProjections, 'unchanged by the refused calls');
  attn.dispose();
});
