// Masked-byte filling with PerceiverForMaskedLM, as in HF's model card: the text is
// encoded as UTF-8 bytes + 6 between [CLS] and [SEP], some bytes are replaced by
// [MASK], and the model's argmax at those positions is decoded.
//
//   node dist/scripts/demo-fill-mask.js                       # released config, RANDOM weights
//   node dist/scripts/demo-fill-mask.js --model DIR           # a HF model dir (config.json + model.safetensors),
//                                                             # e.g. deepmind/language-perceiver
//   node dist/scripts/demo-fill-mask.js --text "..." --mask " missing"
//
// With random weights the filled bytes are noise: the demo shows the pipeline and its
// cost, not the model's knowledge. No padding to 2048 is needed: padded keys are
// masked out of the cross-attention, so the unpadded input gives the same logits.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSafetensors, tensor, type Tensor } from '../lib/index.js';
import { BytesTokenizer, PerceiverForMaskedLM } from '../models/index.js';
import { LANGUAGE_PERCEIVER } from '../models/presets.js';
import { arg } from './cli-args.js';

const tokenizer = new BytesTokenizer();


async function main(): Promise<void> {
  const dir = arg('--model', 'accept');
  const text = arg('--text', 'accept') ?? 'This is an incomplete sentence where some words are missing.';
  const maskWhat = arg('--mask', 'accept') ?? ' missing';
  const byteStart = Buffer.from(text, 'utf8').indexOf(Buffer.from(maskWhat, 'utf8'));
  if (maskWhat === '' || byteStart < 0) throw new Error(`--mask ${JSON.stringify(maskWhat)} does not occur in the text`);
  const maskLen = Buffer.byteLength(maskWhat, 'utf8');

  const config = dir ? (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>) : LANGUAGE_PERCEIVER;
  let t0 = performance.now();
  const model = new PerceiverForMaskedLM(config);
  if (dir) {
    const weights = await loadSafetensors(join(dir, 'model.safetensors'));
    model.loadStateDict(weights);
    for (const t of Object.values(weights)) t.dispose();
  }
  console.log(`${dir ? `weights from ${dir}` : 'released config, RANDOM weights (the filled bytes are noise)'}; ${(model.numParameters() / 1e6).toFixed(1)} M parameters, ready in ${(performance.now() - t0).toFixed(0)} ms`);

  // [CLS] bytes+6 [SEP]; the text is taken literally (no special-token spellings parsed).
  const ids = tokenizer.encode(text, { parseSpecialTokens: false }).ids;
  // +1: the [CLS] in front.
  const positions = Array.from({ length: maskLen }, (_, i) => byteStart + 1 + i);
  for (const p of positions) ids[p] = tokenizer.maskTokenId;
  const bytes = Buffer.from(text, 'utf8');
  const shown = `${bytes.subarray(0, byteStart).toString('utf8')}${'[MASK]'.repeat(maskLen)}${bytes.subarray(byteStart + maskLen).toString('utf8')}`;
  console.log(`input:  ${JSON.stringify(shown)} (${ids.length} ids)`);

  const input: Tensor = tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'int32' });
  for (const label of ['first call', 'second call']) {
    t0 = performance.now();
    const { logits } = model.forward(input);
    // logits [1, max_position_embeddings, 262]: argmax at the masked rows only.
    const best = logits.slice(1, positions[0], positions[positions.length - 1] + 1).argmax(-1);
    const predicted = Array.from((await best.data()) as Int32Array);
    const ms = performance.now() - t0;
    best.dispose();
    logits.dispose();
    console.log(`${label}: ${ms.toFixed(0)} ms; predicted ${JSON.stringify(tokenizer.decode(predicted))} for ${JSON.stringify(maskWhat)} (ids ${predicted.join(' ')})`);
  }
  input.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
