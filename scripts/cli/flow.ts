// `perceiver flow`: optical flow between two image files, as a colour picture and/or a .flo file.
import { existsSync } from 'node:fs';
import { estimateFlow } from '../../models/flow-estimate.js';
import { encodeFlo, flowSummary, flowToColor } from '../../models/flow-vis.js';
import type { PerceiverForOpticalFlow } from '../../models/optical-flow.js';
import { checkDeviceFlag, checkOutputFile, parseFlags, UsageError, type Command } from './command.js';
import { intFlag, loadTaskModel } from './task-model.js';

const USAGE = `Usage: perceiver flow --model DIR FRAME1 FRAME2 [--out FLOW.png] [--flo FLOW.flo] [--overlap N] [--json] [--device cpu|cuda]

Optical flow from FRAME1 to FRAME2 (image files of the same size: PNG, JPEG, ...;
decoded as 'perceiver classify' does) with PerceiverForOpticalFlow
(deepmind/optical-flow-perceiver).

The frames are cut into windows of the model's train_size (368x496 for the released
model) at least --overlap pixels apart, the last flush with the edge; each window's
two 3x3-patch frames (values scaled to [-1, 1]) go through the model, and the windows'
flows are averaged with weights that fall to 1 at each window's border, as DeepMind's
colab. The flow is in pixels (HF's output / 100 x 20, the colab's scale). The frames
must be at least as large as the window.

At least one of --out and --flo is needed. Files are written atomically.

Options:
  --model DIR       folder with config.json (PerceiverForOpticalFlow) and model.safetensors
  --out FILE        colour-coded flow as PNG (Middlebury colour wheel: hue = direction,
                    saturation = magnitude relative to the largest flow in the picture)
  --flo FILE        the flow as a Middlebury .flo file (float32 u, v per pixel)
  --overlap N       minimum window overlap in pixels, at most half the window (default 20,
                    or half the window when that is smaller)
  --json            a JSON summary on stdout: {height, width, windows, meanFlow, maxMagnitude, out, flo}
  --device NAME     cpu, cuda or cuda:N (default: PERCEIVER_DEVICE, else cuda when available, else cpu)
  -h, --help        show this help
`;

async function run(argv: string[]): Promise<void> {
  // sharp (libvips) loads only for the commands that decode images.
  const { decodeImage, encodePngRgb, writeFileAtomic } = await import('../../models/image-io.js');
  const flags = parseFlags('flow', argv, { values: ['--model', '--out', '--flo', '--overlap', '--device'], switches: ['--json'], required: ['--model'], positional: [2, 2] });
  const device = checkDeviceFlag(flags.values['--device']);
  const overlap = intFlag('--overlap', flags.values['--overlap'], 20, 0);
  const out = flags.values['--out'];
  const flo = flags.values['--flo'];
  if (out === undefined && flo === undefined) throw new UsageError('give --out FLOW.png, --flo FLOW.flo or both');
  const targets = [['--out', out], ['--flo', flo]].filter((e): e is [string, string] => e[1] !== undefined).map(([flag, f]) => checkOutputFile(flag, f));
  // The second write would replace the first.
  if (targets.length === 2 && targets[0] === targets[1]) throw new UsageError(`--out and --flo name the same file ('${out}'); give two paths`);
  const [pa, pb] = flags.positional;
  for (const p of [pa, pb]) if (!existsSync(p)) throw new Error(`image '${p}' does not exist`);
  const [a, b] = [await decodeImage(pa), await decodeImage(pb)];
  if (a.height !== b.height || a.width !== b.width)
    throw new Error(`the frames differ in size: '${pa}' is ${a.width}x${a.height}, '${pb}' is ${b.width}x${b.height} (width x height); give two frames of the same size`);
  const H = a.height;
  const W = a.width;
  const frames = new Uint8Array(2 * H * W * 3);
  frames.set(a.data, 0);
  frames.set(b.data, H * W * 3);

  const { model } = await loadTaskModel('flow', flags.values['--model'], device, ['PerceiverForOpticalFlow']);
  // estimateFlow lowers an overlap the window cannot take (the default 20 for a small
  // window); one given explicitly is refused rather than silently changed.
  const window = (model as PerceiverForOpticalFlow).config.train_size;
  const maxOverlap = Math.floor(Math.min(window[0], window[1]) / 2);
  if (flags.values['--overlap'] !== undefined && overlap > maxOverlap) {
    model.dispose();
    throw new UsageError(`--overlap must be at most ${maxOverlap} (half the model's ${window[1]}x${window[0]} window, width x height), got ${overlap}`);
  }
  let result: Awaited<ReturnType<typeof estimateFlow>>;
  try {
    result = await estimateFlow(model as PerceiverForOpticalFlow, frames, [H, W], { overlap, device });
  } finally {
    model.dispose();
  }
  const { flow, windows } = result;
  const { meanFlow, maxMagnitude: maxMag } = flowSummary(flow, H, W);
  if (out !== undefined) await writeFileAtomic(out, await encodePngRgb(flowToColor(flow, H, W), H, W));
  if (flo !== undefined) await writeFileAtomic(flo, encodeFlo(flow, H, W));
  const summary = { height: H, width: W, windows: windows.length, overlap: result.overlap, meanFlow, maxMagnitude: maxMag, out: out ?? null, flo: flo ?? null };
  if (flags.switches.has('--json')) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else
    process.stdout.write(
      `flow ${W}x${H} (width x height) from ${windows.length} window(s): mean (u, v) = (${summary.meanFlow[0].toFixed(3)}, ${summary.meanFlow[1].toFixed(3)}) px, max |flow| ${maxMag.toFixed(3)} px\n` +
        (out !== undefined ? `wrote ${out}\n` : '') +
        (flo !== undefined ? `wrote ${flo}\n` : ''),
    );
}

export const flowCommand: Command = {
  name: 'flow',
  summary: 'optical flow between two image files, as a colour PNG and/or a .flo file',
  usage: USAGE,
  run,
};
