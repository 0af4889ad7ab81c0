// PerceiverForMaskedLM against HuggingFace: the fixture is a small random HF model
// (test/fixtures/hf/mlm, see ../shared/fixtures/README.md), its inputs and the logits
// HF computed in float64. Also: the module tree's state-dict names are HF's exactly,
// padded ids do not matter, and the output has max_position_embeddings rows.
import test from 'ava';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { PerceiverForMaskedLM } from '../models/index.js';
import { fillMask, parseMaskedText } from '../models/fill-mask.js';
import { caseConfig, caseDir, caseTensors, loadCaseWeights, outputError } from './helpers/hf-fixture.js';
import { readAndDispose } from './helpers/read.js';
import { baseline, live } from './helpers/device.js';
import { assertUnknownOptions } from './helpers/options.js';

const CASE = caseDir('mlm');
const config = caseConfig('mlm');

async function loaded(): Promise<PerceiverForMaskedLM> {
  const model = new PerceiverForMaskedLM(config);
  await loadCaseWeights('mlm', model);
  return model;
}

test.serial('logits match HuggingFace within 1e-4 * max|expected|, and nothing leaks', async (t) => {
  const before = (await baseline());
  const model = await loaded();
  const input = await caseTensors('mlm', 'input', ['inputs', 'attention_mask']);
  const expected = await caseTensors('mlm', 'expected', ['logits']);
  const { logits } = model.forward(input.inputs, { attentionMask: input.attention_mask });
  t.deepEqual(logits.shape, [2, 48, 262]);
  const { maxDiff, bound, summary } = outputError(await logits.data(), await expected.logits.data());
  t.log(summary);
  t.true(maxDiff <= bound, `max |diff| ${maxDiff} exceeds ${bound}`);
  for (const x of [logits, ...Object.values(input), ...Object.values(expected)]) x.dispose();
  model.dispose();
  const after = live();
  t.is(after.tensors, before.tensors, 'live tensors');
  t.is(after.bytes, before.bytes, 'live bytes');
});

test('the state dict names and shapes are exactly those of the HF checkpoint', async (t) => {
  const model = new PerceiverForMaskedLM(config);
  const header = await P.readSafetensorsHeader(join(CASE, 'model.safetensors'));
  const ours = model.stateDict();
  t.deepEqual(Object.keys(ours).sort(), [...header.entries.keys()].sort());
  for (const [k, e] of header.entries) t.deepEqual([...ours[k].shape], e.shape, k);
  t.is(model.numParameters(), 212870, 'case.json num_parameters');
  model.dispose();
});

test('ids at padded positions (attention_mask 0) do not change any logit', async (t) => {
  const model = await loaded();
  const input = await caseTensors('mlm', 'input', ['inputs', 'attention_mask']);
  const ids = (await input.inputs.data()) as Int32Array;
  const mask = await input.attention_mask.data();
  t.true(Array.from(mask).some((m) => m === 0), 'the fixture has padding');
  const changed = Int32Array.from(ids, (v, i) => (mask[i] === 0 ? 6 + ((v * 7 + i) % 256) : v));
  const other = P.tensor(changed, [...input.inputs.shape]);
  const a = model.forward(input.inputs, { attentionMask: input.attention_mask }).logits;
  const b = model.forward(other, { attentionMask: input.attention_mask }).logits;
  t.deepEqual(await a.data(), await b.data());
  for (const x of [a, b, other, ...Object.values(input)]) x.dispose();
  model.dispose();
});

test('the attention mask matters: without it the padded row changes', async (t) => {
  const model = await loaded();
  const input = await caseTensors('mlm', 'input', ['inputs', 'attention_mask']);
  const a = await readAndDispose(model.forward(input.inputs, { attentionMask: input.attention_mask }).logits);
  const b = await readAndDispose(model.forward(input.inputs).logits);
  const row = 48 * 262;
  t.deepEqual(a.subarray(0, row), b.subarray(0, row), 'row 0 has no padding');
  t.notDeepEqual(a.subarray(row), b.subarray(row), 'row 1 is padded from position 31');
  for (const x of Object.values(input)) x.dispose();
  model.dispose();
});

test('the output always has max_position_embeddings rows; longer inputs are refused', async (t) => {
  const model = new PerceiverForMaskedLM(config);
  const short = P.tensor(Int32Array.from({ length: 2 * 10 }, (_, i) => 6 + i), [2, 10]);
  const { logits } = model.forward(short);
  t.deepEqual(logits.shape, [2, 48, 262]);
  const long = P.zeros([1, 49], { dtype: 'int32' });
  t.throws(() => model.forward(long), { message: /49 tokens exceed max_position_embeddings \(48\)/ });
  const floats = P.zeros([1, 4]);
  t.throws(() => model.forward(floats), { message: /argument 'inputs' must be int32, got float32/ });
  for (const x of [short, logits, long, floats]) x.dispose();
  model.dispose();
});

