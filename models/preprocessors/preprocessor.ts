// What every input preprocessor returns: the encoder's inputs [B, M, C], the same
// before position encodings were added (decoders with concat_preprocessed_input use
// it), and for multimodal inputs the length of each modality's run of positions.
import type { Module, Tensor } from '../../lib/index.js';

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
