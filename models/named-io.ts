// Task models called with HF's forward() argument names, flattened with dots
// (`inputs.image`, `subsampled_output_points.audio`), and their outputs named as HF
// returns them (`logits`, or `logits.<modality>`). This is the contract of the CLI
// and of users in other languages: a safetensors file of named inputs in, one of
// named outputs out.
// The registry first: a task model's module loads the registry (through save.ts), which
// must finish loading every task model before it is read.
import { ARCHITECTURES } from './registry.js';
import { Module, Tensor } from '../lib/index.js';
import { describe } from '../lib/dtype.js';
import { knownKeysArg, objectArg, optionKeys } from './args.js';
import { PerceiverForMaskedLM } from './masked-lm.js';
import { PerceiverForSequenceClassification } from './sequence-classification.js';
import { PerceiverForImageClassificationFourier } from './image-classification-fourier.js';
import { PerceiverForImageClassificationLearned } from './image-classification-learned.js';
import { PerceiverForImageClassificationConvProcessing } from './image-classification-conv.js';
import { PerceiverForOpticalFlow } from './optical-flow.js';
import { PerceiverForMultimodalAutoencoding } from './multimodal-autoencoding.js';
import type { LoadedModel } from './load.js';
import { interpolateFlag } from './perceiver.js';

export interface NamedInputSpec {
  /** Every name the model reads. */
  accepted: string[];
  /** Names that must be present. */
  required: string[];
  /** Alternatives of which exactly one must be present (HF's `inputs` / `pixel_values`). */
  oneOf?: string[];
}

/** Names HF's forward() takes that only matter for training; given, they are skipped. */
export function isIgnoredInput(name: string): boolean {
  if (typeof name !== 'string') throw new TypeError(`isIgnoredInput: argument 'name' must be a string, got ${describe(name)}`);
  return name === 'labels' || name.startsWith('loss_weights.');
}

export function namedInputSpec(model: LoadedModel): NamedInputSpec {
  return specOf('namedInputSpec', model);
}

function specOf(op: string, model: LoadedModel): NamedInputSpec {
  if (!(model instanceof Module)) throw new TypeError(`${op}: argument 'model' must be a Perceiver task model (${Object.keys(ARCHITECTURES).join(', ')}), got ${describe(model)}`);
  if (model instanceof PerceiverForMaskedLM || model instanceof PerceiverForSequenceClassification)
    return { accepted: ['inputs', 'attention_mask'], required: ['inputs'] };
  if (isImageClassifier(model))
    // HF takes the image as pixel_values or (older name) inputs, never both.
    return { accepted: ['pixel_values', 'inputs'], required: [], oneOf: ['pixel_values', 'inputs'] };
  if (model instanceof PerceiverForOpticalFlow) return { accepted: ['inputs'], required: ['inputs'] };
  if (model instanceof PerceiverForMultimodalAutoencoding) {
    // Without subsampled points HF builds Fourier queries over its inputs' channel axis
    // (decoder_query's inputs.shape[2:]), while the decoders here take DeepMind's full
    // output grid: the two disagree, so the CLI keeps HF's contract by requiring points.
    const names = ['inputs.audio', 'inputs.image', 'inputs.label', 'subsampled_output_points.audio', 'subsampled_output_points.image'];
    return { accepted: names, required: names };
  }
  throw new TypeError(`${op}: argument 'model' must be a Perceiver task model (${Object.keys(ARCHITECTURES).join(', ')}), got ${describe(model)}, which has no named-input mapping`);
}

/**
 * Checks names against the model: unknown names and missing required ones are an
 * error listing what the model accepts. Returns the names that are skipped.
 */
export function checkNamedInputs(model: LoadedModel, names: readonly string[]): { ignored: string[] } {
  return checkNames('checkNamedInputs', model, names);
}