test('strict loading names what the checkpoint lacks or adds', async (t) => {
  const model = new PerceiverForMaskedLM(config);
  const sd = await P.loadSafetensors(join(CASE, 'model.safetensors'));
  const bias = sd['embedding_decoder.bias'];
  delete sd['embedding_decoder.bias'];
  sd['perceiver.extra'] = bias;
  t.throws(() => model.loadStateDict(sd), { message: /missing keys: embedding_decoder\.bias; unexpected keys: perceiver\.extra/ });
  for (const x of Object.values(sd) as Tensor[]) x.dispose();
  model.dispose();
});

test('a config whose channels do not divide by the heads is refused at construction', (t) => {
  t.throws(() => new PerceiverForMaskedLM({ ...config, qk_channels: 30 }), { message: /qk_channels \(30\) must be divisible by num_heads \(4\)/ });
  t.throws(() => new PerceiverForMaskedLM({ ...config, num_self_attention_heads: 5 }), { message: /d_latents \(96\) must be divisible by num_self_attention_heads \(5\)/ });
});

test('PerceiverForMaskedLM and fillMask: bad arguments are refused with the argument named, before any work', async (t) => {
  const model = new PerceiverForMaskedLM(config);
  const ids = P.zeros([1, 4], { dtype: 'int32' });
  const ids1 = P.zeros([4], { dtype: 'int32' });
  const outOfVocab = P.tensor([5, -1, 262, 7], [1, 4], { dtype: 'int32' });
  const bad: [() => unknown, RegExp][] = [
    [() => new PerceiverForMaskedLM(undefined as never), /^PerceiverForMaskedLM: argument 'config' must be an object, got undefined$/],
    [() => new PerceiverForMaskedLM([] as never), /^PerceiverForMaskedLM: argument 'config' must be an object, got array of length 0$/],
    [() => new PerceiverForMaskedLM(config, null as never), /^PerceiverForMaskedLM: argument 'opts' must be an object, got null$/],
    [() => new PerceiverForMaskedLM({ ...config, v_channels: true as never }), /^perceiverConfig: 'v_channels' must be null or a positive integer, got true$/],
    [() => new PerceiverForMaskedLM({ ...config, layer_norm_eps: 'x' as never }), /^perceiverConfig: 'layer_norm_eps' must be a finite number >= 0, got "x"$/],
    [() => model.forward(undefined as never), /^PerceiverForMaskedLM.forward: argument 'inputs' must be a Tensor \[B, N\], got undefined$/],
    [() => model.forward({} as never), /^PerceiverForMaskedLM.forward: argument 'inputs' must be a Tensor \[B, N\], got Object$/],
    [() => model.forward(ids1), /^PerceiverForMaskedLM.forward: argument 'inputs' must have rank 2 \[B, N\], got shape \[4\]$/],
    [() => model.forward(ids, null as never), /^PerceiverForMaskedLM.forward: argument 'opts' must be an object, got null$/],
    [() => model.forward(ids, { attentionMask: NaN as never }), /^PerceiverForMaskedLM.forward: argument 'opts.attentionMask' must be a Tensor \[B, N\], got number NaN$/],
    [() => model.forward(ids, { attentionMask: ids1 }), /^PerceiverForMaskedLM.forward: argument 'opts.attentionMask' must have rank 2 \[B, N\], got shape \[4\]$/],
    // Ids the host has seen out of the vocabulary: named here, not by the embedding's
    // error on a later data().
    [() => model.forward(outOfVocab), /^PerceiverForMaskedLM.forward: argument 'inputs' must hold token ids in \[0, 262\), got ids from -1 to 262$/],
    [() => parseMaskedText(5 as never), /^parseMaskedText: argument 'text' must be a string, got number 5$/],
    [() => parseMaskedText('<mask>', {} as never), /^parseMaskedText: argument 'tokenizer' must be a BytesTokenizer, got Object$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
  const badAsync: [() => Promise<unknown>, RegExp][] = [
    [() => fillMask(undefined as never, 'a<mask>'), /^fillMask: argument 'model' must be a PerceiverForMaskedLM, got undefined$/],
    [() => fillMask(model, null as never), /^fillMask: argument 'text' must be a string, got null$/],
    [() => fillMask(model, 'a<mask>', null as never), /^fillMask: argument 'opts' must be an object, got null$/],
  ];
  for (const [f, message] of badAsync) await t.throwsAsync(f, { message }, String(message));
  for (const v of [ids, ids1, outOfVocab]) v.dispose();
  model.dispose();
});

test('PerceiverForMaskedLM and fillMask refuse a misspelt option, naming the op, the argument and the key', async (t) => {
  const model = new PerceiverForMaskedLM(config);
  const ids = P.zeros([1, 4], { dtype: 'int32' });
  await assertUnknownOptions(t, [
    [() => new PerceiverForMaskedLM(config, { devcie: 'cpu' } as never), 'PerceiverForMaskedLM', 'opts', 'devcie'],
    [() => model.forward(ids, { attention_mask: ids } as never), 'PerceiverForMaskedLM.forward', 'opts', 'attention_mask'],
    [() => fillMask(model, 'a<mask>', { top_k: 3 } as never), 'fillMask', 'opts', 'top_k'],
  ]);
  ids.dispose();
  model.dispose();
});
