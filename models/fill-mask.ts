// Masked-byte filling with PerceiverForMaskedLM, as in HF's model card: the text is
// framed as [CLS] bytes+6 [SEP], the masked bytes are [MASK] (id 3) one per byte, and
// the model's distribution at each masked row gives the candidates.
//
// Mask syntax in the text: `<mask>` is one masked byte, `<mask:N>` N masked bytes
// (N >= 1). Everything else is taken literally as UTF-8 (a "[MASK]" spelling is just
// six bytes here). The filled text puts at each masked byte the most probable *byte*
// (ids 6..261): special tokens are not bytes and cannot appear in text, though they
// are listed among the candidates when the model ranks them high.
// The registry first: a task model's module loads the registry (through save.ts), which
// must finish loading every task model before it is read.
import { ARCHITECTURES } from './registry.js';
import { tensor, type Tensor } from '../lib/index.js';
import type { PerceiverForMaskedLM } from './masked-lm.js';
import { describe } from '../lib/dtype.js';
import { knownKeysArg, objectArg } from './args.js';
import { BytesTokenizer, wellFormedArg } from './tokenizer.js';

export interface MaskedText {
  /** [CLS] ... [SEP] with [MASK] at the masked bytes. */
  ids: number[];
  /** Indices into ids of the masked bytes, ascending. */
  maskPositions: number[];
}

export interface MaskCandidate {
  id: number;
  /** The byte value (id - 6), or null for a special token. */
  byte: number | null;
  /** The byte as a latin-1 character, or the special token's spelling. */
  token: string;
  probability: number;
}

export interface FillMaskResult {
  /** The text with every masked byte replaced by the most probable byte, decoded as UTF-8 (U+FFFD for invalid sequences). */
  filled: string;
  /** One entry per masked byte, in text order. */
  masks: { position: number; candidates: MaskCandidate[] }[];
}

const MASK_RE = /<mask(?::(\d+))?>/g;

/** Reads `<mask>` / `<mask:N>` in the text into ids with [MASK] tokens. */
export function parseMaskedText(text: string, tokenizer = new BytesTokenizer()): MaskedText {
  if (typeof text !== 'string') throw new TypeError(`parseMaskedText: argument 'text' must be a string, got ${describe(text)}`);
  if (!(tokenizer instanceof BytesTokenizer)) throw new TypeError(`parseMaskedText: argument 'tokenizer' must be a BytesTokenizer, got ${describe(tokenizer)}`);
  // Here, where the index is the text's (the tokenizer sees the pieces between masks).
  wellFormedArg('parseMaskedText', 'text', text);
  const ids: number[] = [tokenizer.clsTokenId];
  const maskPositions: number[] = [];
  // One push per id: ids.push(...bytes) passes every byte as an argument, and a text
  // of some 150k bytes overflows the stack before fillMask can say it is too long.
  const append = (bytes: number[]): void => {
    for (const b of bytes) ids.push(b);
  };
  let last = 0;
  for (const m of text.matchAll(MASK_RE)) {
    append(tokenizer.tokenize(text.slice(last, m.index), { parseSpecialTokens: false }));
    const n = m[1] === undefined ? 1 : Number(m[1]);
    if (!Number.isSafeInteger(n) || n < 1 || n > 1 << 20) throw new RangeError(`parseMaskedText: '${m[0]}' must mask at least 1 byte and at most ${1 << 20}`);
    for (let i = 0; i < n; i++) {
      maskPositions.push(ids.length);
      ids.push(tokenizer.maskTokenId);
    }
    last = m.index + m[0].length;
  }
  append(tokenizer.tokenize(text.slice(last), { parseSpecialTokens: false }));
  ids.push(tokenizer.sepTokenId);
  if (maskPositions.length === 0) throw new RangeError(`parseMaskedText: the text has no <mask> (write <mask> for one masked byte, <mask:N> for N)`);
  return { ids, maskPositions };
}

/** Fills the masked bytes of `text` (see the file comment for the syntax); topK candidates per masked byte. */
export async function fillMask(model: PerceiverForMaskedLM, text: string, opts: { topK?: number; device?: string } = {}): Promise<FillMaskResult> {
  if (!(model instanceof ARCHITECTURES.PerceiverForMaskedLM)) throw new TypeError(`fillMask: argument 'model' must be a PerceiverForMaskedLM, got ${describe(model)}`);
  if (typeof text !== 'string') throw new TypeError(`fillMask: argument 'text' must be a string, got ${describe(text)}`);
  opts = objectArg('fillMask', 'opts', opts);
  knownKeysArg('fillMask', 'opts', opts, ['topK', 'device']);
  const topK = opts.topK ?? 5;
  const tokenizer = new BytesTokenizer();
  if (!Number.isSafeInteger(topK) || topK < 1 || topK > tokenizer.vocabSize) throw new RangeError(`fillMask: topK must be an integer in [1, ${tokenizer.vocabSize}], got ${String(topK)}`);
  const { ids, maskPositions } = parseMaskedText(text, tokenizer);
  const maxLen = model.config.max_position_embeddings;
  if (ids.length > maxLen)
    throw new RangeError(`fillMask: the text is ${ids.length - 2} bytes, more than the ${maxLen - 2} the model takes (its ${maxLen} positions hold [CLS] and [SEP] too)`);
  const V = model.config.vocab_size;
  const first = maskPositions[0];
  const lastPos = maskPositions[maskPositions.length - 1];
  const input: Tensor = tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'int32', device: opts.device });
  let probs: Float32Array;
  try {
    const { logits } = model.forward(input);
    // Unpadded input: no attention mask needed (padding keys are masked out anyway).
    const rows = logits.slice(1, first, lastPos + 1);
    const p = rows.softmax(-1);
    try {
      probs = Float32Array.from((await p.data()) as Float32Array);
    } finally {
      for (const t of [logits, rows, p]) t.dispose();
    }
  } finally {
    input.dispose();
  }
  const filledIds = ids.slice();
  const masks = maskPositions.map((pos) => {
    const row = probs.subarray((pos - first) * V, (pos - first + 1) * V);
    const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
    let bestByte = tokenizer.numSpecialTokens;
    for (const id of order)
      if (id >= tokenizer.numSpecialTokens) {
        bestByte = id;
        break;
      }
    filledIds[pos] = bestByte;
    const candidates = order.slice(0, topK).map((id) => ({
      id,
      byte: id >= tokenizer.numSpecialTokens ? id - tokenizer.numSpecialTokens : null,
      token: tokenizer.idToToken(id),
      probability: row[id],
    }));
    return { position: pos - 1, candidates };
  });
  return { filled: tokenizer.decode(filledIds), masks };
}
