// A worker thread of the input pipeline: RandAugment on one image's bytes, so the
// per-pixel work runs beside the JS thread rather than on it.
import { parentPort } from 'node:worker_threads';
import { randAugment } from './randaugment.js';
import { Rng } from './rng.js';

export interface AugmentJob {
  id: number;
  /** 8-bit RGB [size, size, 3]. */
  bytes: Uint8Array;
  size: number;
  seed: number;
  numLayers: number;
  magnitude: number;
}

parentPort?.on('message', (job: AugmentJob) => {
  try {
    const out = randAugment({ data: job.bytes, height: job.size, width: job.size }, new Rng(job.seed), job.numLayers, job.magnitude).data;
    parentPort!.postMessage({ id: job.id, bytes: out }, [out.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) });
  }
});
