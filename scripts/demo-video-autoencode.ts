// Video + audio autoencoding with PerceiverForMultimodalAutoencoding, decoded in chunks
// of subsampled output points as in the Perceiver IO colabs (autoencode_video): the
// clip is encoded once, the decoder is queried n times for 1/n of the image points and
// 1/n of the audio patches (plus the label's query), and the pieces are reassembled
// into the full video, audio and label logits (models/multimodal-chunked.ts).
//
//   node dist/scripts/demo-video-autoencode.js                 # small config, RANDOM weights,
//                                                              # synthetic 4x32x32 video + audio
//   node dist/scripts/demo-video-autoencode.js --model DIR     # a HF model dir, e.g. test/fixtures/hf/multimodal
//                                                              # (or deepmind/multimodal-perceiver: 16x224x224)
//   options: --chunks N (default 16), --reencode (run the whole model per chunk, as the colab),
//            --out PREFIX (writes PREFIX.png: first frame, input above reconstruction)
//
// With random weights the reconstruction is noise: the demo shows the pipeline, its
// cost and the chunking, not the model's quality.
import { manualSeed, tensor, zeros } from '../lib/index.js';
import { PerceiverForMultimodalAutoencoding } from '../models/index.js';
import { loadModel } from '../models/load.js';
import { autoencodeInChunks } from '../models/multimodal-chunked.js';
import { encodePng } from '../models/flow-vis.js';
import { writeFileAtomic } from '../models/image-io.js';
import { demoFlags, outputPrefix, runDemo } from './cli-args.js';
import { UsageError } from './cli/command.js';

// The released deepmind/multimodal-perceiver structure, shrunk: 4 frames of 32x32,
// 4 x 64 audio samples, 700 labels, fewer and narrower layers.
const SMALL = {
  architectures: ['PerceiverForMultimodalAutoencoding'],
  num_frames: 4,
  image_size: 32,
  audio_samples_per_frame: 64,
  samples_per_patch: 16,
  output_shape: [1, 4, 32, 32],
  output_num_channels: 64,
  _label_trainable_num_channels: 64,
  num_labels: 700,
  num_latents: 64,
  d_latents: 128,
  d_model: 405, // max(image 243, audio 401) + min_padding_size 4
  num_blocks: 1,
  num_self_attends_per_block: 2,
  num_self_attention_heads: 4,
  num_cross_attention_heads: 1,
  qk_channels: null,
  v_channels: null,
  cross_attention_shape_for_attention: 'kv' as const,
  self_attention_widening_factor: 1,
  cross_attention_widening_factor: 1,
  hidden_act: 'gelu' as const,
  use_query_residual: true,
  initializer_range: 0.02,
};

const USAGE = `usage: demo-video-autoencode [--model DIR] [--chunks N] [--reencode] [--out PREFIX]

Autoencodes a synthetic clip with PerceiverForMultimodalAutoencoding, decoded in N
chunks (default 16; --reencode runs the whole model per chunk); random weights unless
--model names a model folder. Writes PREFIX.png (default video-autoencode.png).
`;

