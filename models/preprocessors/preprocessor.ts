// What every input preprocessor returns: the encoder's inputs [B, M, C], the same
// before position encodings were added (decoders with concat_preprocessed_input use
// it), and for multimodal inputs the length of each modality's run of positions.
import type { Module, Tensor } from '../../lib/index.js';
import { describe } from '../../lib/dtype.js';
import { intArg, objectArg } from '../args.js';

/** One tensor, or HF's dict of tensors per modality (`inputs.image`, `inputs.audio`, ...). */
export type PreprocessorInput = Tensor | Record<string, Tensor>;

export interface PreprocessorOutput {
  /** [B, M, numChannels]. */
  inputs: Tensor;
  /** [B, M, C'] without the position encoding (per modality for multimodal inputs). */
  inputsWithoutPos: Tensor | Record<string, Tensor>;
  /** Positions per modality, in the sorted order they are concatenated in. */
  modalitySizes?: Record<string, number>;
}

export interface PreprocessorOptions {
  /** Image inputs with a trainable position table: resize it to the image (HF's interpolate_pos_encoding). */
  interpolatePosEncoding?: boolean;
}

export interface Preprocessor extends Module {
  /** Channels of `inputs` (the encoder cross-attention's kv_dim). */
  readonly numChannels: number;
  forward(inputs: PreprocessorInput, opts?: PreprocessorOptions): PreprocessorOutput;
}

/**
 * A PerceiverConfig given to a block's constructor: an object whose named fields are
 * positive integers (the ones the block reads). perceiverConfig() checks a whole
 * config; this keeps a block given a hand-made or foreign object from failing inside.
 */
export function configArg<C extends object>(op: string, config: C, positiveInts: readonly (keyof C & string)[] = []): C {
  objectArg(op, 'config', config, true);
  for (const k of positiveInts) intArg(op, `config.${k}`, config[k], 1);
  return config;
}

/** v is one of the strings allowed (undefined passes: the caller applies its default). */
export function oneOfArg(op: string, name: string, v: unknown, allowed: readonly string[]): void {
  if (v !== undefined && !allowed.includes(v as string))
    throw new TypeError(`${op}: argument '${name}' must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${describe(v)}`);
}

/** A device name, when given. */
export function deviceArg(op: string, name: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'string') throw new TypeError(`${op}: argument '${name}' must be a string, got ${describe(v)}`);
}

/** The keys of an options object that are not among the known ones, refused with a message naming those. */
export function knownKeysArg(op: string, name: string, opts: object, known: readonly string[]): void {
  const unknown = Object.keys(opts).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw new TypeError(`${op}: argument '${name}' has unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${known.join(', ')})`);
}
