// Input pipeline vs trainer: images/s of the streaming image-folder pipeline alone
// (decode + random-resized crop + flip on libuv threads, RandAugment 4 x magnitude 5
// on worker threads, on the crop before the resize to 224x224 as the imagenet preset
// runs it, and after it for comparison) against
// the images/s of training the 'imagenet' preset's model at 224 on this machine.
// The goal: the pipeline must be faster, so the device never waits on decoding.
//   node dist/scripts/bench-pipeline.js [--images 128] [--batch 32] [--train-steps 2]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as P from '../lib/index.js';
import { createModel } from '../models/index.js';
import { imageFolderSources } from '../models/train/image-pipeline.js';
import { PRESETS } from '../models/train/presets.js';
import { Rng } from '../models/train/rng.js';
import type { TrainableClassifier } from '../models/train/trainer.js';
import { arg } from './cli-args.js';
import { timeTrainingSteps } from './train-step-timer.js';

const images = Number(arg('--images') ?? 128);
const batch = Number(arg('--batch') ?? 32);
const trainSteps = Number(arg('--train-steps') ?? 2);

// A folder of JPEGs the size of typical ImageNet photos (500x375), two classes.
const root = mkdtempSync(join(tmpdir(), 'perceiver-bench-pipeline-'));
try {
  const rng = new Rng(1);
  for (let i = 0; i < images; i++) {
    const dir = join(root, `class${i % 2}`);
    mkdirSync(dir, { recursive: true });
    const px = Buffer.alloc(500 * 375 * 3);
    for (let k = 0; k < px.length; k++) px[k] = (k * 7 + i * 13 + Math.floor(rng.next() * 64)) & 255;
    writeFileSync(join(dir, `${i}.jpg`), await sharp(px, { raw: { width: 500, height: 375, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
  }
  const { train } = imageFolderSources(root, { size: 224, channels: 3 });
  const order = Array.from({ length: train.size }, (_, i) => i);
  await train.batch(order.slice(0, 4), { rng: new Rng(0), maxShift: 0 }); // warm-up
  // RandAugment 4 layers at magnitude 5 on the crop, as the imagenet preset trains (the
  // reference's order), and after the resize (the other choice): each pass over the
  // images in turn, twice, best of the two.
  const ips = { crop: 0, resized: 0 };
  for (let round = 0; round < 2; round++)
    for (const where of ['crop', 'resized'] as const) {
      const t0 = performance.now();
      let done = 0;
      for (let at = 0; at + batch <= order.length; at += batch) {
        await train.batch(order.slice(at, at + batch), { rng: new Rng(at), maxShift: 0, randAugment: { numLayers: 4, magnitude: 5, at: where } });
        done += batch;
      }
      ips[where] = Math.max(ips[where], done / ((performance.now() - t0) / 1000));
    }
  const pipelineIps = ips.crop;

  // The trainer: forward + backward + LAMB of the imagenet preset's model at 224, batch 2.
  P.manualSeed(0);
  const model = createModel(PRESETS.imagenet.model) as unknown as TrainableClassifier;
  model.train().requiresGrad_(true);
  const opt = new P.optim.LAMB(model.parameters(), { lr: 1e-3 });
  const x = P.rand([2, 3, 224, 224], { seed: 1 });
  const y = P.tensor(Int32Array.from([1, 2]), [2]);
  const times = await timeTrainingSteps(model, opt, x, y, trainSteps, 1);
  const trainerIps = 2 / (times.reduce((a, b) => a + b, 0) / times.length / 1000);
  opt.dispose();
  model.dispose();
  console.log(`input pipeline (500x375 JPEG -> random-resized crop + flip + RandAugment(4, 5) on the crop -> 224x224, batches of ${batch}): ${pipelineIps.toFixed(1)} images/s`);
  console.log(`  the same with RandAugment after the resize: ${ips.resized.toFixed(1)} images/s`);
  console.log(`trainer (imagenet preset, 224x224, batch 2, ${P.backends()[0].threads} CPU threads): ${trainerIps.toFixed(2)} images/s`);
  console.log(`pipeline / trainer: ${(pipelineIps / trainerIps).toFixed(1)}x (goal > 1)`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
