// Autoencoding a whole video + audio clip with PerceiverForMultimodalAutoencoding the
// way the Perceiver IO colabs do it: the decoder is queried in chunks of subsampled
// output points (image point range i of n, audio patch range i of n, and the label's
// one query each time), and the chunks' outputs are concatenated back into the full
// reconstruction. The colabs (DeepMind's and HF's) call the whole model per chunk; the
// encoder's output does not depend on the queried points, so here the inputs are
// encoded once and only the decoder runs per chunk (`reencode: true` runs the whole
// model per chunk, as the colab, for comparison).
// The registry first: a task model's module loads the registry (through save.ts), which
// must finish loading every task model before it is read.
import { ARCHITECTURES } from './registry.js';
import { Tensor, tidy } from '../lib/index.js';
import { describe } from '../lib/dtype.js';
import { checkAudioGrid, checkMultimodalInputs, type MultimodalInputs, type PerceiverForMultimodalAutoencoding } from './multimodal-autoencoding.js';
import { boolArg, intArg, knownKeysArg, objectArg, optionKeys } from './args.js';

// What chunkRanges makes is built element by element in JS (a few tenths of a second per
// million chunks or per 64 million points), so both are bounded: the colab's
// 16x224x224 video has 802816 image points, and 2^26 points is a 16-frame 2048x2048 one.
const MAX_CHUNKS = 2 ** 20;
const MAX_POINTS = 2 ** 26;

/**
 * Splits [0, total) into n contiguous ranges of floor(total / n) or one more (the
 * longer ones first). When n divides total these are the colab's ranges
 * arange(chunk * i, chunk * (i + 1)); otherwise the colab drops the remainder, here
 * every point is covered. n may exceed total (the ranges past total are empty):
 * autoencodeInChunks splits the image points and the fewer audio patches into the
 * same number of chunks. total is at most 2^26 and n at most 2^20.
 */
export function chunkRanges(total: number, n: number): Int32Array[] {
  intArg('chunkRanges', 'total', total, 0);
  intArg('chunkRanges', 'n', n, 1);
  if (total > MAX_POINTS) throw new RangeError(`chunkRanges: argument 'total' must be at most ${MAX_POINTS}, got number ${total}`);
  if (n > MAX_CHUNKS) throw new RangeError(`chunkRanges: argument 'n' must be at most ${MAX_CHUNKS}, got number ${n}`);
  const base = Math.floor(total / n);
  const extra = total % n;
  const out: Int32Array[] = new Array(n);
  let start = 0;
  for (let i = 0; i < n; i++) {
    const len = base + (i < extra ? 1 : 0);
    const r = new Int32Array(len);
    for (let k = 0; k < len; k++) r[k] = start + k;
    out[i] = r;
    start += len;
  }
  return out;
}

export interface ChunkedReconstruction {
  /** [B, T * H * W * 3]: row-major [B, T, H, W, 3] (channels last). */
  image: Float32Array;
  /** [B, num_frames * audio_samples_per_frame]. */
  audio: Float32Array;
  /** [B, num_labels]. */
  label: Float32Array;
  shapes: { image: [number, number, number, number, number]; audio: [number, number]; label: [number, number] };
}

export interface ChunkedOptions {
  /** Number of decoder chunks (the colab uses 128 for 16x224x224 video). */
  nChunks: number;
  /** Run the whole model per chunk, as the colab (default false: encode once). */
  reencode?: boolean;
  /** Called after each chunk with its index (0-based). */
  onChunk?: (index: number) => void;
}

const CHUNKED_OPTIONS = optionKeys<ChunkedOptions>({ nChunks: true, reencode: true, onChunk: true });