function checkNames(op: string, model: LoadedModel, names: readonly string[]): { ignored: string[] } {
  const spec = specOf(op, model);
  if (!Array.isArray(names)) throw new TypeError(`${op}: argument 'names' must be an array of input names, got ${describe(names)}`);
  names.forEach((n, i) => {
    if (typeof n !== 'string') throw new TypeError(`${op}: argument 'names[${i}]' must be a string, got ${describe(n)}`);
  });
  const cls = (model as object).constructor.name;
  const ignored = names.filter(isIgnoredInput);
  const unknown = names.filter((n) => !isIgnoredInput(n) && !spec.accepted.includes(n));
  const problems: string[] = [];
  if (unknown.length) problems.push(`unknown input${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${n}'`).join(', ')}`);
  const missing = spec.required.filter((n) => !names.includes(n));
  if (missing.length) problems.push(`missing input${missing.length > 1 ? 's' : ''} ${missing.map((n) => `'${n}'`).join(', ')}`);
  if (spec.oneOf) {
    const given = spec.oneOf.filter((n) => names.includes(n));
    if (given.length !== 1) problems.push(`give exactly one of ${spec.oneOf.map((n) => `'${n}'`).join(' or ')}${given.length ? ' (both were given)' : ''}`);
  }
  if (problems.length)
    throw new Error(
      `${cls}: ${problems.join('; ')}. It accepts: ${spec.accepted.join(', ')}` +
        (spec.required.length ? ` (required: ${spec.required.join(', ')})` : '') +
        '; loss_weights.* and labels are ignored',
    );
  return { ignored };
}

async function indices(name: string, t: Tensor): Promise<Int32Array> {
  if (t.dtype !== 'int32') throw new TypeError(`'${name}' must hold integer indices (int32 or int64), got ${t.dtype}`);
  if (t.rank !== 1) throw new RangeError(`'${name}' must be 1-D flat indices, got shape [${t.shape.join(', ')}]`);
  return (await t.data()) as Int32Array;
}

export interface ForwardNamedOptions {
  /** HF's interpolate_pos_encoding, for the image classifiers (see PerceiverImageClassifier.forward). */
  interpolatePosEncoding?: boolean;
}

const FORWARD_NAMED_OPTIONS = optionKeys<ForwardNamedOptions>({ interpolatePosEncoding: true });

function isImageClassifier(model: LoadedModel): boolean {
  return (
    model instanceof PerceiverForImageClassificationFourier ||
    model instanceof PerceiverForImageClassificationLearned ||
    model instanceof PerceiverForImageClassificationConvProcessing
  );
}

/**
 * Runs model on HF-named inputs; returns HF-named outputs (the caller owns and
 * disposes them) and the input names that were skipped.
 */
export async function forwardNamed(
  model: LoadedModel,
  inputs: Record<string, Tensor>,
  opts: ForwardNamedOptions = {},
): Promise<{ outputs: Record<string, Tensor>; ignored: string[] }> {
  const op = 'forwardNamed';
  specOf(op, model);
  objectArg(op, 'inputs', inputs, true);
  opts = objectArg(op, 'opts', opts);
  knownKeysArg(op, 'opts', opts, FORWARD_NAMED_OPTIONS);
  const interpolatePosEncoding = interpolateFlag(op, opts.interpolatePosEncoding);
  if (interpolatePosEncoding && !isImageClassifier(model))
    throw new TypeError(`forwardNamed: interpolatePosEncoding applies to the image classifiers, not to ${(model as object).constructor.name}`);
  const { ignored } = checkNames(op, model, Object.keys(inputs));
  for (const [name, v] of Object.entries(inputs))
    if (!ignored.includes(name) && !(v instanceof Tensor)) throw new TypeError(`${op}: argument 'inputs['${name}']' must be a Tensor, got ${describe(v)}`);
  let outputs: Record<string, Tensor>;
  if (model instanceof PerceiverForMaskedLM || model instanceof PerceiverForSequenceClassification)
    outputs = model.forward(inputs.inputs, { attentionMask: inputs.attention_mask ?? null });
  else if (model instanceof PerceiverForOpticalFlow) outputs = model.forward(inputs.inputs);
  else if (model instanceof PerceiverForMultimodalAutoencoding) {
    const points = {
      image: await indices('subsampled_output_points.image', inputs['subsampled_output_points.image']),
      audio: await indices('subsampled_output_points.audio', inputs['subsampled_output_points.audio']),
    };
    const { logits } = model.forward({ image: inputs['inputs.image'], audio: inputs['inputs.audio'], label: inputs['inputs.label'] }, { subsampledOutputPoints: points });
    outputs = {};
    for (const m of Object.keys(logits).sort()) outputs[`logits.${m}`] = logits[m];
  } else outputs = model.forward(inputs.pixel_values ?? inputs.inputs, { interpolatePosEncoding });
  return { outputs, ignored };
}
