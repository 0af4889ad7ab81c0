// Masked-byte filling with PerceiverForMaskedLM, as in HF's model card: the text is
// encoded as UTF-8 bytes + 6 between [CLS] and [SEP], some bytes are replaced by
// [MASK] (models/fill-mask.ts, shared with `perceiver fill-mask`), and the model's
// best byte at those positions is decoded.
//
//   node dist/scripts/demo-fill-mask.js                       # released config, RANDOM weights
//   node dist/scripts/demo-fill-mask.js --model DIR           # a HF model dir (config.json + model.safetensors),
//                                                             # e.g. deepmind/language-perceiver
//   node dist/scripts/demo-fill-mask.js --text "..." --mask " missing"
//
// With random weights the filled bytes are noise: the demo shows the pipeline and its
// cost, not the model's knowledge. No padding to 2048 is needed: padded keys are
// masked out of the cross-attention, so the unpadded input gives the same logits.
import { PerceiverForMaskedLM } from '../models/index.js';
import { fillMask } from '../models/fill-mask.js';
import { loadModel } from '../models/load.js';
import { LANGUAGE_PERCEIVER } from '../models/presets.js';
import { demoFlags, runDemo } from './cli-args.js';


const USAGE = `usage: demo-fill-mask [--model DIR] [--text TEXT] [--mask SPAN]

Masked-byte filling with PerceiverForMaskedLM: the bytes of SPAN (default ' missing')
in TEXT are masked and predicted; the released config with RANDOM weights, or the
model folder DIR. A value starting with '--' is given as --text=VALUE.
`;

async function main(): Promise<void> {
  const flags = demoFlags('demo-fill-mask', USAGE, { values: ['--model', '--text', '--mask'] });
  const dir = flags.values['--model'];
  const text = flags.values['--text'] ?? 'This is an incomplete sentence where some words are missing.';
  const maskWhat = flags.values['--mask'] ?? ' missing';
  const byteStart = Buffer.from(text, 'utf8').indexOf(Buffer.from(maskWhat, 'utf8'));
  if (maskWhat === '' || byteStart < 0) throw new Error(`--mask ${JSON.stringify(maskWhat)} does not occur in the text`);
  const maskLen = Buffer.byteLength(maskWhat, 'utf8');

  let t0 = performance.now();
  // loadModel names the file for a missing or broken config.json or weights.
  const loaded = dir ? await loadModel(dir) : new PerceiverForMaskedLM(LANGUAGE_PERCEIVER);
  if (!(loaded instanceof PerceiverForMaskedLM)) {
    loaded.dispose();
    throw new Error(`demo-fill-mask needs a PerceiverForMaskedLM, but '${dir}' holds a ${loaded.constructor.name}`);
  }
  const model = loaded;
  console.log(`${dir ? `weights from ${dir}` : 'released config, RANDOM weights (the filled bytes are noise)'}; ${(model.numParameters() / 1e6).toFixed(1)} M parameters, ready in ${(performance.now() - t0).toFixed(0)} ms`);

  // The masked span as fill-mask's syntax: one [MASK] per byte (models/fill-mask.ts).
  const bytes = Buffer.from(text, 'utf8');
  const masked = `${bytes.subarray(0, byteStart).toString('utf8')}<mask:${maskLen}>${bytes.subarray(byteStart + maskLen).toString('utf8')}`;
  console.log(`input:  ${JSON.stringify(masked)}`);

  for (const label of ['first call', 'second call']) {
    t0 = performance.now();
    const { filled, masks } = await fillMask(model, masked, { topK: 1 });
    const ms = performance.now() - t0;
    const predicted = masks.map((m) => m.candidates[0].id);
    console.log(`${label}: ${ms.toFixed(0)} ms; filled ${JSON.stringify(filled)}; top ids at the masks ${predicted.join(' ')}`);
  }
  model.dispose();
}

runDemo('demo-fill-mask', main);
