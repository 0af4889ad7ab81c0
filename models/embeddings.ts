// The trainable latent array z0 [num_latents, d_latents] (HF's PerceiverEmbeddings.latents).
import { broadcastTo, randn, Module, type Tensor, type InitOptions } from '../lib/index.js';

export class PerceiverEmbeddings extends Module {
  constructor(numLatents: number, dLatents: number, opts: InitOptions = {}) {
    super();
    this.registerParameter('latents', randn([numLatents, dLatents], { std: opts.initStd ?? 1, device: opts.device }));
  }

  get latents(): Tensor {
    return this.tensor('latents');
  }

  /** The latents over the batch: [B, N, C], a broadcast view (ops read it in place; nothing is copied). */
  forward(batchSize: number): Tensor {
    const [n, c] = this.latents.shape;
    return broadcastTo(this.latents, [batchSize, n, c]);
  }
}
