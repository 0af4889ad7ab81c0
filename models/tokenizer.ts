// The Perceiver bytes tokenizer (HF's PerceiverTokenizer): text is UTF-8 encoded and
// byte b becomes id b + 6; ids 0..5 are [PAD] [BOS] [EOS] [MASK] [CLS] [SEP]; the
// model's vocabulary is 262. A single sequence is framed as [CLS] bytes [SEP], a pair
// as [CLS] a [SEP] b [SEP] (HF's build_inputs_with_special_tokens). As in HF, the
// special tokens' spellings inside the text ("[MASK]", ...) are read as those tokens
// unless `parseSpecialTokens: false`. Decoding drops ids < 6 (unless
// `skipSpecialTokens: false`, which spells them out) and decodes the bytes as UTF-8
// with U+FFFD for invalid sequences, as Python's errors="replace". Two defaults are not
// HF's: decode skips the special tokens (DeepMind's to_string; HF's decode spells them
// unless skip_special_tokens=True), and maxLength implies truncation even with padding
// (HF truncates on max_length alone only when padding is off, and otherwise returns
// the overlong row uncut).

import { describe } from '../lib/dtype.js';
import { boolArg, intArg, knownKeysArg, objectArg, optionKeys } from './args.js';

/** The boolean fields of an options object that are given. */
function boolOptions(op: string, opts: object, keys: readonly string[]): void {
  for (const k of keys) {
    const v = (opts as Record<string, unknown>)[k];
    if (v !== undefined) boolArg(op, `opts.${k}`, v);
  }
}

/**
 * A token id: a number (else a TypeError naming name), then in [0, vocab) (else a
 * RangeError naming the id and, when given, its position; built only on failure).
 */
function idArg(op: string, name: string, id: unknown, position?: number): void {
  if (typeof id !== 'number') throw new TypeError(`${op}: argument '${name}' must be an integer id in [0, ${BytesTokenizer.VOCAB_SIZE}), got ${describe(id)}`);
  if (!Number.isInteger(id) || id < 0 || id >= BytesTokenizer.VOCAB_SIZE)
    throw new RangeError(`BytesTokenizer: id ${String(id)}${position === undefined ? '' : ` at position ${position}`} is not in [0, ${BytesTokenizer.VOCAB_SIZE})`);
}

export const SPECIAL_TOKENS = Object.freeze({ pad: 0, bos: 1, eos: 2, mask: 3, cls: 4, sep: 5 } as const);
export type SpecialTokenName = keyof typeof SPECIAL_TOKENS;
const SPELLING: readonly string[] = ['[PAD]', '[BOS]', '[EOS]', '[MASK]', '[CLS]', '[SEP]'];
const NUM_SPECIAL = 6;

export interface EncodeOptions {
  /** Frame with [CLS] ... [SEP] (default true). */
  addSpecialTokens?: boolean;
  /** Longest output, special tokens included. */
  maxLength?: number;
  /** 'max_length' pads to maxLength (default modelMaxLength); 'longest' (batches) to the longest row; false / 'do_not_pad' (default) never pads. */
  padding?: boolean | 'max_length' | 'longest' | 'do_not_pad';
  /**
   * Cut the content to fit maxLength (modelMaxLength if none), keeping the special
   * tokens. Default: true when maxLength is given, with or without padding (HF: only
   * without padding). Otherwise an overlong text is an error, also under padding
   * 'max_length' (which pads to modelMaxLength but, as HF, cuts nothing unless asked).
   */
  truncation?: boolean;
  /** Read "[MASK]", "[CLS]", ... in the text as the special tokens (default true, as HF). */
  parseSpecialTokens?: boolean;
  /** A second sequence: [CLS] a [SEP] b [SEP]. */
  pair?: string;
}

const ENCODE_OPTIONS = optionKeys<EncodeOptions>({ addSpecialTokens: true, maxLength: true, padding: true, truncation: true, parseSpecialTokens: true, pair: true });

export interface Encoding {
  ids: number[];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[];
}

export interface DecodeOptions {
  /** Drop ids 0..5 (default true); false writes them as "[CLS]", "[MASK]", ... */
  skipSpecialTokens?: boolean;
}

export class BytesTokenizer {
  static readonly VOCAB_SIZE = 262;
  readonly vocabSize = BytesTokenizer.VOCAB_SIZE;
  readonly numSpecialTokens = NUM_SPECIAL;
  readonly padTokenId = SPECIAL_TOKENS.pad;
  readonly bosTokenId = SPECIAL_TOKENS.bos;
  readonly eosTokenId = SPECIAL_TOKENS.eos;
  readonly maskTokenId = SPECIAL_TOKENS.mask;
  readonly clsTokenId = SPECIAL_TOKENS.cls;
  readonly sepTokenId = SPECIAL_TOKENS.sep;
  /** HF's model_max_length (the released model's max_position_embeddings). */
  readonly modelMaxLength: number;

