// A worker thread of the input pipeline: RandAugment on one image's bytes, so the
// per-pixel work runs beside the JS thread rather than on it.
import { parentPort } from 'node:worker_threads';
import { randAugment, type RandAugmentLengths } from './randaugment.js';
import { Rng } from './rng.js';

export interface AugmentJob {
  id: number;
  /** 8-bit RGB [height, width, 3]. */
  bytes: Uint8Array;
  height: number;
  width: number;
  seed: number;
  numLayers: number;
  magnitude: number;
  lengths: RandAugmentLengths;
}

parentPort?.on('message', (job: AugmentJob) => {
  try {
    const img = { data: job.bytes, height: job.height, width: job.width };
    const out = randAugment(img, new Rng(job.seed), job.numLayers, job.magnitude, job.lengths).data;
    parentPort!.postMessage({ id: job.id, bytes: out }, [out.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) });
  }
});
