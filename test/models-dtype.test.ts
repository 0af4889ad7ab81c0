// The HF fixture models in 16 bits: a model cast with to('bfloat16' | 'float16'), and a
// float32 model under autocast('bfloat16') (mixed precision), against HF's float32
// outputs and gradients (test/fixtures/hf). 16-bit results carry their own rounding,
// so the bounds are the dtype's, not the README's float32 ones:
// - bfloat16 keeps 8 significant bits (2^-9 relative per rounding), float16 11; through
//   these models' layers the outputs measured 0.3-1.6% (bfloat16) and 0.03-0.5%
//   (float16) of max|expected| off. Bounds: 3% and 0.8% of max(1, max|expected|).
// - Pure rounding error shrinks with the mantissa: float16's error must also be under
//   half of bfloat16's (it measured 1/5 to 1/10). A wrong formula or a lost cast would
//   give the same error in both, or an error far above either bound.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { createModel, forwardNamed, loadModel, type LoadedModel } from '../models/index.js';
import { caseConfig, caseDir, diffAndScale, loadCaseWeights } from './helpers/hf-fixture.js';
import { readAndDispose } from './helpers/read.js';
import { baseline, live } from './helpers/device.js';

const CASES = ['mlm', 'image_fourier', 'image_learned', 'optical_flow', 'multimodal', 'image_conv'];
const OUTPUT_TOL = { bfloat16: 3e-2, float16: 8e-3 } as const;

type Mode = 'bfloat16' | 'float16' | 'autocast';

async function caseInputs(name: string): Promise<{ inputs: Record<string, Tensor>; all: Record<string, Tensor> }> {
  const all = await P.loadSafetensors(join(caseDir(name), 'input.safetensors'));
  const inputs: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(all)) if (!k.startsWith('loss_weights.')) inputs[k] = v;
  return { inputs, all };
}

/** Worst max|got - want| / max(1, max|want|) over the case's outputs, and the outputs' dtypes. */
async function outputErrors(name: string, mode: Mode): Promise<{ rel: number; dtypes: string[] }> {
  const model = createModel(caseConfig(name)) as LoadedModel;
  await loadCaseWeights(name, model);
  if (mode !== 'autocast') model.to(mode);
  const { all, inputs } = await caseInputs(name);
  const expected = await P.loadSafetensors(join(caseDir(name), 'expected.safetensors'));
  const { outputs } = await (mode === 'autocast' ? P.autocast('bfloat16', () => forwardNamed(model, inputs)) : forwardNamed(model, inputs));
  let rel = 0;
  const dtypes: string[] = [];
  for (const [k, out] of Object.entries(outputs)) {
    dtypes.push(out.dtype);
    const [g, w] = [await out.data(), await expected[k].data()];
    const { maxDiff, maxAbs } = diffAndScale(g, w);
    rel = Math.max(rel, maxDiff / Math.max(1, maxAbs));
  }
  for (const v of [...Object.values(all), ...Object.values(expected), ...Object.values(outputs)]) v.dispose();
  model.dispose();
  return { rel, dtypes };
}

for (const name of CASES)
  test(`${name}: bfloat16 and float16 models, and float32 under autocast, match HF's float32 outputs within their dtype's rounding`, async (t) => {
    const bf = await outputErrors(name, 'bfloat16');
    const half = await outputErrors(name, 'float16');
    const ac = await outputErrors(name, 'autocast');
    t.log(`bfloat16 ${bf.rel.toExponential(2)}, float16 ${half.rel.toExponential(2)}, autocast bfloat16 ${ac.rel.toExponential(2)}`);
    t.true(bf.dtypes.every((d) => d === 'bfloat16') && ac.dtypes.every((d) => d === 'bfloat16'), 'bfloat16 outputs');
    t.true(half.dtypes.every((d) => d === 'float16'), 'float16 outputs');
    t.true(bf.rel <= OUTPUT_TOL.bfloat16, `bfloat16 within ${OUTPUT_TOL.bfloat16}`);
    t.true(ac.rel <= OUTPUT_TOL.bfloat16, `autocast within ${OUTPUT_TOL.bfloat16}`);
    t.true(half.rel <= OUTPUT_TOL.float16, `float16 within ${OUTPUT_TOL.float16}`);
    t.true(half.rel < bf.rel / 2, 'a rounding error: float16 (11 bits) is well under bfloat16 (8 bits)');
  });

// Gradients of mixed precision: the fixtures' loss (sum of outputs times loss_weights, in
// float32), forward and backward under autocast, gradients on the float32 parameters.
// Parameter gradients sum many 16-bit products, and some true gradients are ~0 (key
// biases), so the bound mixes the tensor's own scale and the case's largest gradient G,
// bound = a * max|grad| + b * G per tensor; the worst tensor measured at most 60% of it.
const GRAD_TOL = { bfloat16: [0.06, 0.024], float16: [0.012, 0.004] } as const;

