// Specification of the Perceiver building blocks against plain-JS references:
// multi-head cross-attention with a key mask (and with queries broadcast over the
// batch, which it projects once), the MLP with exact and tanh GELU,
// HF's qk/v/output channel defaults, the encoder's weight sharing across blocks,
// HF attention_mask -> engine key mask, and config.json -> task model class.
import test from 'ava';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import {
  PerceiverAttention,
  PerceiverEncoder,
  PerceiverLayer,
  PerceiverMLP,
  PerceiverSelfAttention,
  createModel,
  keyMask,
  perceiverConfig,
} from '../models/index.js';
import * as M from '../models/index.js';
import { setFastCrossAttention } from '../models/attention.js';
import { live } from './helpers/device.js';
import { caseConfig } from './helpers/hf-fixture.js';
import { readAndDispose } from './helpers/read.js';
import { assertUnknownOptions } from './helpers/options.js';
import { assertClose, geluRef, geluTanhRef, layerNormRef, matmulRef, randomArray, softmaxRef } from './helpers/reference.js';

type Arr = ArrayLike<number>;

/** x [M, K] @ W[N, K]ᵀ + b. */
function linearRef(x: Arr, m: number, w: Arr, b: Arr, n: number): Float64Array {
  return matmulRef(x, [m, x.length / m], w, [n, w.length / n], { transB: true, bias: b }).data;
}

/** Sets every parameter of a module to seeded random values; returns them by name. */
function randomise(mod: P.Module, seed: number): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  const dict: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(mod.stateDict())) {
    out[k] = randomArray(v.size, seed++, -0.5, 0.5);
    dict[k] = P.tensor(out[k], [...v.shape]);
  }
  mod.loadStateDict(dict);
  for (const v of Object.values(dict)) v.dispose();
  return out;
}

test.serial('PerceiverEmbeddings: one latents view per batch size, reused; the last LATENT_VIEWS_KEPT sizes kept, older ones disposed', (t) => {
  const before = live().tensors;
  const emb = new M.PerceiverEmbeddings(4, 8);
  const kept = M.LATENT_VIEWS_KEPT;
  t.true(kept >= 2, `LATENT_VIEWS_KEPT ${kept}`);
  const first = emb.forward(1);
  t.deepEqual(first.shape, [1, 4, 8]);
  t.is(emb.forward(1), first, 'the same view for the same batch size');
  // A server seeing every batch size up to 40: the module holds at most `kept` views.
  const views = Array.from({ length: 40 }, (_, i) => emb.forward(i + 2));
  t.is(live().tensors - before, 1 + kept, 'the latents and the last views');
  t.true(first.disposed, 'the least recently used view went first');
  t.false(views[39].disposed);
  t.is(emb.forward(41), views[39], 'a recent size still reuses its view');
  // A hit moves a size to the front: after `kept` - 1 new sizes it is still held.
  const recent = emb.forward(41 - kept + 1);
  for (let i = 0; i < kept - 1; i++) emb.forward(100 + i);
  t.is(emb.forward(41 - kept + 1), recent, 'a size used since is kept');
  t.deepEqual(emb.forward(3).shape, [3, 4, 8], 'an evicted size gets a fresh view');
  emb.dispose();
  t.is(live().tensors, before, 'disposing the module disposes its views');
});

