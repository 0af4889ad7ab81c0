// `perceiver classify`: ImageNet-style classification of image files.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor, type Tensor } from '../../lib/index.js';
import { topKClasses, type ClassPrediction } from '../../models/classification.js';
import { imageProcessorOptions, preprocessImage } from '../../models/image-processor.js';
import { checkDeviceFlag, parseFlags, UsageError, type Command } from './command.js';
import { intFlag, loadTaskModel } from './task-model.js';

const CLASSIFIERS = ['PerceiverForImageClassificationFourier', 'PerceiverForImageClassificationLearned', 'PerceiverForImageClassificationConvProcessing'];

const USAGE = `Usage: perceiver classify --model DIR IMAGE [IMAGE...] [--top-k N] [--json] [--device cpu|cuda]

Classifies image files with a Perceiver image classifier (deepmind/vision-perceiver-
fourier, -learned or -conv): top-k labels (config.json's id2label) with probabilities.

Images: PNG, JPEG, WebP, GIF (first frame), TIFF, AVIF, decoded by sharp (libvips):
EXIF orientation applied, grey expanded to RGB, alpha dropped, 16-bit reduced to
8-bit, CMYK and ICC profiles converted to sRGB.

Preprocessing: HuggingFace's PerceiverImageProcessor. Centre crop of a square of
size/crop_size of the shorter side (224/256 by default), resized to size x size
(config.json's image_size, 224 for the released models) with PIL's bicubic filter
(reproduced exactly), scaled by 1/255 and normalised with ImageNet's mean
(0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). A preprocessor_config.json in
the model folder overrides crop_size, size, image_mean, image_std, do_* and
rescale_factor, except that a model whose config.json has image_mean and image_std
(those 'perceiver train' writes) normalises its own input: the pixels are then only
scaled by 1/255, whatever do_normalize says, so they are not normalised twice.

Options:
  --model DIR       folder with config.json (an image classifier) and model.safetensors
  --top-k N         labels shown per image (default 5)
  --json            one JSON array on stdout: [{image, width, height, predictions:
                    [{index, label, probability}]}]
  --device NAME     cpu, cuda or cuda:N (default: PERCEIVER_DEVICE, else cuda when available, else cpu)
  -h, --help        show this help
`;

function readPreprocessorConfig(dir: string): Record<string, unknown> {
  const path = join(dir, 'preprocessor_config.json');
  if (!existsSync(path)) return {};
  try {
    const json = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('not a JSON object');
    return json as Record<string, unknown>;
  } catch (err) {
    throw new Error(`'${path}' is not a valid preprocessor config (${err instanceof Error ? err.message : String(err)})`);
  }
}

async function run(argv: string[]): Promise<void> {
  // sharp (libvips) loads only for the commands that decode images.
  const { decodeImage } = await import('../../models/image-io.js');
  const flags = parseFlags('classify', argv, { values: ['--model', '--top-k', '--device'], switches: ['--json'], required: ['--model'], positional: [0, Number.MAX_SAFE_INTEGER] });
  if (flags.positional.length === 0) throw new UsageError('classify needs at least one image file');
  const device = checkDeviceFlag(flags.values['--device']);
  const topK = intFlag('--top-k', flags.values['--top-k'], 5, 1);
  const images = flags.positional;
  // Before the model loads: a typo in a path should not cost a model load.
  for (const p of images) if (!existsSync(p)) throw new Error(`image '${p}' does not exist`);
  const dir = flags.values['--model'];
  const { model, config } = await loadTaskModel('classify', dir, device, CLASSIFIERS);
  const opts = imageProcessorOptions(config, readPreprocessorConfig(dir));
  const id2label = config.id2label as Record<string, string> | undefined;
  const results: { image: string; width: number; height: number; predictions: ClassPrediction[] }[] = [];
  // Every accepted architecture is a PerceiverImageClassifier: pixel_values [B, 3, H, W] -> logits [B, num_labels].
  const classifier = model as unknown as { forward(x: Tensor): { logits: Tensor } };
  try {
    for (const path of images) {
      const img = await decodeImage(path);
      const { pixelValues, height, width } = preprocessImage(img, opts);
      const x = tensor(pixelValues, [1, 3, height, width], { device });
      try {
        const { logits } = classifier.forward(x);
        try {
          const [predictions] = await topKClasses(logits, topK, id2label);
          results.push({ image: path, width: img.width, height: img.height, predictions });
        } finally {
          logits.dispose();
        }
      } finally {
        x.dispose();
      }
      if (!flags.switches.has('--json')) {
        const r = results[results.length - 1];
        const lines = [`${path} (${r.width}x${r.height}):`, ...r.predictions.map((p) => `  ${(100 * p.probability).toFixed(2).padStart(6)}%  ${p.label}`)];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
    }
  } finally {
    model.dispose();
  }
  if (flags.switches.has('--json')) process.stdout.write(`${JSON.stringify(results)}\n`);
}

export const classifyCommand: Command = {
  name: 'classify',
  summary: 'classify image files (PNG, JPEG, ...) with an image classifier',
  usage: USAGE,
  run,
};
