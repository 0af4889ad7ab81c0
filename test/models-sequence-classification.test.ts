// PerceiverForSequenceClassification: HF's text classifier (no released checkpoint, no
// fixture). Its encoder is the MLM's (the mlm fixture's weights load into it), its
// decoder one trainable query attending to the latents; the logits are checked against
// a plain-JS double-precision rendering of HF's decoder on the model's own latents.
import test from 'ava';
import * as P from '../lib/index.js';
import { PerceiverForMaskedLM, PerceiverForSequenceClassification, createModel } from '../models/index.js';
import { caseConfig, caseTensors, loadCaseWeights } from './helpers/hf-fixture.js';
import { readAndDispose } from './helpers/read.js';
import { assertUnknownOptions } from './helpers/options.js';
import { assertClose, attentionRef, erf, layerNormRef, matmulRef, randomArray } from './helpers/reference.js';

type Arr = ArrayLike<number>;
const linearRef = (x: Arr, m: number, w: Arr, b: Arr, n: number) => matmulRef(x, [m, x.length / m], w, [n, w.length / n], { transB: true, bias: b }).data;
const add = (a: Arr, b: Arr) => Float64Array.from(a, (v, i) => v + b[i]);

test('HF names and shapes: the MLM encoder plus decoder.decoder.{output_position_encodings, decoding_cross_attention, final_layer}', (t) => {
  const model = createModel({ ...caseConfig('mlm'), architectures: ['PerceiverForSequenceClassification'], id2label: { 0: 'neg', 1: 'pos', 2: 'mixed' } });
  t.true(model instanceof PerceiverForSequenceClassification);
  const sd = model.stateDict();
  t.deepEqual(sd['perceiver.decoder.decoder.output_position_encodings.position_embeddings'].shape, [1, 96]);
  t.deepEqual(sd['perceiver.decoder.decoder.final_layer.weight'].shape, [3, 96], 'num_labels from id2label');
  t.deepEqual(sd['perceiver.decoder.decoder.decoding_cross_attention.attention.self.query.weight'].shape, [96, 96]);
  t.deepEqual(sd['perceiver.input_preprocessor.embeddings.weight'].shape, [262, 64]);
  t.false(Object.keys(sd).some((k) => k.startsWith('embedding_decoder')), 'no MLM head');
  model.dispose();
});

test('logits [B, num_labels] match a double-precision rendering of HF\'s classification decoder; the latents match the MLM\'s', async (t) => {
  const cfg = { ...caseConfig('mlm'), num_labels: 3 };
  const model = new PerceiverForSequenceClassification(cfg);
  // The encoder from the MLM fixture (strict off: the decoder is not in that file), the decoder seeded.
  const mlm = new PerceiverForMaskedLM(caseConfig('mlm'));
  await loadCaseWeights('mlm', mlm);
  const shared = Object.fromEntries(Object.entries(mlm.stateDict()).filter(([k]) => k.startsWith('perceiver.') && !k.startsWith('perceiver.decoder.')));
  model.loadStateDict(shared, { strict: false });
  const p: Record<string, Float32Array> = {};
  const dec: Record<string, P.Tensor> = {};
  let seed = 40;
  for (const [k, v] of Object.entries(model.stateDict()))
    if (k.startsWith('perceiver.decoder.')) {
      p[k.slice('perceiver.decoder.decoder.'.length)] = randomArray(v.size, seed++, -0.3, 0.3);
      dec[k] = P.tensor(p[k.slice('perceiver.decoder.decoder.'.length)], [...v.shape]);
    }
  model.loadStateDict(dec, { strict: false });

  const { inputs, attention_mask } = await caseTensors('mlm', 'input', ['inputs', 'attention_mask']);
  const logits = await readAndDispose(model.forward(inputs, { attentionMask: attention_mask }).logits);
  const B = inputs.shape[0];
  t.is(logits.length, B * 3);
  const z = await readAndDispose(model.perceiver.forward(inputs, { attentionMask: attention_mask }).lastHiddenState);
  const zMlm = await readAndDispose(mlm.perceiver.forward(inputs, { attentionMask: attention_mask }).lastHiddenState);
  assertClose(t, z, zMlm, { rtol: 1e-6, atol: 1e-6, msg: 'same encoder' });

  const [N, C] = [16, 96];
  const x = 'decoding_cross_attention.';
  const want: number[] = [];
  for (let b = 0; b < B; b++) {
    const q0 = p['output_position_encodings.position_embeddings'];
    const zb = z.subarray(b * N * C, (b + 1) * N * C);
    const hs = layerNormRef(q0, C, p[x + 'attention.self.layernorm1.weight'], p[x + 'attention.self.layernorm1.bias']);
    const kv = layerNormRef(zb, C, p[x + 'attention.self.layernorm2.weight'], p[x + 'attention.self.layernorm2.bias']);
    const q = linearRef(hs, 1, p[x + 'attention.self.query.weight'], p[x + 'attention.self.query.bias'], C);
    const k = linearRef(kv, N, p[x + 'attention.self.key.weight'], p[x + 'attention.self.key.bias'], C);
    const v = linearRef(kv, N, p[x + 'attention.self.value.weight'], p[x + 'attention.self.value.bias'], C);
    const att = attentionRef(q, k, v, { B: 1, Nq: 1, Nk: N, H: 1, Dqk: C, Dv: C });
    const a = add(linearRef(att, 1, p[x + 'attention.output.dense.weight'], p[x + 'attention.output.dense.bias'], C), q0);
    const h = linearRef(layerNormRef(a, C, p[x + 'layernorm.weight'], p[x + 'layernorm.bias']), 1, p[x + 'mlp.dense1.weight'], p[x + 'mlp.dense1.bias'], C);
    const gelu = h.map((u) => 0.5 * u * (1 + erf(u / Math.SQRT2)));
    const out = add(linearRef(gelu, 1, p[x + 'mlp.dense2.weight'], p[x + 'mlp.dense2.bias'], C), a);
    want.push(...linearRef(out, 1, p['final_layer.weight'], p['final_layer.bias'], 3));
  }
  assertClose(t, logits, want, { rtol: 1e-4, atol: 1e-4 });
  for (const v of [inputs, attention_mask, ...Object.values(dec)]) v.dispose();
  model.dispose();
  mlm.dispose();
});

