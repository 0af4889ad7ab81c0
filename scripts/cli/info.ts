// `perceiver info`: what a model folder holds, without loading the weights.
import { modelInfo } from '../../models/model-info.js';
import { parseFlags, type Command } from './command.js';

const USAGE = `Usage: perceiver info DIR [--json]

Describes a Perceiver model folder (HuggingFace layout: config.json + model.safetensors)
without loading its weights: architecture, files and their sizes, parameter count
(total and per top-level module; BatchNorm running statistics counted apart), the
dtypes of the stored tensors, the config values that shape the network, and the FLOPs
of one forward pass per example at the config's input size (2 per multiply-add of
every matmul: projections, attention products, MLPs, convolutions, output layers).
FLOPs are given for the network as written and as this engine runs it (its one-head
cross-attention fast path skips the key/value projections of the inputs).

Options:
  --json            one JSON object on stdout (parts of the FLOP count included)
  -h, --help        show this help
`;

const human = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : `${n} `);
const bytes = (n: number): string => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

async function run(argv: string[]): Promise<void> {
  const flags = parseFlags('info', argv, { switches: ['--json'], positional: [1, 1] });
  const info = await modelInfo(flags.positional[0]);
  if (flags.switches.has('--json')) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
    return;
  }
  const w = Math.max(...info.modules.map((m) => m.name.length), ...info.files.map((f) => f.name.length), 10);
  const lines = [
    `${info.dir}: ${info.architecture}`,
    '',
    'files:',
    ...info.files.map((f) => `  ${f.name.padEnd(w)}  ${bytes(f.bytes).padStart(10)}`),
    '',
    `parameters: ${info.parameters.toLocaleString('en-US')} (${human(info.parameters).trim()})${info.bufferValues ? `, plus ${info.bufferValues.toLocaleString('en-US')} buffer values (BatchNorm statistics)` : ''}`,
    ...info.modules.map((m) => `  ${m.name.padEnd(w)}  ${m.parameters.toLocaleString('en-US').padStart(14)}  (${m.tensors} tensors)`),
    '',
    `dtypes: ${info.dtypes.map((d) => `${d.dtype} (${d.tensors} tensors, ${d.values.toLocaleString('en-US')} values)`).join(', ')}`,
    '',
    'config:',
    ...Object.entries(info.config).map(([k, v]) => `  ${k.padEnd(36)} ${JSON.stringify(v)}`),
    '',
  ];
  if (info.flops) {
    const groups = new Map<string, number>();
    for (const p of info.flops.parts) {
      const g = /^(encoder cross-attention|self-attention|decoder cross-attention)/.exec(p.name)?.[1] ?? p.name;
      groups.set(g, (groups.get(g) ?? 0) + p.flops);
    }
    lines.push(
      `FLOPs per example at ${info.flops.input}: ${human(info.flops.flops)}FLOP as written, ${human(info.flops.fastFlops)}FLOP as run here`,
      ...[...groups].map(([g, f]) => `  ${g.padEnd(Math.max(36, ...[...groups.keys()].map((x) => x.length)))} ${human(f).padStart(10)}FLOP`),
    );
  } else lines.push(`FLOPs: not counted (${info.flopsError})`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export const infoCommand: Command = {
  name: 'info',
  summary: 'describe a model folder: architecture, parameters, dtypes, FLOPs',
  usage: USAGE,
  run,
};
