// The one-head cross-attention fast path (models/fast-attention.ts) against the plain
// path it replaces: random weights (LayerNorm affine and biases included), with and
// without key masks, rows whose keys are all masked, the folded-query cache and its
// invalidation by loadStateDict, and whole models with the fast path on and off.
// A key bias of NaN proves which path ran: the fast path never reads it (it cancels
// in softmax), the plain path would turn every output into NaN.
import test from 'ava';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import {
  PerceiverEmbeddings,
  PerceiverForImageClassificationFourier,
  PerceiverSelfAttention,
} from '../models/index.js';
import { fastCrossAttentionMacs, plainCrossAttentionMacs } from '../models/fast-attention.js';
import { setFastCrossAttention } from '../models/attention.js';
import { caseConfig, caseTensors, loadCaseWeights, outputError } from './helpers/hf-fixture.js';
import { live } from './helpers/device.js';

P.manualSeed(1234);

interface Dims {
  B: number;
  Nq: number;
  Nk: number;
  qDim: number;
  kvDim: number;
  qk?: number;
  v?: number;
}

/** Random weights for every parameter of m (attention LayerNorm scales around 1), keyed as its state dict. */
function randomState(m: P.Module, keyBias: 'random' | 'nan' = 'random'): Record<string, Tensor> {
  const sd: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(m.stateDict())) {
    if (k === 'key.bias' && keyBias === 'nan') sd[k] = P.full([...t.shape], NaN);
    else if (/layernorm\d\.weight$/.test(k)) sd[k] = P.rand([...t.shape], { low: 0.5, high: 1.5 });
    else sd[k] = P.randn([...t.shape], { std: 0.3 });
  }
  return sd;
}

function load(m: P.Module, sd: Record<string, Tensor>): void {
  m.loadStateDict(sd, { strict: false });
  for (const t of Object.values(sd)) t.dispose();
}

