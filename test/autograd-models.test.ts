// Gradients of whole models against HuggingFace's (test/fixtures/hf/<case>/expected.safetensors,
// grad.<parameter>): loss = sum over outputs of output * loss_weights.<output>, eval mode, as
// the fixtures README defines; tolerance 1e-4 * max(1, max |expected|) + 1e-5 * G per tensor.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { createModel, forwardNamed, type LoadedModel } from '../models/index.js';
import { caseConfig, caseDir, loadCaseWeights } from './helpers/hf-fixture.js';

async function gradCase(t: import('ava').ExecutionContext, name: string): Promise<void> {
  const model = createModel(caseConfig(name)) as LoadedModel;
  await loadCaseWeights(name, model);
  model.requiresGrad_(true);
  const all = await P.loadSafetensors(join(caseDir(name), 'input.safetensors'));
  const expected = await P.loadSafetensors(join(caseDir(name), 'expected.safetensors'));
  const G = (JSON.parse(readFileSync(join(caseDir(name), 'case.json'), 'utf8')) as { max_abs_grad: number }).max_abs_grad;
  const inputs: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(all)) if (!k.startsWith('loss_weights.')) inputs[k] = v;
  const { outputs } = await forwardNamed(model, inputs);
  const loss = P.tidy(() => {
    let total: Tensor | null = null;
    for (const [k, out] of Object.entries(outputs)) {
      const w = all[`loss_weights.${k}`];
      t.truthy(w, `loss weights for ${k}`);
      let s = out.mul(w);
      while (s.rank > 0) s = s.sum(0);
      total = total ? total.add(s) : s;
    }
    return total!;
  });
  loss.backward();
  let checked = 0;
  const worst: string[] = [];
  for (const [pname, param] of model.namedParameters()) {
    const want = expected[`grad.${pname}`];
    if (!want) continue;
    const w = await want.data();
    // A parameter the graph never reached has no .grad (PyTorch: None); HF's is then ~0
    // (the one-head fast path never uses the key bias, whose true gradient is 0).
    const got = param.grad ? await param.grad.data() : new Float32Array(w.length);
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < w.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[i] - w[i]) || (Number.isNaN(got[i]) ? Infinity : 0));
      maxAbs = Math.max(maxAbs, Math.abs(w[i]));
    }
    const bound = 1e-4 * Math.max(1, maxAbs) + 1e-5 * G;
    if (!(maxDiff <= bound)) worst.push(`${pname}: max |diff| ${maxDiff.toExponential(3)} > bound ${bound.toExponential(3)}`);
    checked++;
  }
  t.deepEqual(worst, [], 'every gradient within the README bound');
  t.true(checked > 10, `${checked} gradients checked`);
  for (const v of [...Object.values(all), ...Object.values(expected), ...Object.values(outputs), loss]) v.dispose();
  model.dispose();
}

for (const name of ['mlm', 'image_fourier', 'image_learned', 'optical_flow', 'multimodal', 'image_conv'])
  test(`${name}: every parameter's gradient matches HF's`, (t) => gradCase(t, name));