/** Autoencodes inputs in nChunks decoder passes; returns the full reconstruction on the host. */
export async function autoencodeInChunks(model: PerceiverForMultimodalAutoencoding, inputs: MultimodalInputs, opts: ChunkedOptions): Promise<ChunkedReconstruction> {
  const op = 'autoencodeInChunks';
  if (!(model instanceof ARCHITECTURES.PerceiverForMultimodalAutoencoding))
    throw new TypeError(`${op}: argument 'model' must be a PerceiverForMultimodalAutoencoding, got ${describe(model)}`);
  checkMultimodalInputs(op, 'inputs', inputs);
  opts = objectArg(op, 'opts', opts, true);
  knownKeysArg(op, 'opts', opts, CHUNKED_OPTIONS);
  intArg(op, 'opts.nChunks', opts.nChunks, 1);
  if (opts.reencode !== undefined) boolArg(op, 'opts.reencode', opts.reencode);
  if (opts.onChunk !== undefined && typeof opts.onChunk !== 'function')
    throw new TypeError(`${op}: argument 'opts.onChunk' must be a function, got ${describe(opts.onChunk)}`);
  const c = model.config;
  const [B, T, C, H, W] = inputs.image.shape;
  if (inputs.image.rank !== 5 || C !== 3) throw new RangeError(`autoencodeInChunks: image must be [B, T, 3, H, W], got [${inputs.image.shape.join(', ')}]`);
  const [, oT, oH, oW] = c.output_shape;
  if (T !== oT || H !== oH || W !== oW)
    throw new RangeError(`autoencodeInChunks: image [${inputs.image.shape.join(', ')}] does not match the config's output_shape [${c.output_shape.join(', ')}]`);
  const nImage = T * H * W;
  const nAudioSamples = inputs.audio.shape[1];
  if (nAudioSamples % c.samples_per_patch !== 0) throw new RangeError(`autoencodeInChunks: ${nAudioSamples} audio samples do not divide into patches of ${c.samples_per_patch}`);
  // As forward() checks it: the chunks' audio points index the config's grid.
  checkAudioGrid(op, 'inputs.audio', inputs.audio, c);
  const nAudio = nAudioSamples / c.samples_per_patch;
  // A chunk past both counts would decode no image and no audio point.
  const most = Math.min(Math.max(nImage, nAudio), MAX_CHUNKS);
  if (opts.nChunks > most)
    throw new RangeError(`${op}: argument 'opts.nChunks' must be at most ${most} (${nImage} image points, ${nAudio} audio patches), got number ${opts.nChunks}`);
  const imageChunks = chunkRanges(nImage, opts.nChunks);
  const audioChunks = chunkRanges(nAudio, opts.nChunks);

  const image = new Float32Array(B * nImage * 3);
  const audio = new Float32Array(B * nAudioSamples);
  let label = new Float32Array(0);
  const p = model.perceiver;

  // Encode once (unless re-encoding per chunk, as the colab).
  const encoded: Encoded | null = opts.reencode
    ? null
    : tidy(() => {
        const pre = p.inputPreprocessor!.forward(inputs as unknown as Record<string, Tensor>);
        const z = p.encoder.forward(p.embeddings.forward(B), pre.inputs, null);
        return { x: pre.inputs, without: pre.inputsWithoutPos, sizes: pre.modalitySizes, z };
      });
  try {
    let imageAt = 0;
    let audioAt = 0;
    for (let i = 0; i < opts.nChunks; i++) {
      const points = { image: imageChunks[i], audio: audioChunks[i] };
      const logits = encoded
        ? decodeChunk(model, encoded, points)
        : model.forward(inputs, { subsampledOutputPoints: points }).logits;
      try {
        const img = (await logits.image.data()) as Float32Array;
        const aud = (await logits.audio.data()) as Float32Array;
        label = Float32Array.from(await logits.label.data());
        const ni = points.image.length;
        const na = points.audio.length * c.samples_per_patch;
        for (let b = 0; b < B; b++) {
          image.set(img.subarray(b * ni * 3, (b + 1) * ni * 3), (b * nImage + imageAt) * 3);
          audio.set(aud.subarray(b * na, (b + 1) * na), b * nAudioSamples + audioAt);
        }
        imageAt += ni;
        audioAt += na;
      } finally {
        for (const t of Object.values(logits)) t.dispose();
      }
      opts.onChunk?.(i);
    }
  } finally {
    if (encoded) disposeEncoded(encoded);
  }
  return { image, audio, label, shapes: { image: [B, T, H, W, 3], audio: [B, nAudioSamples], label: [B, label.length / B] } };
}

interface Encoded {
  x: Tensor;
  without: Tensor | Record<string, Tensor> | null;
  sizes?: Record<string, number>;
  z: Tensor;
}

/** PerceiverModel.forward's decoding half on an already encoded z. */
function decodeChunk(model: PerceiverForMultimodalAutoencoding, e: Encoded, points: { image: ArrayLike<number>; audio: ArrayLike<number> }): Record<string, Tensor> {
  const p = model.perceiver;
  return tidy(() => {
    const subsampledPoints = { ...points, label: null };
    const query = p.decoder!.decoderQuery(e.x, { inputsWithoutPos: e.without, modalitySizes: e.sizes, subsampledPoints });
    const out = p.decoder!.forward(query, e.z, null);
    // As PerceiverModel: each subsampled modality has its points' length, the label 1.
    const outSizes: Record<string, number> = {};
    for (const m of Object.keys(e.sizes ?? {})) outSizes[m] = m === 'label' ? 1 : points[m as 'image' | 'audio'].length;
    return p.outputPostprocessor!.forward(out, outSizes) as Record<string, Tensor>;
  });
}

function disposeEncoded(e: Encoded): void {
  e.x.dispose();
  e.z.dispose();
  if (e.without instanceof Tensor) e.without.dispose();
  else if (e.without) for (const t of Object.values(e.without)) t.dispose();
}