test("queryMask reaches the decoder: under 'deepmind' masking the one query changes the logits, an all-ones mask does not; 'hf' refuses it", async (t) => {
  const tiny = { num_latents: 4, d_latents: 8, d_model: 8, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 2, num_cross_attention_heads: 1, max_position_embeddings: 6, num_labels: 3 };
  const model = new PerceiverForSequenceClassification({ ...tiny, attention_mask_style: 'deepmind' });
  const ids = P.tensor(Int32Array.from([7, 8, 9]), [1, 3], { dtype: 'int32' });
  const off = P.zeros([1, 1]);
  const on = P.ones([1, 1]);
  const plain = Array.from(await readAndDispose(model.forward(ids).logits));
  const masked = Array.from(await readAndDispose(model.forward(ids, { queryMask: off }).logits));
  const kept = Array.from(await readAndDispose(model.forward(ids, { queryMask: on }).logits));
  t.notDeepEqual(masked, plain, 'a masked query has no attention output');
  t.deepEqual(kept, plain);
  const hf = new PerceiverForSequenceClassification(tiny);
  t.throws(() => hf.forward(ids, { queryMask: on }), { instanceOf: TypeError, message: /attention_mask_style 'deepmind'/ });
  for (const v of [ids, off, on]) v.dispose();
  model.dispose();
  hf.dispose();
});

test('PerceiverForSequenceClassification: bad arguments are refused with the argument named', (t) => {
  const config = { ...caseConfig('mlm'), architectures: ['PerceiverForSequenceClassification'] };
  const model = new PerceiverForSequenceClassification(config);
  const ids = P.zeros([1, 4], { dtype: 'int32' });
  const floats = P.zeros([1, 4]);
  const bad: [() => unknown, RegExp][] = [
    [() => new PerceiverForSequenceClassification(null as never), /^PerceiverForSequenceClassification: argument 'config' must be an object, got null$/],
    [() => new PerceiverForSequenceClassification(config, 5 as never), /^PerceiverForSequenceClassification: argument 'opts' must be an object, got number 5$/],
    [() => new PerceiverForSequenceClassification({ ...config, num_labels: 1.5 }), /^perceiverConfig: 'num_labels' must be an integer >= 0, got 1.5$/],
    [() => model.forward(null as never), /^PerceiverForSequenceClassification.forward: argument 'inputs' must be a Tensor \[B, N\], got null$/],
    [() => model.forward(floats), /^PerceiverForSequenceClassification.forward: argument 'inputs' must be int32, got float32$/],
    [() => model.forward(ids, null as never), /^PerceiverForSequenceClassification.forward: argument 'opts' must be an object, got null$/],
    [() => model.forward(ids, { attentionMask: 'x' as never }), /^PerceiverForSequenceClassification.forward: argument 'opts.attentionMask' must be a Tensor \[B, N\], got 'x'$/],
    [() => model.forward(ids, { queryMask: {} as never }), /^PerceiverForSequenceClassification.forward: argument 'opts.queryMask' must be a Tensor \[B, 1\], got Object$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
  for (const v of [ids, floats]) v.dispose();
  model.dispose();
});

test('PerceiverForSequenceClassification refuses a misspelt option, naming the op, the argument and the key', async (t) => {
  const config = { ...caseConfig('mlm'), architectures: ['PerceiverForSequenceClassification'] };
  const model = new PerceiverForSequenceClassification(config);
  const ids = P.zeros([1, 4], { dtype: 'int32' });
  await assertUnknownOptions(t, [
    [() => new PerceiverForSequenceClassification(config, { dtype: 'bfloat16' } as never), 'PerceiverForSequenceClassification', 'opts', 'dtype'],
    [() => model.forward(ids, { mask: ids } as never), 'PerceiverForSequenceClassification.forward', 'opts', 'mask'],
  ]);
  ids.dispose();
  model.dispose();
});
