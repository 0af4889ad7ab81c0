// BytesTokenizer: HF PerceiverTokenizer semantics (UTF-8 bytes + 6, specials 0..5,
// [CLS] ... [SEP] framing, decode with U+FFFD replacement).
import test from 'ava';
import { BytesTokenizer, SPECIAL_TOKENS } from '../models/index.js';
import { assertUnknownOptions } from './helpers/options.js';

const tok = new BytesTokenizer();

test('ids are UTF-8 bytes + 6 between [CLS] and [SEP]', (t) => {
  const { ids, attentionMask } = tok.encode('Hi!');
  t.deepEqual(ids, [4, 72 + 6, 105 + 6, 33 + 6, 5]);
  t.deepEqual(attentionMask, [1, 1, 1, 1, 1]);
  t.deepEqual(tok.encode('Hi!', { addSpecialTokens: false }).ids, [78, 111, 39]);
  t.is(tok.vocabSize, 262);
  t.deepEqual({ ...SPECIAL_TOKENS }, { pad: 0, bos: 1, eos: 2, mask: 3, cls: 4, sep: 5 });
  t.deepEqual(tok.encode('').ids, [4, 5]);
});

test('round trips, multi-byte UTF-8 included', (t) => {
  for (const s of ['', 'plain ASCII', 'héllo wörld', '日本語のテキスト', 'emoji 😀👍🏽 and 𝄞', '\u0000\u007f\u0080\u07ff\u0800\uffff', '\ufeffBOM kept']) {
    const { ids } = tok.encode(s);
    t.is(ids.length, Buffer.byteLength(s, 'utf8') + 2, s);
    t.true(ids.slice(1, -1).every((i) => i >= 6 && i < 262));
    t.is(tok.decode(ids), s);
    t.is(tok.decode(Int32Array.from(ids)), s, 'typed arrays decode too');
  }
  // '€' is E2 82 AC.
  t.deepEqual(tok.encode('€', { addSpecialTokens: false }).ids, [0xe2 + 6, 0x82 + 6, 0xac + 6]);
});

test('special tokens: dropped by default, spelled out on request, parsed from text', (t) => {
  t.is(tok.decode([4, 78, 3, 3, 111, 5, 0, 0]), 'Hi');
  t.is(tok.decode([4, 78, 3, 111, 5, 0], { skipSpecialTokens: false }), '[CLS]H[MASK]i[SEP][PAD]');
  t.is(tok.decode([1, 2]), '');
  // As HF: "[MASK]" in the text is the mask token.
  t.deepEqual(tok.encode('a[MASK]b', { addSpecialTokens: false }).ids, [97 + 6, 3, 98 + 6]);
  t.deepEqual(tok.encode('[CLS][SEP][PAD][BOS][EOS]', { addSpecialTokens: false }).ids, [4, 5, 0, 1, 2]);
  t.deepEqual(tok.encode('[MASK', { addSpecialTokens: false }).ids, Array.from(Buffer.from('[MASK'), (b) => b + 6));
  t.deepEqual(tok.encode('a[MASK]', { addSpecialTokens: false, parseSpecialTokens: false }).ids, Array.from(Buffer.from('a[MASK]'), (b) => b + 6));
  t.deepEqual(tok.encode('x', { pair: 'y' }).ids, [4, 126, 5, 127, 5]);
  t.is(tok.idToToken(3), '[MASK]');
  t.is(tok.idToToken(6 + 65), 'A');
});

test('invalid UTF-8 decodes with U+FFFD, as Python errors="replace"', (t) => {
  const ids = (bytes: number[]): number[] => bytes.map((b) => b + 6);
  t.is(tok.decode(ids([0xff])), '\ufffd');
  t.is(tok.decode(ids([0x61, 0x80, 0x62])), 'a\ufffdb', 'lone continuation byte');
  t.is(tok.decode(ids([0xe2, 0x82])), '\ufffd', 'truncated 3-byte sequence: one replacement');
  t.is(tok.decode(ids([0xe2, 0x82, 0x41])), '\ufffdA');
  t.is(tok.decode(ids([0xc0, 0xaf])), '\ufffd\ufffd', 'overlong encoding');
  t.is(tok.decode(ids([0xed, 0xa0, 0x80])), '\ufffd\ufffd\ufffd', 'UTF-16 surrogate');
  // A multi-byte character cut by a special token stays broken, as in HF (specials are skipped, bytes joined).
  t.is(tok.decode([...ids([0xe2, 0x82]), 3, ...ids([0xac])]), '€');
  // The masked-LM demo's view: a byte cut in half by truncation.
  const { ids: cut } = tok.encode('€uro', { maxLength: 3 });
  t.deepEqual(cut, [4, 0xe2 + 6, 5]);
  t.is(tok.decode(cut), '\ufffd');
});

