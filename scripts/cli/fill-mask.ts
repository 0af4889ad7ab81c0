// `perceiver fill-mask`: masked bytes of a text filled by PerceiverForMaskedLM.
import { fillMask, parseMaskedText, type MaskCandidate } from '../../models/fill-mask.js';
import type { PerceiverForMaskedLM } from '../../models/masked-lm.js';
import { checkDeviceFlag, parseFlags, type Command } from './command.js';
import { intFlag, loadTaskModel } from './task-model.js';

const USAGE = `Usage: perceiver fill-mask --model DIR "TEXT with <mask> bytes" [--top-k N] [--json] [--device cpu|cuda]

Fills masked bytes with a PerceiverForMaskedLM (e.g. deepmind/language-perceiver).
The model works on UTF-8 bytes: each masked byte becomes one [MASK] token, as in
HuggingFace's model card.

Mask syntax:
  <mask>            one masked byte
  <mask:N>          N masked bytes (a masked word of N ASCII letters is <mask:N>)
  everything else is literal UTF-8 ("[MASK]" is six ordinary bytes here)

Output: the text with each masked byte replaced by the model's most probable byte
(decoded as UTF-8, U+FFFD where the bytes are not valid UTF-8), then the top-k
candidates per masked byte with their probabilities (special tokens such as [SEP]
can appear among the candidates but never in the filled text).

Options:
  --model DIR       folder with config.json (PerceiverForMaskedLM) and model.safetensors
  --top-k N         candidates shown per masked byte (default 5, at most 262)
  --json            one JSON object on stdout: {text, filled, masks: [{position, candidates:
                    [{id, byte, token, probability}]}]} (position: byte offset in the text
                    with the masks expanded)
  --device NAME     cpu, cuda or cuda:N (default: PERCEIVER_DEVICE, else cuda when available, else cpu)
  -h, --help        show this help
`;

function show(c: MaskCandidate): string {
  const t = c.byte === null ? c.token : c.byte >= 0x20 && c.byte < 0x7f ? JSON.stringify(c.token) : `0x${c.byte.toString(16).padStart(2, '0')}`;
  return `${t} ${(100 * c.probability).toFixed(2)}%`;
}

async function run(argv: string[]): Promise<void> {
  const flags = parseFlags('fill-mask', argv, { values: ['--model', '--top-k', '--device'], switches: ['--json'], required: ['--model'], positional: [1, 1] });
  const device = checkDeviceFlag(flags.values['--device']);
  const topK = intFlag('--top-k', flags.values['--top-k'], 5, 1, 262);
  const text = flags.positional[0];
  // Before the model loads, so a text without a mask fails at once.
  parseMaskedText(text);
  const { model } = await loadTaskModel('fill-mask', flags.values['--model'], device, ['PerceiverForMaskedLM']);
  try {
    const r = await fillMask(model as PerceiverForMaskedLM, text, { topK, device });
    if (flags.switches.has('--json')) {
      process.stdout.write(`${JSON.stringify({ text, filled: r.filled, masks: r.masks })}\n`);
      return;
    }
    const lines = [`filled: ${r.filled}`];
    for (const m of r.masks) lines.push(`  byte ${m.position}: ${m.candidates.map(show).join(', ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    model.dispose();
  }
}

export const fillMaskCommand: Command = {
  name: 'fill-mask',
  summary: 'fill <mask> bytes in a text with a masked language model',
  usage: USAGE,
  run,
};
