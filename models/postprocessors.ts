// HF's output postprocessors: per-modality heads on the decoder output, and the
// multimodal one that splits the decoder output by modality (sorted order) first.
import { Linear, Module, ModuleDict, reshape, slice, tidy, type Tensor } from '../lib/index.js';
import type { PerceiverConfig } from './config.js';
import { describe } from '../lib/dtype.js';
import { configArg, deviceArg, INIT_OPTIONS, intArg, knownKeysArg, objectArg, tensorArg } from './args.js';

/** The decoder output [B, N, C] a postprocessor's forward takes. */
function inputsArg(op: string, inputs: unknown): Tensor {
  return tensorArg(op, 'inputs', inputs, { rank: 3, dtype: 'float', shape: '[B, N, C]' });
}

/** The (inChannels, opts) arguments of a Linear-headed postprocessor, opts of the keys known. */
function headArgs(op: string, inChannels: unknown, opts: { initStd?: number; device?: string }, known: readonly string[]): void {
  intArg(op, 'inChannels', inChannels, 1);
  objectArg(op, 'opts', opts);
  knownKeysArg(op, 'opts', opts, known);
  deviceArg(op, 'opts.device', opts.device);
}

export interface Postprocessor extends Module {
  forward(inputs: Tensor, modalitySizes?: Record<string, number>): Tensor | Record<string, Tensor>;
}

/** Linear to num_labels, then the first position: [B, N, C] -> [B, num_labels]. */
export class PerceiverClassificationPostprocessor extends Module {
  readonly classifier: Linear;
  constructor(config: PerceiverConfig, inChannels: number, opts: { device?: string } = {}) {
    super();
    configArg('PerceiverClassificationPostprocessor', config, ['num_labels']);
    headArgs('PerceiverClassificationPostprocessor', inChannels, opts, ['device']);
    this.classifier = this.registerModule('classifier', new Linear(inChannels, config.num_labels, { initStd: config.initializer_range, device: opts.device }));
  }
  forward(inputs: Tensor): Tensor {
    inputsArg('PerceiverClassificationPostprocessor.forward', inputs);
    return tidy(() => {
      const logits = this.classifier.forward(inputs);
      return reshape(slice(logits, 1, 0, 1), [logits.shape[0], logits.shape[2]]);
    });
  }
}

/** Linear to samples_per_patch, then flattened: [B, N, C] -> [B, N * samples_per_patch]. */
export class PerceiverAudioPostprocessor extends Module {
  readonly classifier: Linear;
  constructor(config: PerceiverConfig, inChannels: number, opts: { device?: string } = {}) {
    super();
    configArg('PerceiverAudioPostprocessor', config, ['samples_per_patch']);
    headArgs('PerceiverAudioPostprocessor', inChannels, opts, ['device']);
    this.classifier = this.registerModule('classifier', new Linear(inChannels, config.samples_per_patch, { initStd: config.initializer_range, device: opts.device }));
  }
  forward(inputs: Tensor): Tensor {
    inputsArg('PerceiverAudioPostprocessor.forward', inputs);
    return tidy(() => {
      const out = this.classifier.forward(inputs);
      return reshape(out, [out.shape[0], out.size / out.shape[0]]);
    });
  }
}

/** Linear on the channels: [B, N, C] -> [B, N, out]. */
export class PerceiverProjectionPostprocessor extends Module {
  readonly classifier: Linear;
  constructor(inChannels: number, outChannels: number, opts: { initStd?: number; device?: string } = {}) {
    super();
    headArgs('PerceiverProjectionPostprocessor', inChannels, opts, INIT_OPTIONS);
    intArg('PerceiverProjectionPostprocessor', 'outChannels', outChannels, 1);
    this.classifier = this.registerModule('classifier', new Linear(inChannels, outChannels, opts));
  }
  forward(inputs: Tensor): Tensor {
    inputsArg('PerceiverProjectionPostprocessor.forward', inputs);
    return this.classifier.forward(inputs);
  }
}

/** DeepMind's IdentityPostprocessor: the decoder output unchanged (a new view of it). */
export class PerceiverIdentityPostprocessor extends Module {
  forward(inputs: Tensor): Tensor {
    tensorArg('PerceiverIdentityPostprocessor.forward', 'inputs', inputs, { dtype: 'float' });
    return reshape(inputs, inputs.shape);
  }
}

/** Splits [B, N, C] by modality sizes (sorted names) and applies each modality's postprocessor. */
export class PerceiverMultimodalPostprocessor extends Module {
  readonly modalities: ModuleDict<Postprocessor>;
  constructor(modalities: Record<string, Postprocessor>) {
    super();
    const op = 'PerceiverMultimodalPostprocessor';
    objectArg(op, 'modalities', modalities, true);
    for (const [m, p] of Object.entries(modalities))
      if (!(p instanceof Module) || typeof p.forward !== 'function')
        throw new TypeError(`${op}: argument 'modalities.${m}' must be a postprocessor Module, got ${describe(p)}`);
    this.modalities = this.registerModule('modalities', new ModuleDict(modalities));
  }
  forward(inputs: Tensor, modalitySizes?: Record<string, number>): Record<string, Tensor> {
    const op = 'PerceiverMultimodalPostprocessor.forward';
    inputsArg(op, inputs);
    // Required: they say how to split the decoder output.
    const sizes = objectArg(op, 'modalitySizes', modalitySizes, true);
    for (const [m, n] of Object.entries(sizes)) intArg(op, `modalitySizes.${m}`, n, 0);
    const total = Object.values(sizes).reduce((a, b) => a + b, 0);
    if (total !== inputs.shape[1])
      throw new RangeError(`PerceiverMultimodalPostprocessor: modality sizes add up to ${total} but the decoder output has ${inputs.shape[1]} positions`);
    return tidy(() => {
      const out: Record<string, Tensor> = {};
      let start = 0;
      for (const m of Object.keys(sizes).sort()) {
        const part = slice(inputs, 1, start, start + sizes[m]);
        start += sizes[m];
        if (this.modalities.entries.has(m)) out[m] = this.modalities.get(m).forward(part) as Tensor;
      }
      return out;
    });
  }
}