test('padding and truncation', (t) => {
  t.deepEqual(tok.encode('ab', { maxLength: 6, padding: 'max_length' }), {
    ids: [4, 103, 104, 5, 0, 0],
    attentionMask: [1, 1, 1, 1, 0, 0],
  });
  t.deepEqual(tok.encode('abcdef', { maxLength: 5 }).ids, [4, 103, 104, 105, 5], 'truncated, [SEP] kept');
  t.deepEqual(tok.encode('abcdef', { maxLength: 5, padding: 'max_length' }).attentionMask, [1, 1, 1, 1, 1]);
  t.deepEqual(tok.encode('abcdef', { maxLength: 3, addSpecialTokens: false }).ids, [103, 104, 105]);
  t.deepEqual(tok.encode('abcd', { pair: 'xy', maxLength: 6 }).ids, [4, 103, 104, 5, 126, 5], 'longest_first');
  t.deepEqual(tok.encode('ab', { maxLength: 2 }).ids, [4, 5]);
  t.deepEqual(tok.encode('abc', { maxLength: 10 }).ids.length, 5, 'no padding unless asked');
  const batch = tok.encodeBatch(['a', 'abc', ''], { padding: 'longest' });
  t.deepEqual(batch.ids, [
    [4, 103, 5, 0, 0],
    [4, 103, 104, 105, 5],
    [4, 5, 0, 0, 0],
  ]);
  t.deepEqual(batch.attentionMask, [
    [1, 1, 1, 0, 0],
    [1, 1, 1, 1, 1],
    [1, 1, 0, 0, 0],
  ]);
  t.deepEqual(tok.encodeBatch(['a', 'abcdef'], { padding: 'max_length', maxLength: 4 }).ids, [
    [4, 103, 5, 0],
    [4, 103, 104, 5],
  ]);
  t.deepEqual(tok.encodeBatch([]).ids, []);
  // As HF: without maxLength, truncation and 'max_length' padding use model_max_length (2048).
  t.is(tok.encode('a', { padding: 'max_length' }).ids.length, 2048);
  t.is(tok.encode('x'.repeat(3000), { truncation: true }).ids.length, 2048);
  t.is(tok.encode('x'.repeat(3000)).ids.length, 3002, 'no truncation unless asked');
  const small = new BytesTokenizer({ modelMaxLength: 4 });
  t.deepEqual(small.encode('abcdef', { truncation: true }).ids, [4, 103, 104, 5]);
  t.deepEqual(small.encode('a', { padding: 'max_length' }).attentionMask, [1, 1, 1, 0]);
});

test('bad input gives clear errors', (t) => {
  t.throws(() => tok.encode(42 as unknown as string), { instanceOf: TypeError, message: /text must be a string, got number/ });
  t.throws(() => tok.encode(null as unknown as string), { instanceOf: TypeError, message: /got null/ });
  t.throws(() => tok.encode('a', { maxLength: 0 }), { instanceOf: RangeError, message: /maxLength must be a positive integer/ });
  t.throws(() => tok.encode('a', { maxLength: 2.5 }), { instanceOf: RangeError, message: /maxLength/ });
  t.throws(() => tok.encode('a', { maxLength: 1 }), { instanceOf: RangeError, message: /cannot hold the 2 special tokens/ });
  t.throws(() => tok.encode('a', { padding: 'left' as never }), { instanceOf: TypeError, message: /padding must be/ });
  t.throws(() => tok.encode('abcdef', { maxLength: 4, truncation: false }), { instanceOf: RangeError, message: /8 ids, more than maxLength 4/ });
  t.throws(() => tok.encodeBatch(['a', 3 as unknown as string]), { instanceOf: TypeError, message: /'texts\[1\]' must be a string, got number 3/ });
  t.throws(() => tok.decode([4, 262]), { instanceOf: RangeError, message: /id 262 at position 1 is not in \[0, 262\)/ });
  t.throws(() => tok.decode([-1]), { instanceOf: RangeError });
  t.throws(() => tok.decode([6.5]), { instanceOf: RangeError });
  t.throws(() => tok.decode(['7' as unknown as number]), { instanceOf: TypeError, message: /argument 'ids\[0\]' must be an integer id in \[0, 262\), got '7'/ });
  t.throws(() => tok.decode('abc' as unknown as number[]), { instanceOf: TypeError, message: /array of ids/ });
  t.throws(() => tok.idToToken(300), { instanceOf: RangeError });
  t.throws(() => new BytesTokenizer({ modelMaxLength: 0 }), { instanceOf: RangeError });
});

