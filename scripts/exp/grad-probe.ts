import * as P from '../../lib/index.js';
import { PerceiverForImageClassificationConvProcessing } from '../../models/index.js';
const model = new PerceiverForImageClassificationConvProcessing({ d_latents: 64, num_latents: 16, d_model: 32 + 2 + 2 * 2 * 8, num_blocks: 1, num_self_attends_per_block: 2,
  num_self_attention_heads: 4, num_cross_attention_heads: 1, num_labels: 10, image_channels: 1, conv_out_channels: 32, image_fourier_bands: 8, image_fourier_max_resolution: [7, 7], conv_padding: 'same', initializer_range: Number(process.env.INIT ?? 0.02) });
model.requiresGrad_(true);
const x = P.rand([8, 1, 28, 28], { seed: 3 });
const y = P.tensor(Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), [8]);
const opt = new P.optim.AdamW(model.parameters(), { lr: 1e-3 });
for (let s = 0; s < 30; s++) {
  const loss = P.tidy(() => P.crossEntropy(model.forward(x).logits, y));
  loss.backward();
  if (s === -1) for (const [n, p] of model.namedParameters()) { const g = p.grad ? await P.optim.norm(p.grad).data() : null; console.log(n, g ? g[0].toExponential(2) : 'NULL'); }
  opt.step(); opt.zeroGrad();
  if (s % 5 === 0) console.log(s, (await loss.data())[0]);
  loss.dispose();
}
