// Chunked decoding of the multimodal autoencoder (the colabs' autoencode_video): the
// reassembled chunks equal one decoder pass over every output point, whether the
// inputs are encoded once or per chunk (HF fixture model, random inputs).
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as P from '../lib/index.js';
import { PerceiverForMultimodalAutoencoding, autoencodeInChunks, chunkRanges } from '../models/index.js';
import { caseConfig, caseDir, loadCaseWeights } from './helpers/hf-fixture.js';
import { randomArray } from './helpers/reference.js';
import { baseline, live } from './helpers/device.js';
import { assertUnknownOptions } from './helpers/options.js';

const config = caseConfig('multimodal'); // video [1, 2, 3, 16, 16], audio 128 samples (8 patches of 16), 7 labels

test('chunkRanges: the colab ranges when n divides, full cover otherwise', (t) => {
  t.deepEqual(
    chunkRanges(8, 4).map((r) => Array.from(r)),
    [
      [0, 1],
      [2, 3],
      [4, 5],
      [6, 7],
    ],
  );
  const r = chunkRanges(10, 4).map((x) => Array.from(x));
  t.deepEqual(r, [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]);
  t.deepEqual(chunkRanges(2, 3).map((x) => x.length), [1, 1, 0]);
  t.throws(() => chunkRanges(4, 0), { instanceOf: RangeError, message: /^chunkRanges: argument 'n' must be an integer >= 1, got number 0$/ });
  t.throws(() => chunkRanges(-1, 2), { instanceOf: RangeError });
});

test('chunkRanges: total and n are bounded, so a huge call is refused at once instead of filling memory for seconds', (t) => {
  const start = performance.now();
  t.throws(() => chunkRanges(2 ** 40, 2 ** 40), { instanceOf: RangeError, message: /^chunkRanges: argument 'total' must be at most 67108864, got number 1099511627776$/ });
  t.throws(() => chunkRanges(1e7, 1e7), { instanceOf: RangeError, message: /^chunkRanges: argument 'n' must be at most 1048576, got number 10000000$/ });
  t.throws(() => chunkRanges(4, 2 ** 40), { instanceOf: RangeError, message: /^chunkRanges: argument 'n' must be at most 1048576/ });
  t.true(performance.now() - start < 100);
  // At the bounds: n past total still gives the empty tail ranges autoencodeInChunks relies on.
  const r = chunkRanges(3, 2 ** 20);
  t.is(r.length, 2 ** 20);
  t.deepEqual(Array.from(r[2]), [2]);
  t.is(r[3].length, 0);
});

/**
 * max |a - b| over max(1, max |b|): chunks run the decoder on other query counts, so
 * GPU sums may group differently; the difference is float32 rounding of the outputs' scale.
 */
async function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): Promise<number> {
  let m = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return m / scale;
}

test.serial('reassembled chunks equal one pass over all points; encode-once equals re-encode; nothing leaks', async (t) => {
  const model = new PerceiverForMultimodalAutoencoding(config);
  await loadCaseWeights('multimodal', model);
  const inputs = {
    image: P.tensor(randomArray(2 * 3 * 16 * 16, 1, 0, 1), [1, 2, 3, 16, 16]),
    audio: P.tensor(randomArray(128, 2), [1, 128, 1]),
    label: P.zeros([1, 7]),
  };
  const all = model.forward(inputs, {
    subsampledOutputPoints: { image: Int32Array.from({ length: 512 }, (_, i) => i), audio: Int32Array.from({ length: 8 }, (_, i) => i) },
  }).logits;
  const want = { image: await all.image.data(), audio: await all.audio.data(), label: await all.label.data() };
  for (const x of Object.values(all)) x.dispose();
  // After the first call: the model caches what depends on its weights only.
  const before = (await baseline());

  let calls = 0;
  const once = await autoencodeInChunks(model, inputs, { nChunks: 8, onChunk: () => calls++ });
  t.is(calls, 8);
  t.deepEqual(once.shapes, { image: [1, 2, 16, 16, 3], audio: [1, 128], label: [1, 7] });
  t.is(once.image.length, 512 * 3);
  t.is(once.audio.length, 128);
  for (const m of ['image', 'audio', 'label'] as const) {
    const d = await maxDiff(once[m], want[m]);
    t.true(d <= 1e-5, `${m} (8 chunks, encoded once): max |diff| / scale ${d}`);
  }
  const again = await autoencodeInChunks(model, inputs, { nChunks: 8, reencode: true });
  const uneven = await autoencodeInChunks(model, inputs, { nChunks: 3 });
  // More chunks than audio patches (8): some chunks query no audio point.
  const many = await autoencodeInChunks(model, inputs, { nChunks: 16 });
  for (const m of ['image', 'audio', 'label'] as const) {
    t.true((await maxDiff(many[m], want[m])) <= 1e-5, `${m} (16 chunks, empty audio chunks)`);
    t.true((await maxDiff(again[m], want[m])) <= 1e-5, `${m} (re-encoded per chunk)`);
    t.true((await maxDiff(uneven[m], want[m])) <= 1e-5, `${m} (3 uneven chunks)`);
  }
  t.is(live().tensors, before.tensors, 'live tensors (the three inputs included)');
  t.is(live().bytes, before.bytes, 'live bytes');
  for (const x of Object.values(inputs)) x.dispose();
  model.dispose();
});