test('every entry point checks its arguments: type, name, expected and what came', (t) => {
  const tok = new BytesTokenizer();
  const cases: [() => unknown, RegExp][] = [
    [() => new BytesTokenizer(null as never), /^BytesTokenizer: argument 'opts' must be an object, got null/],
    [() => new BytesTokenizer({ modelMaxLength: 'x' as never }), /^BytesTokenizer: argument 'opts.modelMaxLength' must be an integer >= 1, got 'x'/],
    [() => tok.tokenize('hi', null as never), /^BytesTokenizer.tokenize: argument 'opts' must be an object, got null/],
    [() => tok.encode('hi', 'x' as never), /^BytesTokenizer.encode: argument 'opts' must be an object, got 'x'/],
    [() => tok.encode('hi', { truncation: 1 as never }), /^BytesTokenizer.encode: argument 'opts.truncation' must be a boolean, got number 1/],
    [() => tok.encodeBatch(5 as never), /^BytesTokenizer.encodeBatch: argument 'texts' must be an array of strings, got number 5/],
    [() => tok.decode([7], null as never), /^BytesTokenizer.decode: argument 'opts' must be an object, got null/],
    [() => tok.decode({} as never), /^BytesTokenizer.decode: argument 'ids' must be an array of ids, got Object/],
    [() => tok.decode(['a' as never]), /^BytesTokenizer.decode: argument 'ids\[0\]' must be an integer id in \[0, 262\), got 'a'/],
    [() => tok.idToToken(undefined as never), /^BytesTokenizer.idToToken: argument 'id' must be an integer id in \[0, 262\), got undefined/],
  ];
  for (const [call, message] of cases) t.throws(call, { message }, String(message));
});

test("padding 'max_length' without a maxLength pads to modelMaxLength and, as HF, cuts nothing unless asked: an overlong text is an error naming the lengths", (t) => {
  t.throws(() => tok.encode('x'.repeat(3000), { padding: 'max_length' }), {
    instanceOf: RangeError,
    message: "BytesTokenizer: the encoding has 3002 ids, more than the 2048 (modelMaxLength) that padding 'max_length' pads to; pass truncation: true to cut it to 2048, or a larger maxLength",
  });
  t.throws(() => tok.encodeBatch(['a', 'x'.repeat(3000)], { padding: 'max_length' }), { instanceOf: RangeError, message: /3002 ids, more than the 2048/ });
  t.is(tok.encode('x'.repeat(3000), { padding: 'max_length', truncation: true }).ids.length, 2048);
  t.is(tok.encode('x'.repeat(2046), { padding: 'max_length' }).ids.length, 2048, 'a text that fits is padded as before');
  // An explicit maxLength still implies truncation.
  t.deepEqual(tok.encode('abcdef', { maxLength: 5, padding: 'max_length' }).ids, [4, 103, 104, 105, 5]);
});

test('an unpaired surrogate is refused with its index (UTF-8 cannot encode it; it became U+FFFD, a character the text never had)', (t) => {
  t.throws(() => tok.encode('ab\ud800'), { instanceOf: RangeError, message: /^BytesTokenizer.encode: argument 'text' has an unpaired surrogate U\+D800 at index 2 / });
  t.throws(() => tok.encode('\udc00x'), { message: /unpaired surrogate U\+DC00 at index 0/ });
  t.throws(() => tok.encode('\ud83d\ud83d\ude00'), { message: /U\+D83D at index 0/, }, 'a high half followed by a full pair');
  t.throws(() => tok.encode('ok', { pair: '😀\ude00' }), { message: /^BytesTokenizer.encode: argument 'opts.pair' has an unpaired surrogate U\+DE00 at index 2 / });
  t.throws(() => tok.tokenize('a\ud800b'), { message: /^BytesTokenizer.tokenize: argument 'text' has an unpaired surrogate U\+D800 at index 1 / });
  t.throws(() => tok.encodeBatch(['fine', 'z\udfff']), { message: /U\+DFFF at index 1/ });
  t.deepEqual(tok.encode('😀', { addSpecialTokens: false }).ids, [0xf0 + 6, 0x9f + 6, 0x98 + 6, 0x80 + 6], 'a pair is one character');
});

test("encodeBatch pads a batch of 200,000 rows to the longest (Math.max(...rows) overflowed the stack)", (t) => {
  const texts = Array.from({ length: 200_000 }, (_, i) => (i === 7 ? 'abc' : ''));
  const { ids } = tok.encodeBatch(texts, { padding: 'longest' });
  t.is(ids.length, 200_000);
  t.deepEqual(ids[0], [4, 5, 0, 0, 0]);
});

test('BytesTokenizer refuses a misspelt option, naming the method, the argument and the key', async (t) => {
  const tok = new BytesTokenizer();
  await assertUnknownOptions(t, [
    [() => new BytesTokenizer({ maxLength: 16 } as never), 'BytesTokenizer', 'opts', 'maxLength'],
    [() => tok.tokenize('a', { parseSpecial: false } as never), 'BytesTokenizer.tokenize', 'opts', 'parseSpecial'],
    [() => tok.encode('a', { max_length: 4 } as never), 'BytesTokenizer.encode', 'opts', 'max_length'],
    [() => tok.encodeBatch(['a', 'bc'], { pad: 'longest' } as never), 'BytesTokenizer.encodeBatch', 'opts', 'pad'],
    [() => tok.decode([7, 8], { skipSpecial: false } as never), 'BytesTokenizer.decode', 'opts', 'skipSpecial'],
  ]);
});
