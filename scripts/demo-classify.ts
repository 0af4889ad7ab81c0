// Image classification with a Perceiver image classifier: top-5 classes for one image.
//
//   node dist/scripts/demo-classify.js                        # ImageNet Fourier, released config, RANDOM weights,
//                                                             # a synthetic 224x224 image
//   node dist/scripts/demo-classify.js --model DIR            # a HF model dir (config.json + model.safetensors):
//                                                             # any of the three image classifiers
//   node dist/scripts/demo-classify.js --input x.safetensors  # pixel_values [1, 3, H, W], already normalised
//
// A real photo: `perceiver classify --model DIR photo.jpg` (decoding and HF's
// preprocessing in models/image-io.ts, models/image-processor.ts); here it can come in
// as a safetensors file of HF's pixel_values. Without --input the image is a synthetic pattern normalised
// with ImageNet's mean and std. With random weights the classes are noise.
import { existsSync } from 'node:fs';
import { loadSafetensors, tensor, type Tensor } from '../lib/index.js';
import { createModel } from '../models/registry.js';
import { loadModel, readModelConfig } from '../models/load.js';
import { topKClasses } from '../models/classification.js';
import { IMAGENET_DEFAULT_MEAN as MEAN, IMAGENET_DEFAULT_STD as STD } from '../models/image-processor.js';
import { VISION_PERCEIVER_FOURIER } from '../models/presets.js';
import { demoFlags, runDemo } from './cli-args.js';


/** A smooth colour pattern in [0, 1], normalised as ImageNet's preprocessing does: [1, 3, size, size]. */
function syntheticImage(size: number): Tensor {
  const data = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        const v = 0.5 + 0.5 * Math.sin((x * (c + 1)) / 17 + (y * (3 - c)) / 23);
        data[(c * size + y) * size + x] = (v - MEAN[c]) / STD[c];
      }
  return tensor(data, [1, 3, size, size]);
}

const USAGE = `usage: demo-classify [--model DIR] [--input X.safetensors]

Top-5 classes of one image with a Perceiver image classifier: the released ImageNet
Fourier config with RANDOM weights, or the model folder DIR; the image is a synthetic
pattern, or pixel_values [1, 3, H, W] from X.safetensors.
`;

async function main(): Promise<void> {
  const flags = demoFlags('demo-classify', USAGE, { values: ['--model', '--input'] });
  const dir = flags.values['--model'];
  const inputPath = flags.values['--input'];
  if (inputPath !== undefined && !existsSync(inputPath)) throw new Error(`--input '${inputPath}' does not exist`);
  // readModelConfig and loadModel name the file for a missing or broken config.json or weights.
  const config = dir ? readModelConfig(dir) : VISION_PERCEIVER_FOURIER;
  const arch = Array.isArray(config.architectures) ? String(config.architectures[0]) : String(config.architectures);
  if (!arch.startsWith('PerceiverForImageClassification')) throw new Error(`demo-classify needs an image classifier, got ${arch}${dir ? ` in '${dir}'` : ''}`);
  let t0 = performance.now();
  const model = dir ? await loadModel(dir) : createModel(config);
  console.log(`${(config.architectures as string[])[0]}: ${dir ? `weights from ${dir}` : 'released config, RANDOM weights (the classes are noise)'}; ${(model.numParameters() / 1e6).toFixed(1)} M parameters, ready in ${(performance.now() - t0).toFixed(0)} ms`);

  let pixels: Tensor;
  if (inputPath) {
    const t = await loadSafetensors(inputPath, { names: ['pixel_values'] });
    pixels = t.pixel_values;
  } else pixels = syntheticImage(typeof config.image_size === 'number' ? config.image_size : 224);
  console.log(`pixel_values [${pixels.shape.join(', ')}]${inputPath ? ` from ${inputPath}` : ' (synthetic)'}`);

  const labels = ((config as Record<string, unknown>).id2label ?? {}) as Record<string, string>;
  const classify = model as unknown as { forward(x: Tensor): { logits: Tensor } };
  for (const label of ['first call', 'second call']) {
    t0 = performance.now();
    const { logits } = classify.forward(pixels);
    const rows = await topKClasses(logits, 5, labels);
    const ms = performance.now() - t0;
    logits.dispose();
    console.log(`${label}: ${ms.toFixed(0)} ms`);
    for (const [b, top] of rows.entries()) console.log(`  image ${b}: ${top.map((p) => `${p.label} ${(100 * p.probability).toFixed(2)}%`).join(', ')}`);
  }
  pixels.dispose();
  model.dispose();
}

runDemo('demo-classify', main);