test('a video of the wrong size is refused', async (t) => {
  const model = new PerceiverForMultimodalAutoencoding(config);
  const inputs = { image: P.zeros([1, 2, 3, 8, 8]), audio: P.zeros([1, 128, 1]), label: P.zeros([1, 7]) };
  await t.throwsAsync(() => autoencodeInChunks(model, inputs, { nChunks: 2 }), { instanceOf: RangeError, message: /output_shape \[1, 2, 16, 16\]/ });
  for (const x of Object.values(inputs)) x.dispose();
  model.dispose();
});

test('demo-video-autoencode runs on the fixture folder and writes its PNG', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'perceiver-video-'));
  try {
    const script = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'demo-video-autoencode.js');
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [script, '--model', caseDir('multimodal'), '--chunks', '4', '--out', join(tmp, 'v')], (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      ),
    );
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /decoded in 4 chunks \(encoded once\)/);
    t.regex(r.stdout, /image \[1, 2, 16, 16, 3\]/);
    const png = readFileSync(join(tmp, 'v.png'));
    t.is(png.readUInt32BE(16), 16, 'width');
    t.is(png.readUInt32BE(20), 32, 'height: input above reconstruction');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('autoencodeInChunks: bad arguments are refused with the argument named', async (t) => {
  const model = new PerceiverForMultimodalAutoencoding(config);
  const image = P.zeros([1, 2, 3, 16, 16]);
  const audio = P.zeros([1, 128, 1]);
  const label = P.zeros([1, 7]);
  const inputs = { image, audio, label };
  const [half, twice] = [P.zeros([1, 64, 1]), P.zeros([1, 256, 1])];
  const bad: [() => Promise<unknown>, RegExp][] = [
    [() => autoencodeInChunks(undefined as never, inputs, { nChunks: 2 }), /^autoencodeInChunks: argument 'model' must be a PerceiverForMultimodalAutoencoding, got undefined$/],
    [() => autoencodeInChunks({} as never, inputs, { nChunks: 2 }), /^autoencodeInChunks: argument 'model' must be a PerceiverForMultimodalAutoencoding, got Object$/],
    [() => autoencodeInChunks(model, null as never, { nChunks: 2 }), /^autoencodeInChunks: argument 'inputs' must be an object, got null$/],
    [() => autoencodeInChunks(model, { ...inputs, image: 'x' } as never, { nChunks: 2 }), /^autoencodeInChunks: argument 'inputs.image' must be a Tensor \[B, T, 3, H, W\], got 'x'$/],
    [() => autoencodeInChunks(model, { ...inputs, audio: label }, { nChunks: 2 }), /^autoencodeInChunks: argument 'inputs.audio' must have rank 3 \[B, samples, 1\], got shape \[1, 7\]$/],
    [() => autoencodeInChunks(model, { ...inputs, label: null } as never, { nChunks: 2 }), /^autoencodeInChunks: argument 'inputs.label' must be a Tensor \[B, num_labels\], got null$/],
    [() => autoencodeInChunks(model, inputs, undefined as never), /^autoencodeInChunks: argument 'opts' must be an object, got undefined$/],
    [() => autoencodeInChunks(model, inputs, {} as never), /^autoencodeInChunks: argument 'opts.nChunks' must be an integer >= 1, got undefined$/],
    [() => autoencodeInChunks(model, inputs, { nChunks: 0 }), /^autoencodeInChunks: argument 'opts.nChunks' must be an integer >= 1, got number 0$/],
    [() => autoencodeInChunks(model, inputs, { nChunks: 2, reencode: 'yes' as never }), /^autoencodeInChunks: argument 'opts.reencode' must be a boolean, got 'yes'$/],
    [() => autoencodeInChunks(model, inputs, { nChunks: 2, onChunk: 5 as never }), /^autoencodeInChunks: argument 'opts.onChunk' must be a function, got number 5$/],
    [() => autoencodeInChunks(model, inputs, { nChunks: 513 }), /^autoencodeInChunks: argument 'opts.nChunks' must be at most 512 \(512 image points, 8 audio patches\), got number 513$/],
    // Whole patches, but not the config's count: half the audio came back from half the
    // grid, twice as much failed on a point outside it, as forward() refuses both.
    [() => autoencodeInChunks(model, { ...inputs, audio: half }, { nChunks: 2 }), /^autoencodeInChunks: argument 'inputs.audio' must hold 128 samples \(the config's 8 patches of 16\), got 64$/],
    [() => autoencodeInChunks(model, { ...inputs, audio: twice }, { nChunks: 2 }), /^autoencodeInChunks: argument 'inputs.audio' must hold 128 samples .*, got 256$/],
  ];
  for (const [f, message] of bad) await t.throwsAsync(f, { message }, String(message));
  for (const v of [half, twice]) v.dispose();
  t.throws(() => chunkRanges('3' as never, 2), { instanceOf: TypeError, message: /^chunkRanges: argument 'total' must be an integer >= 0, got '3'$/ });
  t.throws(() => chunkRanges(3, NaN), { instanceOf: RangeError, message: /^chunkRanges: argument 'n' must be an integer >= 1, got number NaN$/ });
  for (const v of [image, audio, label]) v.dispose();
  model.dispose();
});

test('autoencodeInChunks refuses a misspelt option, naming the op, the argument and the key', async (t) => {
  const model = new PerceiverForMultimodalAutoencoding(config);
  const inputs = { image: P.zeros([1, 2, 3, 16, 16]), audio: P.zeros([1, 128, 1]), label: P.zeros([1, 7]) };
  await assertUnknownOptions(t, [
    [() => autoencodeInChunks(model, inputs, { nChunks: 2, reEncode: true } as never), 'autoencodeInChunks', 'opts', 'reEncode'],
  ]);
  for (const v of Object.values(inputs)) v.dispose();
  model.dispose();
});