test('cross-attention: two LayerNorms, per-head softmax(q·k/sqrt(d)) over unmasked keys, heads concatenated head-major', async (t) => {
  const [Nq, Nk, qDim, kvDim, qk, v, H] = [3, 5, 6, 4, 8, 10, 2];
  const att = new PerceiverSelfAttention({ isCrossAttention: true, qDim, kvDim, qkChannels: qk, vChannels: v, numHeads: H });
  const p = randomise(att, 10);
  const xq = randomArray(Nq * qDim, 1);
  const xkv = randomArray(Nk * kvDim, 2);
  const maskKeys = [1, 0, 1, 1, 0];
  const mask = P.tensor(Uint8Array.from(maskKeys), [1, 1, Nk]);
  const [tq, tkv] = [P.tensor(xq, [1, Nq, qDim]), P.tensor(xkv, [1, Nk, kvDim])];
  const got = await readAndDispose(att.forward(tq, tkv, mask));

  const lq = layerNormRef(xq, qDim, p['layernorm1.weight'], p['layernorm1.bias']);
  const lkv = layerNormRef(xkv, kvDim, p['layernorm2.weight'], p['layernorm2.bias']);
  const q = linearRef(lq, Nq, p['query.weight'], p['query.bias'], qk);
  const k = linearRef(lkv, Nk, p['key.weight'], p['key.bias'], qk);
  const vv = linearRef(lkv, Nk, p['value.weight'], p['value.bias'], v);
  const [dq, dv] = [qk / H, v / H];
  const want = new Float64Array(Nq * v);
  for (let h = 0; h < H; h++)
    for (let i = 0; i < Nq; i++) {
      const logits = new Float64Array(Nk);
      for (let j = 0; j < Nk; j++) {
        let s = 0;
        for (let c = 0; c < dq; c++) s += q[i * qk + h * dq + c] * k[j * qk + h * dq + c];
        logits[j] = maskKeys[j] ? s / Math.sqrt(dq) : -Infinity;
      }
      const w = softmaxRef(logits, Nk);
      for (let c = 0; c < dv; c++) {
        let s = 0;
        for (let j = 0; j < Nk; j++) s += w[j] * vv[j * v + h * dv + c];
        want[i * v + h * dv + c] = s;
      }
    }
  assertClose(t, got, want, { rtol: 1e-4, atol: 1e-5 });
  t.throws(() => att.forward(tq), { message: /needs 'inputs'/ });
  for (const x of [mask, tq, tkv]) x.dispose();
  att.dispose();
});

test('a cross-attention whose queries are broadcast over the batch normalises and projects one row, with the same result as dense queries', async (t) => {
  const att = new PerceiverSelfAttention({ isCrossAttention: true, qDim: 24, kvDim: 20, qkChannels: 16, vChannels: 16, numHeads: 2 });
  const sd: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(att.stateDict())) sd[k] = P.randn([...v.shape], { std: 0.5 });
  att.loadStateDict(sd);
  for (const v of Object.values(sd)) v.dispose();
  const row = P.randn([1, 5, 24]);
  const broadcast = P.broadcastTo(row, [3, 5, 24]);
  const dense = P.tidy(() => P.contiguous(broadcast).add(0)); // [3, 5, 24], its own rows
  const kv = P.randn([3, 7, 20]);
  const mask = P.tensor(Uint8Array.from({ length: 21 }, (_, i) => (i % 3 === 0 ? 0 : 1)), [3, 1, 7], { dtype: 'uint8' });
  const scale = P.tensor([1, 0, 2], [3, 1, 1]);
  for (const [m, s] of [[null, null], [mask, scale]] as const) {
    P.profiler.start({ shapes: true });
    const got = await readAndDispose(att.forward(broadcast, kv, m, s));
    const rows = P.profiler.stop().rows;
    const want = await readAndDispose(att.forward(dense, kv, m, s));
    assertClose(t, got, want, { rtol: 1e-6, atol: 1e-6 });
    t.true(rows.some((r) => r.op === 'layer_norm' && r.shape === '[1, 5, 24]'), 'one row normalised');
    t.true(rows.some((r) => r.op === 'matmul' && r.shape === '[1, 5, 16]'), 'one row projected');
  }
  // The keys and values' input wanting a gradient (weights frozen) keeps the one-row
  // queries: its gradient is the same as with dense queries.
  const kvGrad = (hs: Tensor) => {
    const x = kv.add(0); // a leaf of its own
    x.requiresGrad = true;
    const l = P.tidy(() => {
      let s = att.forward(hs, x).square();
      while (s.rank > 0) s = s.sum(0);
      return s;
    });
    l.backward();
    const g = Array.from(x.grad!.dataSync());
    for (const u of [x.grad!, x, l]) u.dispose();
    return g;
  };
  assertClose(t, kvGrad(broadcast), kvGrad(dense), { rtol: 1e-6, atol: 1e-6 });
  // Wanted gradients for the weights take every row, and reach the query weights.
  att.requiresGrad_(true);
  const loss = P.tidy(() => {
    let s = att.forward(broadcast, kv).square();
    while (s.rank > 0) s = s.sum(0);
    return s;
  });
  loss.backward();
  t.truthy(att.query.weight.grad, 'the query weight has a gradient');
  att.zeroGrad();
  for (const x of [row, broadcast, dense, kv, mask, scale, loss]) x.dispose();
  att.dispose();
});

