// HF's PerceiverMultimodalPreprocessor: each modality is preprocessed, padded on the
// channel axis with its trainable `padding.<modality>` vector up to max(channels) +
// min_padding_size, optionally replaced position by position with its trainable
// `mask.<modality>` token (probability mask_probs[modality]; HF masks in eval mode too),
// and the modalities are concatenated along positions in sorted name order.
import { Module, ModuleDict, ParameterDict, broadcastTo, computeDtype, concat, initNormal, less, rand, tidy, toDtype, where, type Tensor } from '../../lib/index.js';
import { type Preprocessor, type PreprocessorInput, type PreprocessorOutput } from './preprocessor.js';
import { deviceArg, intArg, knownKeysArg, numberArg, objectArg, optionKeys, tensorArg } from '../args.js';
import { describe } from '../../lib/dtype.js';

export interface PerceiverMultimodalPreprocessorOptions {
  modalities: Record<string, Preprocessor>;
  /** Probability per modality that a position is replaced by the mask token. */
  maskProbs?: Record<string, number>;
  /** Default 2. */
  minPaddingSize?: number;
  initStd?: number;
  device?: string;
}

const MULTIMODAL_PREPROCESSOR_OPTIONS = optionKeys<PerceiverMultimodalPreprocessorOptions>({ modalities: true, maskProbs: true, minPaddingSize: true, initStd: true, device: true });

export class PerceiverMultimodalPreprocessor extends Module implements Preprocessor {
  readonly modalities: ModuleDict<Preprocessor>;
  readonly padding: ParameterDict;
  readonly mask: ParameterDict;
  readonly maskProbs: Record<string, number>;
  readonly numChannels: number;

  constructor(opts: PerceiverMultimodalPreprocessorOptions) {
    super();
    const op = 'PerceiverMultimodalPreprocessor';
    objectArg(op, 'opts', opts, true);
    knownKeysArg(op, 'opts', opts, MULTIMODAL_PREPROCESSOR_OPTIONS);
    objectArg(op, 'opts.modalities', opts.modalities, true);
    const entries = Object.entries(opts.modalities);
    if (entries.length === 0) throw new RangeError(`${op}: argument 'opts.modalities' must name at least one modality, got none`);
    for (const [m, p] of entries)
      if (!(p instanceof Module) || typeof (p as Preprocessor).numChannels !== 'number' || typeof p.forward !== 'function')
        throw new TypeError(`${op}: argument 'opts.modalities.${m}' must be a preprocessor Module, got ${describe(p)}`);
    if (opts.maskProbs !== undefined) {
      objectArg(op, 'opts.maskProbs', opts.maskProbs);
      for (const [m, p] of Object.entries(opts.maskProbs)) {
        if (!(m in opts.modalities)) throw new RangeError(`${op}: argument 'opts.maskProbs' names '${m}', which is not a modality (${Object.keys(opts.modalities).join(', ')})`);
        numberArg(op, `opts.maskProbs.${m}`, p, 0, 1);
      }
    }
    if (opts.minPaddingSize !== undefined) intArg(op, 'opts.minPaddingSize', opts.minPaddingSize, 0);
    if (opts.initStd !== undefined) numberArg(op, 'opts.initStd', opts.initStd, 0);
    deviceArg(op, 'opts.device', opts.device);
    const std = opts.initStd ?? 1;
    const device = opts.device;
    this.modalities = this.registerModule('modalities', new ModuleDict(opts.modalities));
    this.numChannels = Math.max(...Object.values(opts.modalities).map((p) => p.numChannels)) + (opts.minPaddingSize ?? 2);
    this.maskProbs = { ...(opts.maskProbs ?? {}) };
    for (const [m, p] of Object.entries(this.maskProbs))
      if (!(p >= 0 && p <= 1)) throw new RangeError(`PerceiverMultimodalPreprocessor: mask_probs['${m}'] must be in [0, 1], got ${p}`);
    const padding: Record<string, Tensor> = {};
    for (const [m, p] of Object.entries(opts.modalities)) padding[m] = initNormal([1, this.numChannels - p.numChannels], std, device);
    this.padding = this.registerModule('padding', new ParameterDict(padding));
    const mask: Record<string, Tensor> = {};
    for (const m of Object.keys(this.maskProbs)) mask[m] = initNormal([1, this.numChannels], std, device);
    this.mask = this.registerModule('mask', new ParameterDict(mask));
  }

  /** inputs: one tensor per modality (HF's dict) -> [B, sum of positions, numChannels]. */
  forward(inputs: PreprocessorInput): PreprocessorOutput {
    const op = 'PerceiverMultimodalPreprocessor.forward';
    objectArg(op, 'inputs', inputs as Record<string, Tensor>, true);
    const names = [...this.modalities.entries.keys()];
    for (const m of names)
      if (!(m in inputs)) throw new TypeError(`PerceiverMultimodalPreprocessor: inputs lack modality '${m}' (expected ${names.join(', ')})`);
      else tensorArg(op, `inputs.${m}`, (inputs as Record<string, Tensor>)[m]);
    return tidy(() => {
      const padded: Record<string, Tensor> = {};
      const inputsWithoutPos: Record<string, Tensor> = {};
      const modalitySizes: Record<string, number> = {};
      for (const [m, pre] of this.modalities.entries) {
        const out = pre.forward((inputs as Record<string, Tensor>)[m]);
        inputsWithoutPos[m] = out.inputsWithoutPos as Tensor;
        const [B, N, C] = out.inputs.shape;
        // Modalities meet in this module's compute dtype (its padding parameters').
        const padding = this.padding.get(m);
        const dt = computeDtype(padding);
        const pad = broadcastTo(toDtype(padding, dt), [B, N, this.numChannels - C]);
        let x = concat([toDtype(out.inputs, dt), pad], 2);
        const p = this.maskProbs[m];
        // p = 0 and p = 1 are exact (rand is in [0, 1)); in between it draws per position.
        if (p !== undefined && p > 0) {
          const masked = less(rand([B, N, 1], { device: x.device }), p);
          x = where(masked, broadcastTo(toDtype(this.mask.get(m), dt), [B, N, this.numChannels]), x);
        }
        padded[m] = x;
        modalitySizes[m] = N;
      }
      const order = Object.keys(padded).sort();
      const sizes: Record<string, number> = {};
      for (const m of order) sizes[m] = modalitySizes[m];
      return { inputs: concat(order.map((m) => padded[m]), 1), inputsWithoutPos, modalitySizes: sizes };
    });
  }
}