  constructor(opts: { modelMaxLength?: number } = {}) {
    objectArg('BytesTokenizer', 'opts', opts);
    knownKeysArg('BytesTokenizer', 'opts', opts, ['modelMaxLength']);
    if (opts.modelMaxLength !== undefined) intArg('BytesTokenizer', 'opts.modelMaxLength', opts.modelMaxLength, 1);
    this.modelMaxLength = opts.modelMaxLength ?? 2048;
  }

  /** The ids of the text's bytes, no special tokens added (special spellings read as specials unless told not to). */
  tokenize(text: string, opts: { parseSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`BytesTokenizer: text must be a string, got ${describe(text)}`);
    objectArg('BytesTokenizer.tokenize', 'opts', opts);
    knownKeysArg('BytesTokenizer.tokenize', 'opts', opts, ['parseSpecialTokens']);
    boolOptions('BytesTokenizer.tokenize', opts, ['parseSpecialTokens']);
    wellFormedArg('BytesTokenizer.tokenize', 'text', text);
    const out: number[] = [];
    const pushBytes = (s: string): void => {
      for (const b of Buffer.from(s, 'utf8')) out.push(b + NUM_SPECIAL);
    };
    if (opts.parseSpecialTokens === false) {
      pushBytes(text);
      return out;
    }
    let i = 0;
    let start = 0;
    while (i < text.length) {
      let hit = -1;
      if (text.charCodeAt(i) === 0x5b /* [ */) hit = SPELLING.findIndex((s) => text.startsWith(s, i));
      if (hit >= 0) {
        pushBytes(text.slice(start, i));
        out.push(hit);
        i += SPELLING[hit].length;
        start = i;
      } else i++;
    }
    pushBytes(text.slice(start));
    return out;
  }

  encode(text: string, opts: EncodeOptions = {}): Encoding {
    objectArg('BytesTokenizer.encode', 'opts', opts);
    knownKeysArg('BytesTokenizer.encode', 'opts', opts, ENCODE_OPTIONS);
    boolOptions('BytesTokenizer.encode', opts, ['addSpecialTokens', 'truncation', 'parseSpecialTokens']);
    const { addSpecialTokens = true, parseSpecialTokens = true, pair } = opts;
    const padding = normalizePadding(opts.padding);
    // As HF: truncation: true or padding 'max_length' without maxLength use the model's maximum.
    const maxLength = opts.maxLength ?? (opts.truncation === true || padding === 'max_length' ? this.modelMaxLength : undefined);
    if (maxLength !== undefined && (!Number.isSafeInteger(maxLength) || maxLength < 1))
      throw new (typeof maxLength === 'number' ? RangeError : TypeError)(`BytesTokenizer: maxLength must be a positive integer: argument 'opts.maxLength' must be an integer >= 1, got ${describe(maxLength)}`);
    if (padding === 'longest') throw new RangeError(`BytesTokenizer: padding 'longest' applies to encodeBatch; a single text is its own longest`);
    if (pair !== undefined && typeof pair !== 'string') throw new TypeError(`BytesTokenizer.encode: argument 'opts.pair' must be a string, got ${describe(pair)}`);
    // Only an explicit maxLength implies truncation: 'max_length' padding alone asks for no cut.
    const truncation = opts.truncation ?? opts.maxLength !== undefined;

    // Checked here too so that an error names which of the two strings is broken.
    if (typeof text === 'string') wellFormedArg('BytesTokenizer.encode', 'text', text);
    if (pair !== undefined) wellFormedArg('BytesTokenizer.encode', 'opts.pair', pair);
    let a = this.tokenize(text, { parseSpecialTokens });
    let b = pair === undefined ? undefined : this.tokenize(pair, { parseSpecialTokens });
    const specials = addSpecialTokens ? (b === undefined ? 2 : 3) : 0;
    if (maxLength !== undefined) {
      const total = a.length + (b?.length ?? 0) + specials;
      if (total > maxLength) {
        if (!truncation)
          throw new RangeError(
            opts.maxLength === undefined
              ? `BytesTokenizer: the encoding has ${total} ids, more than the ${maxLength} (modelMaxLength) that padding 'max_length' pads to; pass truncation: true to cut it to ${maxLength}, or a larger maxLength`
              : `BytesTokenizer: the encoding has ${total} ids, more than maxLength ${maxLength} (truncation is off)`,
          );
        const budget = maxLength - specials;
        if (budget < 0) throw new RangeError(`BytesTokenizer: maxLength ${maxLength} cannot hold the ${specials} special tokens`);
        if (b === undefined) a = a.slice(0, budget);
        else {
          // HF's 'longest_first': remove from the longer sequence, one id at a time.
          let la = a.length;
          let lb = b.length;
          while (la + lb > budget) {
            if (la > lb) la--;
            else lb--;
          }
          a = a.slice(0, la);
          b = b.slice(0, lb);
        }
      }
    }
    const ids = addSpecialTokens
      ? b === undefined
        ? [SPECIAL_TOKENS.cls, ...a, SPECIAL_TOKENS.sep]
        : [SPECIAL_TOKENS.cls, ...a, SPECIAL_TOKENS.sep, ...b, SPECIAL_TOKENS.sep]
      : b === undefined
        ? a
        : [...a, ...b];
    const attentionMask = ids.map(() => 1);
    if (padding === 'max_length') padTo({ ids, attentionMask }, maxLength!);
    return { ids, attentionMask };
  }