test('the MLP is dense2(act(dense1(x))) with exact GELU for "gelu" and the tanh form for "gelu_new"', async (t) => {
  const [N, C, W] = [4, 5, 2];
  const x = randomArray(N * C, 3, -2, 2);
  const tx = P.tensor(x, [N, C]);
  for (const [act, ref] of [['gelu', geluRef], ['gelu_new', geluTanhRef], ['gelu_pytorch_tanh', geluTanhRef]] as const) {
    const mlp = new PerceiverMLP(C, W, { hiddenAct: act });
    const p = randomise(mlp, 20);
    const h = Array.from(linearRef(x, N, p['dense1.weight'], p['dense1.bias'], C * W), ref);
    const want = linearRef(h, N, p['dense2.weight'], p['dense2.bias'], C);
    assertClose(t, await readAndDispose(mlp.forward(tx)), want, { rtol: 1e-4, atol: 1e-5, msg: act });
    // A residual joins dense2's epilogue: the same sum, one rounding less.
    const r = randomArray(N * C, 4);
    const tr = P.tensor(r, [N, C]);
    assertClose(t, await readAndDispose(mlp.forward(tx, tr)), want.map((v, i) => v + r[i]), { rtol: 1e-4, atol: 1e-5, msg: `${act} + residual` });
    tr.dispose();
    mlp.dispose();
  }
  t.throws(() => new PerceiverMLP(C, 1, { hiddenAct: 'swish' as never }), { message: /unsupported activation 'swish'/ });
  tx.dispose();
});

test("HF's channel defaults: cross-attention qk from 'kv' or 'q', v follows qk, output = q_dim; self-attention output = v", (t) => {
  const sizes = (a: PerceiverAttention) => [a.self.qkChannels, a.self.vChannels, a.outputChannels];
  const kv = new PerceiverAttention({ isCrossAttention: true, qDim: 8, kvDim: 12, shapeForAttention: 'kv' });
  t.deepEqual(sizes(kv), [12, 12, 8]);
  const q = new PerceiverAttention({ isCrossAttention: true, qDim: 8, kvDim: 12, shapeForAttention: 'q' });
  t.deepEqual(sizes(q), [8, 8, 8]);
  const explicit = new PerceiverAttention({ isCrossAttention: true, qDim: 8, kvDim: 12, qkChannels: 4, vChannels: 6, numHeads: 2 });
  t.deepEqual(sizes(explicit), [4, 6, 8]);
  const self = new PerceiverAttention({ qDim: 8, qkChannels: 4, useQueryResidual: false });
  t.deepEqual(sizes(self), [4, 4, 4]);
  t.is(self.self.layernorm2, null, 'a self-attention has one LayerNorm');
  t.throws(() => new PerceiverAttention({ qDim: 8, qkChannels: 4, useQueryResidual: true }), { message: /query residual needs output channels \(4\) equal to q_dim \(8\)/ });
  t.throws(() => new PerceiverSelfAttention({ qDim: 8, numHeads: 3 }), { message: /qk_channels \(8\) must be divisible by num_heads \(3\)/ });
  for (const m of [kv, q, explicit, self]) m.dispose();
});

