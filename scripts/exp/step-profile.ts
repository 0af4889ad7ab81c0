import * as P from '../../lib/index.js';
import { PerceiverForImageClassificationConvProcessing } from '../../models/index.js';
const B = Number(process.env.B ?? 64);
const model = new PerceiverForImageClassificationConvProcessing({ d_latents: 128, num_latents: 32, d_model: 66, num_blocks: 1, num_self_attends_per_block: 4,
  num_self_attention_heads: 4, num_cross_attention_heads: 1, num_labels: 10, image_channels: 1, conv_out_channels: 32, image_fourier_bands: 8,
  image_fourier_max_resolution: [7, 7], conv_padding: 'same', initializer_range: 0.1, image_mean: [0.13], image_std: [0.3] });
model.train().requiresGrad_(true);
const opt = new P.optim.AdamW(model.parameters(), { lr: 1e-3 });
const x = P.rand([B, 1, 28, 28], { seed: 1 });
const y = P.tensor(Int32Array.from({ length: B }, (_, i) => i % 10), [B]);
const sync = async (t: P.Tensor) => { await t.data(); };
const time: Record<string, number> = { fwd: 0, bwd: 0, step: 0 };
for (let s = 0; s < 8; s++) {
  let t0 = performance.now();
  const loss = P.tidy(() => P.crossEntropy(model.forward(x).logits, y));
  await sync(loss); let t1 = performance.now(); if (s >= 3) time.fwd += t1 - t0;
  loss.backward();
  await sync(model.parameters()[0].grad!); for (const p of model.parameters()) if (p.grad) await sync(p.grad);
  let t2 = performance.now(); if (s >= 3) time.bwd += t2 - t1;
  opt.step(); opt.zeroGrad();
  await sync(model.parameters()[model.parameters().length - 1]);
  const t3 = performance.now(); if (s >= 3) time.step += t3 - t2;
  loss.dispose();
}
console.log(Object.fromEntries(Object.entries(time).map(([k, v]) => [k, (v / 5).toFixed(1) + ' ms'])), 'params', model.parameters().length);
const pr = (globalThis as any).__prof; if (pr) console.log(Object.entries(pr).sort((a: any, b: any) => b[1] - a[1]).map(([k, v]: any) => `${k} ${(v / 8).toFixed(1)}`).join('\n'));