async function gradErrors(name: string, dtype: 'bfloat16' | 'float16'): Promise<{ worst: number; gradDtypes: Set<string>; checked: number }> {
  const model = createModel(caseConfig(name)) as LoadedModel;
  await loadCaseWeights(name, model);
  model.requiresGrad_(true);
  const { all, inputs } = await caseInputs(name);
  const expected = await P.loadSafetensors(join(caseDir(name), 'expected.safetensors'));
  const G = (JSON.parse(readFileSync(join(caseDir(name), 'case.json'), 'utf8')) as { max_abs_grad: number }).max_abs_grad;
  const { outputs } = await P.autocast(dtype, () => forwardNamed(model, inputs));
  const loss = P.tidy(() => {
    let total: Tensor | null = null;
    for (const [k, out] of Object.entries(outputs)) {
      let s = out.cast('float32').mul(all[`loss_weights.${k}`]);
      while (s.rank > 0) s = s.sum(0);
      total = total ? total.add(s) : s;
    }
    return total!;
  });
  loss.backward();
  const [tb, tg] = GRAD_TOL[dtype];
  let worst = 0;
  let checked = 0;
  const gradDtypes = new Set<string>();
  for (const [pname, param] of model.namedParameters()) {
    const want = expected[`grad.${pname}`];
    if (!want || !param.grad) continue;
    gradDtypes.add(param.grad.dtype);
    const [g, w] = [await param.grad.data(), await want.data()];
    const { maxDiff, maxAbs } = diffAndScale(g, w);
    worst = Math.max(worst, maxDiff / (tb * maxAbs + tg * G));
    checked++;
  }
  for (const v of [...Object.values(all), ...Object.values(expected), ...Object.values(outputs), loss]) v.dispose();
  model.dispose();
  return { worst, gradDtypes, checked };
}

for (const name of CASES)
  test(`${name}: mixed-precision gradients (bfloat16 and float16 autocast) reach the float32 parameters and match HF's`, async (t) => {
    const bf = await gradErrors(name, 'bfloat16');
    const half = await gradErrors(name, 'float16');
    t.log(`worst share of the bound: bfloat16 ${bf.worst.toFixed(3)}, float16 ${half.worst.toFixed(3)}`);
    t.deepEqual([...bf.gradDtypes, ...half.gradDtypes], ['float32', 'float32'], 'master gradients are float32');
    t.true(bf.checked > 10, `${bf.checked} gradients checked`);
    t.true(bf.worst <= 1, 'bfloat16 within its bound');
    t.true(half.worst <= 1, 'float16 within its bound');
  });

test("loadModel(dir, { dtype: 'bfloat16' }) holds bfloat16 weights equal to the float32 ones rounded, and runs", async (t) => {
  const m32 = await loadModel(caseDir('image_conv'), { dtype: 'float32' });
  const m16 = await loadModel(caseDir('image_conv'), { dtype: 'bfloat16' });
  const s32 = m32.stateDict();
  for (const [k, v] of Object.entries(m16.stateDict())) {
    t.is(v.dtype, s32[k].dtype === 'int32' ? 'int32' : 'bfloat16', k);
    if (v.dtype === 'bfloat16') t.deepEqual(await v.data(), await readAndDispose(s32[k].cast('bfloat16')), `${k}: round to nearest even, as a cast`);
  }
  const { inputs, all } = await caseInputs('image_conv');
  const { outputs } = await forwardNamed(m16, inputs);
  t.is(outputs.logits.dtype, 'bfloat16');
  for (const v of [...Object.values(all), ...Object.values(outputs)]) v.dispose();
  m32.dispose();
  m16.dispose();
});

test.serial("to() after a forward: the caches of the old weights (folded queries, latent views) are dropped, nothing leaks", async (t) => {
  const before = (await baseline());
  const model = createModel(caseConfig('image_fourier')) as LoadedModel;
  await loadCaseWeights('image_fourier', model);
  const { inputs, all } = await caseInputs('image_fourier');
  const first = await forwardNamed(model, inputs);
  t.is(first.outputs.logits.dtype, 'float32');
  model.to('bfloat16');
  const second = await forwardNamed(model, inputs);
  t.is(second.outputs.logits.dtype, 'bfloat16', 'the cached float32 fold is not reused');
  for (const v of [...Object.values(all), ...Object.values(first.outputs), ...Object.values(second.outputs)]) v.dispose();
  model.dispose();
  const after = live();
  t.is(after.tensors, before.tensors, 'live tensors');
  t.is(after.bytes, before.bytes, 'live bytes');
});