test('the encoder reuses one stack of self-attention weights in every block', async (t) => {
  const config = perceiverConfig({ d_latents: 8, d_model: 6, num_latents: 4, num_blocks: 3, num_self_attends_per_block: 2, num_self_attention_heads: 2, num_cross_attention_heads: 1 });
  const enc = new PerceiverEncoder(config, { kvDim: 6 });
  t.deepEqual(
    [...new Set(Object.keys(enc.stateDict()).map((k) => k.split('.').slice(0, 2).join('.')))],
    ['cross_attention.attention', 'cross_attention.layernorm', 'cross_attention.mlp', 'self_attends.0', 'self_attends.1'],
  );
  const lat = P.tensor(randomArray(2 * 4 * 8, 5), [2, 4, 8]);
  const inp = P.tensor(randomArray(2 * 7 * 6, 6), [2, 7, 6]);
  const got = await readAndDispose(enc.forward(lat, inp));
  const want = await readAndDispose(P.tidy(() => {
    let z = enc.crossAttention.forward(lat, inp);
    for (let b = 0; b < 3; b++) for (const layer of enc.selfAttends) z = layer.forward(z);
    return z;
  }));
  t.deepEqual(got, want);
  for (const x of [lat, inp]) x.dispose();
  enc.dispose();
});

test('a PerceiverLayer is attention then x + MLP(LayerNorm(x))', async (t) => {
  const layer = new PerceiverLayer({ qDim: 6, numHeads: 2, wideningFactor: 2 });
  randomise(layer, 40);
  const x = P.tensor(randomArray(2 * 3 * 6, 7), [2, 3, 6]);
  const got = await readAndDispose(layer.forward(x));
  const want = await readAndDispose(P.tidy(() => {
    const a = layer.attention.forward(x);
    return layer.mlp.forward(layer.layernorm.forward(a)).add(a);
  }));
  // The residual is added in dense2's epilogue, so the sum is rounded once, not twice.
  assertClose(t, got, want, { rtol: 1e-6, atol: 1e-6 });
  x.dispose();
  layer.dispose();
});

test('keyMask turns an HF attention_mask [B, M] of any dtype into a uint8 key mask [B, 1, M]', async (t) => {
  for (const m of [P.tensor(Int32Array.from([1, 1, 0, 0, 1, 0]), [2, 3]), P.tensor(new Float32Array([1, 1, 0, 0, 1, 0]), [2, 3])]) {
    const k = keyMask(m);
    t.is(k.dtype, 'uint8');
    t.deepEqual(k.shape, [2, 1, 3]);
    t.deepEqual(Array.from(await k.data()), [1, 1, 0, 0, 1, 0]);
    k.dispose();
    m.dispose();
  }
});

test('createModel builds the class config.architectures[0] names, for every HF fixture', (t) => {
  const cases = {
    mlm: 'PerceiverForMaskedLM',
    image_fourier: 'PerceiverForImageClassificationFourier',
    image_learned: 'PerceiverForImageClassificationLearned',
    image_conv: 'PerceiverForImageClassificationConvProcessing',
    optical_flow: 'PerceiverForOpticalFlow',
    multimodal: 'PerceiverForMultimodalAutoencoding',
  };
  for (const [name, cls] of Object.entries(cases)) {
    const model = createModel(caseConfig(name));
    t.is(model.constructor.name, cls, name);
    model.dispose();
  }
  t.throws(() => createModel({ architectures: ['BertForMaskedLM'] }), { message: /'BertForMaskedLM' is not supported/ });
  t.throws(() => createModel({}), { message: /architectures\[0\] must name the model class/ });
});