function crossAttention(d: Dims): PerceiverSelfAttention {
  return new PerceiverSelfAttention({ isCrossAttention: true, qDim: d.qDim, kvDim: d.kvDim, qkChannels: d.qk ?? d.kvDim, vChannels: d.v ?? d.qk ?? d.kvDim });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Number.isNaN(a[i] - b[i]) ? Infinity : Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Runs attn on (hs, x, mask) with the fast path, then the plain path (key bias restored to a finite value). */
function bothPaths(attn: PerceiverSelfAttention, hs: Tensor, x: Tensor, mask: Tensor | null): { fast: Float32Array; plain: Float32Array } {
  attn.fastPath = true;
  const fast = P.tidy(() => attn.forward(hs, x, mask));
  const fastData = fast.dataSync() as Float32Array;
  fast.dispose();
  // The plain path needs a finite key bias; any value gives the same function.
  load(attn, { 'key.bias': P.randn([attn.qkChannels]) });
  attn.fastPath = false;
  const plain = P.tidy(() => attn.forward(hs, x, mask));
  const plainData = plain.dataSync() as Float32Array;
  plain.dispose();
  attn.fastPath = true;
  return { fast: fastData, plain: plainData };
}

const SHAPES: Dims[] = [
  { B: 2, Nq: 8, Nk: 300, qDim: 16, kvDim: 12 }, // qk = v = kvDim: the image encoders' shape
  { B: 1, Nq: 5, Nk: 257, qDim: 24, kvDim: 20, qk: 8, v: 12 }, // qk, v != kvDim
  { B: 3, Nq: 1, Nk: 16, qDim: 32, kvDim: 32 }, // a classification decoder's shape
];

for (const d of SHAPES) {
  const name = `B ${d.B}, Nq ${d.Nq}, Nk ${d.Nk}, q ${d.qDim}, kv ${d.kvDim}, qk ${d.qk ?? d.kvDim}, v ${d.v ?? d.qk ?? d.kvDim}`;

  test(`fast = plain without a mask (${name})`, (t) => {
    const attn = crossAttention(d);
    t.true(
      fastCrossAttentionMacs(d.Nq, d.Nk, d.kvDim, attn.qkChannels, attn.vChannels) < plainCrossAttentionMacs(d.Nq, d.Nk, d.kvDim, attn.qkChannels, attn.vChannels),
      'the cost model picks the fast path for this shape',
    );
    load(attn, randomState(attn, 'nan'));
    const hs = P.randn([d.B, d.Nq, d.qDim]);
    const x = P.randn([d.B, d.Nk, d.kvDim], { std: 2 });
    const { fast, plain } = bothPaths(attn, hs, x, null);
    t.is(fast.length, d.B * d.Nq * attn.vChannels);
    const diff = maxAbsDiff(fast, plain);
    t.log(`max |fast - plain| ${diff.toExponential(3)}, max |plain| ${maxAbs(plain).toExponential(3)}`);
    t.true(diff <= 1e-5 * Math.max(1, maxAbs(plain)), `max |diff| ${diff}`);
    for (const z of [hs, x]) z.dispose();
    attn.dispose();
  });

  test(`fast = plain with key masks, fully masked rows output 0 (${name})`, (t) => {
    const attn = crossAttention(d);
    load(attn, randomState(attn, 'nan'));
    const hs = P.randn([d.B, d.Nq, d.qDim]);
    const x = P.randn([d.B, d.Nk, d.kvDim], { std: 2 });
    // [B, 1, Nk]: HF's key mask. Batch 1 (batch 0 where there is one batch) keeps no key,
    // the others about half; allowed keys are marked 1, 7 or 255 (any nonzero value
    // allows, none may scale).
    const emptyBatch = d.B === 1 ? 0 : 1;
    const keyMask = new Uint8Array(d.B * d.Nk);
    for (let b = 0; b < d.B; b++) for (let j = 0; j < d.Nk; j++) keyMask[b * d.Nk + j] = b === emptyBatch ? 0 : (j * 7 + b) % 3 === 0 ? 0 : [1, 7, 255][j % 3];
    // [B, Nq, Nk]: per-row masks, row 0 of every batch fully masked.
    const rowMask = new Uint8Array(d.B * d.Nq * d.Nk);
    for (let b = 0; b < d.B; b++)
      for (let i = 0; i < d.Nq; i++) for (let j = 0; j < d.Nk; j++) rowMask[(b * d.Nq + i) * d.Nk + j] = i === 0 ? 0 : (i + j + b) % 4 === 0 ? 1 : 0;
    const masks: [string, Tensor, (b: number, i: number) => boolean][] = [
      ['[B, 1, Nk]', P.tensor(keyMask, [d.B, 1, d.Nk], { dtype: 'uint8' }), (b) => b === emptyBatch],
      ['[B, Nq, Nk]', P.tensor(rowMask, [d.B, d.Nq, d.Nk], { dtype: 'uint8' }), (_b, i) => i === 0],
    ];
    for (const [label, mask, emptyRow] of masks) {
      const { fast, plain } = bothPaths(attn, hs, x, mask);
      const diff = maxAbsDiff(fast, plain);
      t.log(`${label}: max |fast - plain| ${diff.toExponential(3)}`);
      t.true(diff <= 1e-5 * Math.max(1, maxAbs(plain)), `${label}: max |diff| ${diff}`);
      const V = attn.vChannels;
      let emptyMax = 0;
      let emptyRows = 0;
      for (let b = 0; b < d.B; b++)
        for (let i = 0; i < d.Nq; i++)
          if (emptyRow(b, i)) {
            emptyRows++;
            for (let c = 0; c < V; c++) emptyMax = Math.max(emptyMax, Math.abs(fast[(b * d.Nq + i) * V + c]));
          }
      t.true(emptyRows > 0, `${label}: some rows have every key masked`);
      t.is(emptyMax, 0, `${label}: rows with every key masked are exactly 0 (${emptyRows} such rows)`);
      // The next bothPaths call needs the key bias back at NaN to prove the path again.
      load(attn, { 'key.bias': P.full([attn.qkChannels], NaN) });
      mask.dispose();
    }
    for (const z of [hs, x]) z.dispose();
    attn.dispose();
  });
}

test.serial('folded queries are cached for the latents and recomputed when loadStateDict changes a weight; nothing leaks', (t) => {
  const before = live();
  const d: Dims = { B: 2, Nq: 6, Nk: 200, qDim: 16, kvDim: 10 };
  const emb = new PerceiverEmbeddings(d.Nq, d.qDim);
  const attn = crossAttention(d);
  load(attn, randomState(attn, 'nan'));
  const x = P.randn([d.B, d.Nk, d.kvDim]);
  const run = () => {
    const out = P.tidy(() => attn.forward(emb.forward(d.B), x));
    const data = out.dataSync() as Float32Array;
    out.dispose();
    return data;
  };
  t.is(emb.forward(d.B), emb.forward(d.B), 'the latents view is reused across calls');
  const first = run();
  const liveAfterFirst = live().tensors;
  const second = run();
  t.deepEqual(second, first, 'a cached second call gives the same values');
  t.is(live().tensors, liveAfterFirst, 'a cached call creates no lasting tensor');

  // New query weights: the cache must not serve the old fold.
  load(attn, { 'query.weight': P.randn([attn.qkChannels, d.qDim], { std: 0.3 }) });
  const third = run();
  t.true(maxAbsDiff(third, first) > 1e-3, 'the output follows the new query weight');
  // New latents: a new view, so a new fold.
  load(emb, { latents: P.randn([d.Nq, d.qDim]) });
  const fourth = run();
  t.true(maxAbsDiff(fourth, third) > 1e-3, 'the output follows the new latents');
  // And the cached fast result still equals the plain path on the current weights.
  const hs = emb.forward(d.B);
  const { fast, plain } = bothPaths(attn, hs, x, null);
  t.deepEqual(fast, fourth);
  t.true(maxAbsDiff(fast, plain) <= 1e-5 * Math.max(1, maxAbs(plain)));

  x.dispose();
  attn.dispose();
  emb.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
  t.is(live().bytes, before.bytes, 'live bytes');
});

test.serial('folded queries are recomputed after a parameter is written in place (assign, an optimizer step): evaluation between training steps sees the new weights', (t) => {
  const before = live();
  const d: Dims = { B: 2, Nq: 6, Nk: 200, qDim: 16, kvDim: 10 };
  const emb = new PerceiverEmbeddings(d.Nq, d.qDim);
  const attn = crossAttention(d);
  load(attn, randomState(attn));
  const x = P.randn([d.B, d.Nk, d.kvDim]);
  // Evaluation: no gradients, so the fold of the latents view is cached.
  const evaluate = (fast: boolean) => {
    attn.fastPath = fast;
    const out = P.noGrad(() => P.tidy(() => attn.forward(emb.forward(d.B), x)));
    const data = out.dataSync() as Float32Array;
    out.dispose();
    attn.fastPath = true;
    return data;
  };
  const first = evaluate(true);

  P.tidy(() => P.assign(attn.query.weight, P.randn([attn.qkChannels, d.qDim], { std: 0.3 })));
  const afterAssign = evaluate(true);
  t.true(maxAbsDiff(afterAssign, first) > 1e-3, 'the output follows the query weight assign() wrote');
  t.true(maxAbsDiff(afterAssign, evaluate(false)) <= 1e-5 * Math.max(1, maxAbs(afterAssign)), 'and equals the plain path');

  // One training step on the latents and the key weight, in place.
  const params = [emb.latents, attn.key.weight];
  for (const p of params) p.requiresGrad = true;
  const opt = new P.optim.SGD(params, { lr: 0.5 });
  const loss = P.tidy(() => P.reshape(attn.forward(emb.forward(d.B), x).square(), [-1]).sum(0));
  P.backward(loss);
  loss.dispose();
  opt.step();
  opt.zeroGrad();
  opt.dispose();
  for (const p of params) p.requiresGrad = false;
  const afterStep = evaluate(true);
  t.true(maxAbsDiff(afterStep, afterAssign) > 1e-3, 'the output follows the step');
  t.true(maxAbsDiff(afterStep, evaluate(false)) <= 1e-5 * Math.max(1, maxAbs(afterStep)), 'and equals the plain path');

  x.dispose();
  attn.dispose();
  emb.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
});

test('image_fourier: the fast path (encoder and decoder) and the plain path agree, and both match HF', async (t) => {
  const model = new PerceiverForImageClassificationFourier(caseConfig('image_fourier'));
  await loadCaseWeights('image_fourier', model);
  const input = await caseTensors('image_fourier', 'input', ['pixel_values']);
  const expected = await caseTensors('image_fourier', 'expected', ['logits']);
  const want = await expected.logits.data();
  const outputs: Float32Array[] = [];
  for (const fast of [true, false]) {
    setFastCrossAttention(model, fast);
    for (let rep = 0; rep < 2; rep++) {
      const { logits } = model.forward(input.pixel_values);
      const got = (await logits.data()) as Float32Array;
      const { maxDiff, bound, summary } = outputError(got, want);
      t.log(`${fast ? 'fast' : 'plain'} (call ${rep + 1}): ${summary}`);
      t.true(maxDiff <= bound, summary);
      outputs.push(got);
      logits.dispose();
    }
  }
  t.deepEqual(outputs[1], outputs[0], 'the cached second fast call is identical to the first');
  const diff = maxAbsDiff(outputs[0], outputs[2]);
  t.log(`max |fast - plain| ${diff.toExponential(3)}`);
  t.true(diff <= 1e-5 * Math.max(1, maxAbs(outputs[2])));
  for (const x of [input.pixel_values, expected.logits]) x.dispose();
  model.dispose();
});

test('a small Fourier classifier on random weights: fast = plain through the whole model', (t) => {
  // 1-head cross-attention over 14x14 pixels (261 channels), 1-head decoder over 8 latents.
  const config = {
    architectures: ['PerceiverForImageClassificationFourier'],
    d_latents: 32,
    num_latents: 8,
    num_blocks: 1,
    num_self_attends_per_block: 1,
    num_self_attention_heads: 4,
    num_cross_attention_heads: 1,
    image_size: 14,
    num_labels: 5,
  };
  const model = new PerceiverForImageClassificationFourier(config);
  // Larger than the 0.02 init, so the attention is far from uniform.
  load(model, randomState(model));
  const pixels = P.randn([2, 3, 14, 14]);
  const run = (fast: boolean) => {
    setFastCrossAttention(model, fast);
    const { logits } = model.forward(pixels);
    const data = logits.dataSync() as Float32Array;
    logits.dispose();
    return data;
  };
  const fast = run(true);
  const plain = run(false);
  const diff = maxAbsDiff(fast, plain);
  t.log(`max |fast - plain| ${diff.toExponential(3)}`);
  t.true(diff <= 1e-5 * Math.max(1, maxAbs(plain)));
  pixels.dispose();
  model.dispose();
});
