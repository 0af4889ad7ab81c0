// The trainable latent array z0 [num_latents, d_latents] (HF's PerceiverEmbeddings.latents).
import { broadcastTo, tidy, computeDtype, initNormal, keep, needsCast, needsGrad, toDtype, Module, type Tensor, type InitOptions } from '../lib/index.js';
import { markStaticQueries } from './attention.js';
import { INIT_OPTIONS, intArg, knownKeysArg, objectArg } from './args.js';
import { cachedIn } from './lru.js';

/** Batch sizes whose latents views a module keeps (least recently used out first). */
export const LATENT_VIEWS_KEPT = 8;

export class PerceiverEmbeddings extends Module {
  // One broadcast view per batch size, reused across calls: the encoder's one-head
  // cross-attention caches its folded queries by the view's identity. A server that
  // sees every batch size up to its limit keeps the last LATENT_VIEWS_KEPT, not one each.
  private views: { latents: Tensor; byBatch: Map<number, Tensor> } | null = null;

  constructor(numLatents: number, dLatents: number, opts: InitOptions = {}) {
    super();
    intArg('PerceiverEmbeddings', 'numLatents', numLatents, 1);
    intArg('PerceiverEmbeddings', 'dLatents', dLatents, 1);
    objectArg('PerceiverEmbeddings', 'opts', opts);
    knownKeysArg('PerceiverEmbeddings', 'opts', opts, INIT_OPTIONS);
    this.registerParameter('latents', initNormal([numLatents, dLatents], opts.initStd ?? 1, opts.device));
  }

  get latents(): Tensor {
    return this.tensor('latents');
  }

  /**
   * The latents over the batch: [B, N, C], a broadcast view (ops read it in place;
   * nothing is copied). The view belongs to this module and is reused by later calls
   * with this batch size while it is among the last LATENT_VIEWS_KEPT used (the module
   * disposes older ones): do not dispose it, nor keep it past the call that uses it. While training (the latents require gradients) each call gets
   * a fresh view instead, owned by the caller's tidy(), since it carries that step's
   * gradient graph.
   */
  forward(batchSize: number): Tensor {
    intArg('PerceiverEmbeddings.forward', 'batchSize', batchSize, 0);
    const latents = this.latents;
    // Under autocast the latents are cast first, then broadcast: the cast copies [N, C] only.
    const dt = computeDtype(latents);
    if (needsGrad(latents) || needsCast(latents, dt)) {
      const [n, c] = latents.shape;
      return tidy(() => broadcastTo(toDtype(latents, dt), [batchSize, n, c]));
    }
    if (this.views?.latents !== latents) {
      this.disposeViews();
      this.views = { latents, byBatch: new Map() };
    }
    // A disposed view is dropped and made again.
    return cachedIn(
      this.views.byBatch,
      batchSize,
      () => {
        const [n, c] = latents.shape;
        return markStaticQueries(keep(broadcastTo(latents, [batchSize, n, c])));
      },
      LATENT_VIEWS_KEPT,
    );
  }

  private disposeViews(): void {
    if (this.views) for (const v of this.views.byBatch.values()) v.dispose();
    this.views = null;
  }

  protected override onDispose(): void {
    this.disposeViews();
  }

  /** The cached views are of the latents to() replaced. */
  protected override onTo(): void {
    this.disposeViews();
  }
}