test('the building blocks check their arguments: type, name, expected and what came', (t) => {
  const cfg = M.perceiverConfig({ d_latents: 8, d_model: 6, num_latents: 4, num_self_attention_heads: 2, num_cross_attention_heads: 1, num_labels: 3 });
  const x = P.zeros([1, 3, 8]);
  const ints = P.zeros([1, 3], { dtype: 'int32' });
  const attn = new M.PerceiverAttention({ isCrossAttention: true, qDim: 8, kvDim: 6, numHeads: 2 });
  const fourier = new M.PerceiverFourierPositionEncoding({ numBands: 2, maxResolution: [2, 3] });
  const mm = new M.PerceiverMultimodalPostprocessor({ a: new M.PerceiverIdentityPostprocessor() });
  const cases: [() => unknown, RegExp][] = [
    [() => new M.PerceiverSelfAttention(undefined as never), /^PerceiverSelfAttention: argument 'opts' must be an object, got undefined/],
    [() => new M.PerceiverSelfAttention({ qDim: 'x' as never }), /^PerceiverSelfAttention: argument 'opts.qDim' must be an integer >= 1, got 'x'/],
    [() => new M.PerceiverAttention({ isCrossAttention: true, qDim: 8, kvDim: 'x' as never }), /^PerceiverAttention: argument 'opts.kvDim' must be an integer >= 1, got 'x'/],
    [() => new M.PerceiverAttention({ qDim: 8, isCrossAttention: 1 as never }), /argument 'opts.isCrossAttention' must be a boolean, got number 1/],
    [() => attn.forward(undefined as never, P.zeros([1, 5, 6])), /^PerceiverAttention.forward: argument 'hiddenStates' must be a Tensor \[B, Nq, qDim\], got undefined/],
    [() => attn.forward(x, 3 as never), /argument 'inputs' must be a Tensor \[B, Nk, kvDim\], got number 3/],
    [() => new M.PerceiverSelfOutput(8, 8).forward('x' as never), /^PerceiverSelfOutput.forward: argument 'x' must be a Tensor, got 'x'/],
    [() => new M.PerceiverMLP(6, 2, null as never), /^PerceiverMLP: argument 'opts' must be an object, got null/],
    [() => new M.PerceiverMLP(6, 2, { hiddenAct: 'swish' as never }), /unsupported activation 'swish': argument 'hiddenAct' must be one of 'gelu',.*got 'swish'/],
    [() => new M.PerceiverMLP(6, 2).forward({} as never), /^PerceiverMLP.forward: argument 'x' must be a Tensor, got Object/],
    [() => new M.PerceiverLayer(undefined as never), /^PerceiverLayer: argument 'opts' must be an object, got undefined/],
    [() => new M.PerceiverLayer({ qDim: 6, numHeads: 2 }).forward(P.zeros([7])), /^PerceiverLayer.forward: argument 'hiddenStates' must have rank 3 \[B, Nq, qDim\], got shape \[7\]/],
    [() => new M.PerceiverEncoder('x' as never, { kvDim: 6 }), /^PerceiverEncoder: argument 'config' must be an object, got 'x'/],
    [() => new M.PerceiverEncoder(cfg, null as never), /^PerceiverEncoder: argument 'opts' must be an object, got null/],
    [() => new M.PerceiverEncoder(cfg, { kvDim: 6 }).forward(x, null as never), /^PerceiverEncoder.forward: argument 'inputs' must be a Tensor \[B, M, kvDim\], got null/],
    [() => new M.PerceiverEmbeddings(4, 8).forward(1.5), /^PerceiverEmbeddings.forward: argument 'batchSize' must be an integer >= 0, got number 1.5/],
    [() => new M.PerceiverTrainablePositionEncoding(undefined as never, 4), /^PerceiverTrainablePositionEncoding: argument 'indexDims' must be an array of at least 1 integers, got undefined/],
    [() => new M.PerceiverTrainablePositionEncoding([2, 3], 4).forward(2, 'x' as never), /argument 'indexDims' must be an array of at least 1 integers, got 'x'/],
    [() => new M.PerceiverFourierPositionEncoding(undefined as never), /^PerceiverFourierPositionEncoding: argument 'opts' must be an object, got undefined/],
    [() => new M.PerceiverFourierPositionEncoding({ numBands: 1.5, maxResolution: [2, 3] }), /argument 'opts.numBands' must be an integer >= 1, got number 1.5/],
    [() => new M.PerceiverFourierPositionEncoding({ numBands: 2, maxResolution: 'x' as never }), /argument 'opts.maxResolution' must be an array of at least 1 integers, got 'x'/],
    [() => new M.PerceiverFourierPositionEncoding({ numBands: 2, maxResolution: [2, 3], sineOnly: 'x' as never }), /argument 'opts.sineOnly' must be a boolean, got 'x'/],
    [() => fourier.forward(2, [NaN, 3]), /^PerceiverFourierPositionEncoding.forward: argument 'indexDims\[0\]' must be an integer >= 1, got number NaN/],
    [() => fourier.atPositions(2, [0, 0.5] as never), /^PerceiverFourierPositionEncoding.atPositions: argument 'pos' must be a Float32Array of positions \[n, 2\], got array of length 2/],
    [() => M.fourierFeatures(M.linearPositions([2, 3]), { numBands: -1, maxResolution: [2, 3] }), /^fourierFeatures: argument 'opts.numBands' must be an integer >= 1, got number -1/],
    [() => M.fourierFeatures(M.linearPositions([2, 3]), { numBands: 2, maxResolution: [NaN, 3] }), /argument 'opts.maxResolution\[0\]' must be an integer >= 1, got number NaN/],
    [() => M.fourierFeatures(undefined as never, { numBands: 2, maxResolution: [2, 3] }), /^fourierFeatures: argument 'pos' must be a Float32Array/],
    [() => M.linspaceF32(0, 1, -1), /^linspaceF32: argument 'steps' must be an integer in \[0, 1073741824\], got number -1/],
    [() => M.linspaceF32('x' as never, 1, 5), /^linspaceF32: argument 'start' must be a finite number, got 'x'/],
    [() => M.linearPositions([1.5]), /^linearPositions: argument 'indexDims\[0\]' must be an integer >= 1, got number 1.5/],
    // Sizes past what JS arrays hold: the op's error, not the engine's allocation failure.
    [() => M.linspaceF32(0, 1, 2 ** 32), /^linspaceF32: argument 'steps' must be an integer in \[0, 1073741824\], got number 4294967296/],
    [() => M.linearPositions([2 ** 20, 2 ** 20]), /^linearPositions: argument 'indexDims' \(\[1048576, 1048576\]\) makes 2199023255552 coordinates, more than 1073741824/],
    [() => M.spaceToDepth(P.zeros([1, 2, 3, 4, 4]), {} as never, 2), /^spaceToDepth: argument 'temporalBlock' must be an integer >= 1, got Object/],
    [() => M.spaceToDepth('x' as never), /^spaceToDepth: argument 'frames' must be a Tensor/],
    [() => new M.PerceiverTextPreprocessor(null as never), /^PerceiverTextPreprocessor: argument 'config' must be an object, got null/],
    [() => new M.PerceiverTextPreprocessor(cfg).forward(3 as never), /^PerceiverTextPreprocessor.forward: argument 'ids' must be a Tensor, got number 3/],
    [() => new M.PerceiverImagePreprocessor(cfg, { prepType: 'pixels', spatialDownsample: 1, inChannels: 'x' as never }), /^PerceiverImagePreprocessor: argument 'opts.inChannels' must be an integer >= 1, got 'x'/],
    [() => new M.PerceiverImagePreprocessor(cfg, { prepType: 'pixels', spatialDownsample: 1, fourier: 'x' as never }), /argument 'opts.fourier' must be an object, got 'x'/],
    [() => new M.PerceiverAudioPreprocessor(cfg, { concatOrAddPos: 'both' as never }), /^PerceiverAudioPreprocessor: argument 'opts.concatOrAddPos' must be 'concat' or 'add', got 'both'/],
    [() => new M.PerceiverOneHotPreprocessor(cfg).forward(ints), /^PerceiverOneHotPreprocessor.forward: argument 'labels' must be float32 or bfloat16 or float16, got int32/],
    [() => new M.PerceiverMultimodalPreprocessor({ modalities: 5 as never }), /^PerceiverMultimodalPreprocessor: argument 'opts.modalities' must be an object, got number 5/],
    [() => new M.Conv2DDownsample({ numLayers: 1 } as never), /^Conv2DDownsample: argument 'opts' has unknown option 'numLayers' \(known: inChannels, outChannels, useBatchnorm, padding, initStd, device\)/],
    [() => new M.Conv2DDownsample().forward(undefined as never), /^Conv2DDownsample.forward: argument 'x' must be a Tensor \[B, H, W, C\] \(channels-last\), got undefined/],
    [() => new M.PerceiverIdentityPostprocessor().forward(ints), /^PerceiverIdentityPostprocessor.forward: argument 'inputs' must be float32 or bfloat16 or float16, got int32/],
    [() => mm.forward(x, { a: 'x' as never }), /^PerceiverMultimodalPostprocessor.forward: argument 'modalitySizes.a' must be an integer >= 0, got 'x'/],
    [() => mm.forward(x), /argument 'modalitySizes' must be an object, got undefined/],
    [() => new M.PerceiverMultimodalPostprocessor(undefined as never), /^PerceiverMultimodalPostprocessor: argument 'modalities' must be an object, got undefined/],
    [() => new M.PerceiverImagePostprocessor({ postprocType: 'pixels' }).forward('x' as never), /^PerceiverImagePostprocessor.forward: argument 'inputs' must be a Tensor/],
    [() => new M.PerceiverImagePostprocessor(null as never), /^PerceiverImagePostprocessor: argument 'opts' must be an object, got null/],
    [() => M.depthToSpace(P.zeros([1, 2, 2, 2, 12]), 1, 'x' as never), /^depthToSpace: argument 'spatialBlock' must be an integer >= 1, got 'x'/],
    [() => new M.ConvTranspose2d(3, 4, 2, 'x' as never), /^ConvTranspose2d: argument 'opts' must be an object, got 'x'/],
    [() => new M.Conv3DUpsample(3, 4, 1, 1, 5 as never), /^Conv3DUpsample: argument 'opts' must be an object, got number 5/],
    [() => new M.Conv2DUpsample(3, 4).forward(null as never), /^Conv2DUpsample.forward: argument 'x' must be a Tensor/],
    [() => setFastCrossAttention({} as never, true), /^setFastCrossAttention: argument 'module' must be a Module, got Object/],
  ];
  for (const [call, message] of cases) t.throws(call, { message }, String(message));
  for (const m of [attn, fourier, mm]) m.dispose();
  x.dispose();
  ints.dispose();
});