  /** Encodes each text; padding 'longest' (or true) pads every row to the longest, 'max_length' to maxLength. */
  encodeBatch(texts: readonly string[], opts: EncodeOptions = {}): { ids: number[][]; attentionMask: number[][] } {
    if (!Array.isArray(texts)) throw new TypeError(`BytesTokenizer.encodeBatch: argument 'texts' must be an array of strings, got ${describe(texts)}`);
    objectArg('BytesTokenizer.encodeBatch', 'opts', opts);
    knownKeysArg('BytesTokenizer.encodeBatch', 'opts', opts, ENCODE_OPTIONS);
    if (opts.pair !== undefined) throw new TypeError(`BytesTokenizer: encodeBatch takes no pair`);
    const padding = normalizePadding(opts.padding);
    const rows = texts.map((t, i) => {
      if (typeof t !== 'string') throw new TypeError(`BytesTokenizer.encodeBatch: argument 'texts[${i}]' must be a string, got ${describe(t)}`);
      return this.encode(t, { ...opts, padding: padding === 'longest' ? false : padding });
    });
    if (padding === 'longest') {
      // A loop, not Math.max(...): spreading a large batch into arguments overflows the stack.
      let longest = 0;
      for (const r of rows) longest = Math.max(longest, r.ids.length);
      for (const r of rows) padTo(r, longest);
    }
    return { ids: rows.map((r) => r.ids), attentionMask: rows.map((r) => r.attentionMask) };
  }

  /** Ids to text: ids 0..5 dropped (or spelled out), bytes decoded as UTF-8 with U+FFFD replacement. */
  decode(ids: ArrayLike<number> | Iterable<number>, opts: DecodeOptions = {}): string {
    objectArg('BytesTokenizer.decode', 'opts', opts);
    knownKeysArg('BytesTokenizer.decode', 'opts', opts, ['skipSpecialTokens']);
    boolOptions('BytesTokenizer.decode', opts, ['skipSpecialTokens']);
    const skip = opts.skipSpecialTokens ?? true;
    const list = toIdArray(ids);
    let out = '';
    let bytes: number[] = [];
    const flush = (): void => {
      if (bytes.length) out += new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(Uint8Array.from(bytes));
      bytes = [];
    };
    list.forEach((id, i) => {
      idArg('BytesTokenizer.decode', `ids[${i}]`, id, i);
      if (id >= NUM_SPECIAL) bytes.push(id - NUM_SPECIAL);
      else if (!skip) {
        // HF joins all bytes (specials as their UTF-8 spelling) and decodes once; the
        // spellings are ASCII, so flushing first gives the same string.
        flush();
        out += SPELLING[id];
      }
    });
    flush();
    return out;
  }

  /** An id's token: special spelling, or the byte as a one-character latin-1 string (HF's _convert_id_to_token). */
  idToToken(id: number): string {
    idArg('BytesTokenizer.idToToken', 'id', id);
    return id < NUM_SPECIAL ? SPELLING[id] : String.fromCharCode(id - NUM_SPECIAL);
  }
}

/**
 * @internal Refuses a string with half a surrogate pair. UTF-8 has no bytes for one: encoding
 * would write U+FFFD's, a character the text never had. (In 'u' mode a paired
 * surrogate is one code point, so the class matches unpaired halves only.)
 */
export function wellFormedArg(op: string, name: string, text: string): void {
  const lone = /[\uD800-\uDFFF]/u.exec(text);
  if (lone)
    throw new RangeError(
      `${op}: argument '${name}' has an unpaired surrogate U+${lone[0].charCodeAt(0).toString(16).toUpperCase()} at index ${lone.index} (not a Unicode character; UTF-8 cannot encode it)`,
    );
}

function normalizePadding(p: EncodeOptions['padding']): 'max_length' | 'longest' | false {
  if (p === undefined || p === false || p === 'do_not_pad') return false;
  if (p === true || p === 'longest') return 'longest';
  if (p === 'max_length') return 'max_length';
  throw new TypeError(`BytesTokenizer: padding must be true, false, 'longest', 'max_length' or 'do_not_pad', got ${JSON.stringify(p)}`);
}

function padTo(e: Encoding, n: number): void {
  while (e.ids.length < n) {
    e.ids.push(SPECIAL_TOKENS.pad);
    e.attentionMask.push(0);
  }
}

function toIdArray(ids: ArrayLike<number> | Iterable<number>): number[] {
  const bad = (): never => {
    throw new TypeError(`BytesTokenizer.decode: argument 'ids' must be an array of ids, got ${describe(ids)}`);
  };
  if (ids === null || ids === undefined || typeof ids === 'string') bad();
  if (typeof (ids as Iterable<number>)[Symbol.iterator] === 'function') return Array.from(ids as Iterable<number>);
  if (typeof (ids as ArrayLike<number>).length === 'number') return Array.from(ids as ArrayLike<number>);
  return bad();
}
