// `perceiver fill-mask --model DIR "text <mask> ..."`: <mask> is one masked byte,
// <mask:N> N of them; the candidates are the model's softmax at the masked rows,
// checked against the library (tokenizer + model) run in this process.
import test from 'ava';
import { tensor } from '../lib/index.js';
import { fillMask, parseMaskedText } from '../models/fill-mask.js';
import { loadModel } from '../models/load.js';
import type { PerceiverForMaskedLM } from '../models/masked-lm.js';
import { BytesTokenizer } from '../models/tokenizer.js';
import { cli } from './helpers/cli-run.js';
import { caseDir } from './helpers/hf-fixture.js';

const MLM = caseDir('mlm');
const TEXT = 'Héllo <mask:3> wor<mask>d';
const tok = new BytesTokenizer();

interface Out {
  text: string;
  filled: string;
  masks: { position: number; candidates: { id: number; byte: number | null; token: string; probability: number }[] }[];
}

test('parseMaskedText: <mask> is one [MASK], <mask:N> N of them, the rest literal UTF-8 between [CLS] and [SEP]', (t) => {
  const { ids, maskPositions } = parseMaskedText('a<mask:2>é<mask>[MASK]');
  const b = (s: string) => [...Buffer.from(s, 'utf8')].map((x) => x + 6);
  t.deepEqual(ids, [4, ...b('a'), 3, 3, ...b('é'), 3, ...b('[MASK]'), 5]);
  t.deepEqual(maskPositions, [2, 3, 6]);
  t.throws(() => parseMaskedText('no masks'), { message: /has no <mask> \(write <mask> for one masked byte, <mask:N> for N\)/ });
  t.throws(() => parseMaskedText('<mask:0>'), { message: /'<mask:0>' must mask at least 1 byte/ });
});

test('--json: top-k per masked byte equals the model run through the library; the filled text takes the best byte', async (t) => {
  const r = await cli(['fill-mask', '--model', MLM, TEXT, '--top-k', '4', '--json']);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Out;
  t.is(out.text, TEXT);
  const { ids, maskPositions } = parseMaskedText(TEXT);
  // 'Héllo ' is 7 bytes, ' wor' 4 more: the masks are bytes 7, 8, 9 and 14 of the expanded text.
  t.deepEqual(out.masks.map((m) => m.position), [7, 8, 9, 14]);
  t.deepEqual(maskPositions, [8, 9, 10, 15], '+1 for the [CLS] in front');

  // On the suite's device, where the CLI child runs too.
  const model = (await loadModel(MLM)) as PerceiverForMaskedLM;
  const x = tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'int32' });
  const { logits } = model.forward(x);
  const probs = logits.softmax(-1);
  const p = (await probs.data()) as Float32Array;
  const V = 262;
  const filled = ids.slice();
  for (const [i, pos] of maskPositions.entries()) {
    const row = Array.from(p.subarray(pos * V, (pos + 1) * V));
    const order = row.map((v, id) => [v, id] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    const got = out.masks[i].candidates;
    t.deepEqual(got.map((c) => c.id), order.slice(0, 4).map(([, id]) => id), `mask ${i}: the same ranking`);
    for (const [k, c] of got.entries()) {
      // 1e-5: on CUDA the CLI's process may pick other GEMM algorithms than this one's.
      t.true(Math.abs(c.probability - order[k][0]) < 1e-5, `mask ${i} candidate ${k}: ${c.probability} vs ${order[k][0]}`);
      t.is(c.byte, c.id >= 6 ? c.id - 6 : null);
      t.is(c.token, tok.idToToken(c.id));
    }
    filled[pos] = order.find(([, id]) => id >= 6)![1];
  }
  t.is(out.filled, tok.decode(filled));
  t.true(out.filled.startsWith('Héllo ') && out.filled.endsWith('d'), 'unmasked bytes are kept');
  for (const z of [x, logits, probs]) z.dispose();
  model.dispose();

  const text = await cli(['fill-mask', '--model', MLM, TEXT, '--top-k', '4']);
  t.is(text.code, 0, text.stderr);
  const lines = text.stdout.trimEnd().split('\n');
  t.is(lines[0], `filled: ${out.filled}`, 'the same result as --json: runs are deterministic');
  t.is(lines.length, 5);
  t.regex(lines[1], /^ {2}byte 7: (\S+ \d+\.\d\d%, ){3}\S+ \d+\.\d\d%$/);
});

test('bad text or a model of another kind exit 1; bad flags exit 2', async (t) => {
  for (const [args, re] of [
    [['--model', MLM, 'nothing masked'], /the text has no <mask>/],
    [['--model', MLM, `${'x'.repeat(50)}<mask>`], /the text is 51 bytes, more than the 46 the model takes \(its 48 positions hold \[CLS\] and \[SEP\] too\)/],
    [['--model', caseDir('image_conv'), 'a <mask>'], /fill-mask needs a PerceiverForMaskedLM model, but '.*image_conv' holds a PerceiverForImageClassificationConvProcessing/],
  ] as [string[], RegExp][]) {
    const r = await cli(['fill-mask', ...args]);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.stderr, /^perceiver: error: /);
    t.regex(r.stderr, re);
  }
  for (const [args, re] of [
    [['--model', MLM], /fill-mask needs 1 positional argument, got 0/],
    [['--model', MLM, 'a <mask>', '--top-k', '0'], /--top-k must be an integer in \[1, 262\], got '0'/],
  ] as [string[], RegExp][]) {
    const r = await cli(['fill-mask', ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, re);
    t.regex(r.stderr, /Usage: perceiver fill-mask/);
  }
});

test("a text of 300,000 bytes parses (ids.push(...bytes) overflowed the stack), so fillMask can say it is longer than the model's positions", async (t) => {
  const long = 'a'.repeat(300_000);
  const { ids, maskPositions } = parseMaskedText(`${long}<mask>${long}`);
  t.is(ids.length, 600_003);
  t.deepEqual(maskPositions, [300_001]);
  t.throws(() => parseMaskedText('<mask:1048577>'), { instanceOf: RangeError, message: /'<mask:1048577>' must mask at least 1 byte and at most 1048576/ });
  const model = (await loadModel(MLM)) as PerceiverForMaskedLM;
  try {
    await t.throwsAsync(fillMask(model, `${long}<mask>`), { instanceOf: RangeError, message: `fillMask: the text is 300001 bytes, more than the ${model.config.max_position_embeddings - 2} the model takes (its ${model.config.max_position_embeddings} positions hold [CLS] and [SEP] too)` });
  } finally {
    model.dispose();
  }
});

test('parseMaskedText refuses an unpaired surrogate at its index in the whole text (the tokenizer sees only the pieces between masks)', (t) => {
  t.throws(() => parseMaskedText('ab<mask:2>c\ud800'), { instanceOf: RangeError, message: /^parseMaskedText: argument 'text' has an unpaired surrogate U\+D800 at index 11 / });
});

test("'--' ends the options: a text after it that looks like a flag (--help) is the text", async (t) => {
  const r = await cli(['fill-mask', '--model', MLM, '--json', '--', '--help <mask>']);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Out;
  t.is(out.text, '--help <mask>');
  t.is(out.masks.length, 1);
});