async function main(): Promise<void> {
  const flags = demoFlags('demo-video-autoencode', USAGE, { values: ['--model', '--chunks', '--out'], switches: ['--reencode'] });
  const dir = flags.values['--model'];
  const chunksText = flags.values['--chunks'] ?? '16';
  const nChunks = /^\d+$/.test(chunksText) ? Number(chunksText) : NaN;
  if (!Number.isSafeInteger(nChunks) || nChunks < 1) throw new UsageError(`--chunks must be a positive integer, got '${chunksText}'`);
  const reencode = flags.switches.has('--reencode');
  const out = outputPrefix(flags.values['--out'] ?? 'video-autoencode', ['.png']);

  let t0 = performance.now();
  let model: PerceiverForMultimodalAutoencoding;
  if (dir) {
    const loaded = await loadModel(dir);
    if (!(loaded instanceof PerceiverForMultimodalAutoencoding)) {
      loaded.dispose();
      throw new Error(`--model ${dir}: not a PerceiverForMultimodalAutoencoding checkpoint`);
    }
    model = loaded;
  } else {
    manualSeed(0); // the same random weights every run
    model = new PerceiverForMultimodalAutoencoding(SMALL);
  }
  const c = model.config;
  const [, T, H, W] = c.output_shape;
  const nAudio = c.num_frames * c.audio_samples_per_frame;
  console.log(
    `${dir ? `weights from ${dir}` : 'small config, RANDOM weights (the reconstruction is noise)'}; ${(model.numParameters() / 1e6).toFixed(2)} M parameters, ready in ${(performance.now() - t0).toFixed(0)} ms`,
  );

  // Synthetic clip: a pattern drifting one pixel per frame (values 0..1), a chord.
  const video = new Float32Array(T * 3 * H * W);
  for (let t = 0; t < T; t++)
    for (let ch = 0; ch < 3; ch++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) video[((t * 3 + ch) * H + y) * W + x] = 0.5 + 0.5 * Math.sin((x - t) / (3 + ch) + y / 5);
  const sound = Float32Array.from({ length: nAudio }, (_, i) => 0.5 * Math.sin(i / 7) + 0.3 * Math.sin(i / 3.1));
  const inputs = { image: tensor(video, [1, T, 3, H, W]), audio: tensor(sound, [1, nAudio, 1]), label: zeros([1, c.num_labels]) };
  console.log(`clip: video ${T}x${H}x${W}x3 (${T * H * W} output points), audio ${nAudio} samples (${nAudio / c.samples_per_patch} patches), ${c.num_labels} labels`);

  t0 = performance.now();
  const rec = await autoencodeInChunks(model, inputs, {
    nChunks,
    reencode,
    onChunk: (i) => {
      if (i === 0 || i === nChunks - 1 || nChunks <= 8) console.log(`  chunk ${i + 1}/${nChunks}: ${(performance.now() - t0).toFixed(0)} ms so far`);
    },
  });
  console.log(`decoded in ${nChunks} chunks ${reencode ? '(whole model per chunk)' : '(encoded once)'} in ${(performance.now() - t0).toFixed(0)} ms`);
  for (const x of Object.values(inputs)) x.dispose();
  model.dispose();

  // Errors against the input (channels-last reconstruction vs channels-first video).
  let se = 0;
  for (let t = 0; t < T; t++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let ch = 0; ch < 3; ch++) {
          const d = rec.image[((t * H + y) * W + x) * 3 + ch] - video[((t * 3 + ch) * H + y) * W + x];
          se += d * d;
        }
  let seA = 0;
  for (let i = 0; i < nAudio; i++) seA += (rec.audio[i] - sound[i]) ** 2;
  let best = 0;
  for (let i = 1; i < rec.label.length; i++) if (rec.label[i] > rec.label[best]) best = i;
  console.log(
    `reconstruction: image [${rec.shapes.image.join(', ')}] MSE ${(se / (T * H * W * 3)).toFixed(4)}, audio [${rec.shapes.audio.join(', ')}] MSE ${(seA / nAudio).toFixed(4)}, label argmax ${best}`,
  );

  // First frame: input (top) and reconstruction (bottom), clipped to 0..1.
  const rgb = new Uint8Array(2 * H * W * 3);
  const to8 = (v: number): number => Math.round(255 * Math.min(1, Math.max(0, v)));
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let ch = 0; ch < 3; ch++) {
        rgb[(y * W + x) * 3 + ch] = to8(video[(ch * H + y) * W + x]);
        rgb[((H + y) * W + x) * 3 + ch] = to8(rec.image[(y * W + x) * 3 + ch]);
      }
  await writeFileAtomic(`${out}.png`, encodePng(rgb, 2 * H, W));
  console.log(`wrote ${out}.png (frame 0: input above, reconstruction below)`);
}

runDemo('demo-video-autoencode', main);
