#!/usr/bin/env node
// The perceiver command line (DESIGN.md's CLI contract, for tests and for users in
// other languages):
//   perceiver run --model DIR --input IN.safetensors --output OUT.safetensors [--device cpu] [--dtype float32]
// Exit status: 0 on success, 2 for a bad invocation (flags), 1 when the run fails
// (missing or bad files, inputs the model does not take, engine errors).
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { loadSafetensors, saveSafetensors, type Tensor } from '../lib/index.js';
import { loadModel } from '../models/load.js';
import { forwardNamed } from '../models/named-io.js';

const USAGE = `Usage: perceiver run --model DIR --input IN.safetensors --output OUT.safetensors [--device cpu|cuda] [--dtype float32]

Runs a Perceiver model folder (HuggingFace layout) on named inputs.

Commands:
  run       run a model on the tensors of a safetensors file

Options of 'run':
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
  --device NAME     cpu or cuda (default: PERCEIVER_DEVICE, else cuda when available, else cpu)
  --dtype NAME      float32 (the only compute dtype supported so far)
  -h, --help        show this help
`;

class UsageError extends Error {}

interface RunArgs {
  model: string;
  input: string;
  output: string;
  device?: string;
  dtype: string;
}

const FLAGS = ['--model', '--input', '--output', '--device', '--dtype'] as const;

function parseRun(argv: string[]): RunArgs | 'help' {
  const got: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return 'help';
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (!(FLAGS as readonly string[]).includes(flag)) {
      if (arg.startsWith('-')) throw new UsageError(`unknown option '${flag}' (run takes ${FLAGS.join(', ')})`);
      throw new UsageError(`unexpected argument '${arg}'`);
    }
    let value: string | undefined;
    if (flag !== arg) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`option '${flag}' needs a value`);
      i++;
    }
    if (value === '') throw new UsageError(`option '${flag}' needs a value`);
    if (flag in got) throw new UsageError(`option '${flag}' is given twice`);
    got[flag] = value;
  }
  const missing = ['--model', '--input', '--output'].filter((f) => !(f in got));
  if (missing.length) throw new UsageError(`missing required option${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  const device = got['--device'];
  if (device !== undefined && device !== 'cpu' && device !== 'cuda' && !/^cuda:\d+$/.test(device))
    throw new UsageError(`--device must be cpu, cuda or cuda:N, got '${device}'`);
  const dtype = got['--dtype'] ?? 'float32';
  if (dtype === 'bfloat16' || dtype === 'float16') throw new UsageError(`--dtype ${dtype} is not supported yet; use float32`);
  if (dtype !== 'float32') throw new UsageError(`--dtype must be float32, got '${dtype}'`);
  return { model: got['--model'], input: got['--input'], output: got['--output'], device, dtype };
}

async function run(args: RunArgs): Promise<void> {
  if (!existsSync(args.input)) throw new Error(`input file '${args.input}' does not exist`);
  // Checked before the model runs, so a typo does not cost a whole forward pass.
  const outDir = dirname(resolve(args.output));
  if (!existsSync(outDir)) throw new Error(`output folder '${outDir}' does not exist`);
  const model = await loadModel(args.model, { device: args.device });
  let inputs: Record<string, Tensor> = {};
  let outputs: Record<string, Tensor> = {};
  try {
    inputs = await loadSafetensors(args.input, { device: args.device });
    const res = await forwardNamed(model, inputs);
    outputs = res.outputs;
    if (res.ignored.length) process.stderr.write(`perceiver: note: ignored inputs not used for inference: ${res.ignored.join(', ')}\n`);
    await saveSafetensors(args.output, outputs, { metadata: { format: 'pt' } });
  } finally {
    for (const t of [...Object.values(inputs), ...Object.values(outputs)]) t.dispose();
    model.dispose();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined) throw new UsageError('no command given');
    if (command === '-h' || command === '--help' || command === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    if (command !== 'run') throw new UsageError(`unknown command '${command}' (the only command is 'run')`);
    const args = parseRun(rest);
    if (args === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    await run(args);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`perceiver: error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`perceiver: error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
