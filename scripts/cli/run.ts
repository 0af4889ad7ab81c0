// `perceiver run`: DESIGN.md's CLI contract, for tests and for users in other languages.
import { existsSync } from 'node:fs';
import { loadSafetensors, saveSafetensors, type Tensor } from '../../lib/index.js';
import { readBytes } from '../../lib/tensor.js';
import { loadModel } from '../../models/load.js';
import { forwardNamed } from '../../models/named-io.js';
import { checkDeviceFlag, checkOutputFile, parseFlags, UsageError, type Command } from './command.js';

const USAGE = `Usage: perceiver run --model DIR --input IN.safetensors --output OUT.safetensors [--device cpu|cuda] [--dtype float32] [--interpolate-pos-encoding]

Runs a Perceiver model folder (HuggingFace layout) on named inputs.

Options:
  --model DIR       folder with config.json (class from architectures[0]) and model.safetensors
  --input FILE      safetensors file of inputs under HuggingFace's forward() argument names:
                      inputs, attention_mask       PerceiverForMaskedLM (int ids, 1/0 mask)
                      pixel_values                 PerceiverForImageClassification{Fourier,Learned,ConvProcessing}
                      inputs                       PerceiverForOpticalFlow ([B, 2, 27, H, W])
                      inputs.image, inputs.audio, inputs.label,
                      subsampled_output_points.image, subsampled_output_points.audio
                                                   PerceiverForMultimodalAutoencoding
                    loss_weights.* and labels are skipped (with a note on stderr)
  --output FILE     where to write the outputs (written atomically): logits, or logits.<modality>
  --device NAME     cpu, cuda or cuda:N (default: PERCEIVER_DEVICE, else cuda when available, else cpu)
  --dtype NAME      float32 (default), bfloat16 or float16: the weights' and the compute
                    dtype (16-bit: float32 accumulation); outputs are written in it
  --interpolate-pos-encoding
                    image classifiers: resize a learned position table to pixel_values'
                    size (HuggingFace's interpolate_pos_encoding=True)
  -h, --help        show this help
`;

async function run(argv: string[]): Promise<void> {
  const flags = parseFlags('run', argv, {
    values: ['--model', '--input', '--output', '--device', '--dtype'],
    switches: ['--interpolate-pos-encoding'],
    required: ['--model', '--input', '--output'],
  });
  const device = checkDeviceFlag(flags.values['--device']);
  const dtype = flags.values['--dtype'] ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') throw new UsageError(`--dtype must be float32, bfloat16 or float16, got '${dtype}'`);
  const input = flags.values['--input'];
  const output = flags.values['--output'];
  if (!existsSync(input)) throw new Error(`input file '${input}' does not exist`);
  // Checked before the model runs, so a typo does not cost a whole forward pass.
  checkOutputFile('--output', output);
  const model = await loadModel(flags.values['--model'], { device, dtype });
  let inputs: Record<string, Tensor> = {};
  let outputs: Record<string, Tensor> = {};
  try {
    inputs = await loadSafetensors(input, { device });
    const res = await forwardNamed(model, inputs, { interpolatePosEncoding: flags.switches.has('--interpolate-pos-encoding') });
    outputs = res.outputs;
    // Computed now: the engine is lazy, and a failing op (an id out of range) would
    // otherwise surface inside the write, reported as a write failure.
    for (const t of Object.values(outputs)) await readBytes(t);
    if (res.ignored.length) process.stderr.write(`perceiver: note: ignored inputs not used for inference: ${res.ignored.join(', ')}\n`);
    await saveSafetensors(output, outputs, { metadata: { format: 'pt' } });
  } finally {
    for (const t of [...Object.values(inputs), ...Object.values(outputs)]) t.dispose();
    model.dispose();
  }
}

export const runCommand: Command = {
  name: 'run',
  summary: 'run a model folder on the tensors of a safetensors file',
  usage: USAGE,
  run,
};