test('the building blocks refuse a misspelt option, naming the op, the argument and the key', async (t) => {
  const cfg = M.perceiverConfig({ d_latents: 8, d_model: 6, num_latents: 4, num_self_attention_heads: 2, num_cross_attention_heads: 1, num_labels: 3 });
  const fourier = { numBands: 2, maxResolution: [2, 3] };
  const table = new M.PerceiverTrainablePositionEncoding([2, 3], 4);
  const image = new M.PerceiverImagePreprocessor(cfg, { prepType: 'pixels', spatialDownsample: 1, fourier });
  const pixels = P.zeros([1, 3, 2, 3]);
  await assertUnknownOptions(t, [
    // The self-attention has no query residual: PerceiverAttention keeps it.
    [() => new M.PerceiverSelfAttention({ qDim: 8, useQueryResidual: false } as never), 'PerceiverSelfAttention', 'opts', 'useQueryResidual'],
    [() => new M.PerceiverAttention({ qDim: 8, numHead: 2 } as never), 'PerceiverAttention', 'opts', 'numHead'],
    [() => new M.PerceiverSelfOutput(8, 8, { initstd: 0.02 } as never), 'PerceiverSelfOutput', 'opts', 'initstd'],
    [() => new M.PerceiverMLP(6, 2, { activation: 'relu' } as never), 'PerceiverMLP', 'opts', 'activation'],
    [() => new M.PerceiverLayer({ qDim: 6, widening: 2 } as never), 'PerceiverLayer', 'opts', 'widening'],
    [() => new M.PerceiverEmbeddings(4, 8, { std: 1 } as never), 'PerceiverEmbeddings', 'opts', 'std'],
    [() => new M.PerceiverEncoder(cfg, { kvDim: 6, kv_dim: 6 } as never), 'PerceiverEncoder', 'opts', 'kv_dim'],
    [() => new M.PerceiverTrainablePositionEncoding([2, 3], 4, { devcie: 'cpu' } as never), 'PerceiverTrainablePositionEncoding', 'opts', 'devcie'],
    [() => table.forward(1, [2, 3], { interpolate: true } as never), 'PerceiverTrainablePositionEncoding.forward', 'opts', 'interpolate'],
    [() => new M.PerceiverFourierPositionEncoding({ ...fourier, concatPosition: false } as never), 'PerceiverFourierPositionEncoding', 'opts', 'concatPosition'],
    [() => M.fourierFeatures(M.linearPositions([2, 3]), { ...fourier, device: 'cpu' } as never), 'fourierFeatures', 'opts', 'device'],
    [() => new M.PerceiverTextPreprocessor(cfg, { dtype: 'float32' } as never), 'PerceiverTextPreprocessor', 'opts', 'dtype'],
    [() => new M.PerceiverImagePreprocessor(cfg, { prepType: 'pixels', fourier, positionEncoding: 'fourier' } as never), 'PerceiverImagePreprocessor', 'opts', 'positionEncoding'],
    [() => new M.PerceiverImagePreprocessor(cfg, { prepType: 'pixels', fourier: { ...fourier, bands: 4 } as never }), 'PerceiverImagePreprocessor', 'opts.fourier', 'bands'],
    [
      () => new M.PerceiverImagePreprocessor(cfg, { prepType: 'pixels', positionEncodingType: 'trainable', trainable: { indexDims: 6, numChannels: 4, initStd: 1 } as never }),
      'PerceiverImagePreprocessor', 'opts.trainable', 'initStd',
    ],
    [() => image.forward(pixels, { interpolatePosEncodng: true } as never), 'PerceiverImagePreprocessor.forward', 'opts', 'interpolatePosEncodng'],
    [() => new M.PerceiverAudioPreprocessor(cfg, { samplesPerPatches: 16 } as never), 'PerceiverAudioPreprocessor', 'opts', 'samplesPerPatches'],
    [() => new M.PerceiverAudioPreprocessor(cfg, { fourier: { ...fourier, sineonly: true } as never }), 'PerceiverAudioPreprocessor', 'opts.fourier', 'sineonly'],
    [() => new M.PerceiverMultimodalPreprocessor({ modalities: {}, maskProb: {} } as never), 'PerceiverMultimodalPreprocessor', 'opts', 'maskProb'],
    [() => new M.PerceiverClassificationPostprocessor(cfg, 8, { initStd: 0.02 } as never), 'PerceiverClassificationPostprocessor', 'opts', 'initStd'],
    [() => new M.PerceiverAudioPostprocessor(cfg, 8, { devices: 'cpu' } as never), 'PerceiverAudioPostprocessor', 'opts', 'devices'],
    [() => new M.PerceiverProjectionPostprocessor(8, 3, { init_std: 0.02 } as never), 'PerceiverProjectionPostprocessor', 'opts', 'init_std'],
    [() => new M.ConvTranspose2d(3, 4, 2, { dilation: 1 } as never), 'ConvTranspose2d', 'opts', 'dilation'],
    [() => new M.ConvTranspose3d(3, 4, 2, { groups: 1 } as never), 'ConvTranspose3d', 'opts', 'groups'],
    [() => new M.Conv2DUpsample(3, 4, { stride: 1 } as never), 'Conv2DUpsample', 'opts', 'stride'],
    [() => new M.Conv3DUpsample(3, 4, 1, 1, { padding: 0 } as never), 'Conv3DUpsample', 'opts', 'padding'],
    [() => new M.PerceiverImagePostprocessor({ postprocType: 'pixels', bias: false } as never), 'PerceiverImagePostprocessor', 'opts', 'bias'],
  ]);
  for (const m of [table, image]) m.dispose();
  pixels.dispose();
});
