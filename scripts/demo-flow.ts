// Optical flow between two frames with PerceiverForOpticalFlow, tiled as DeepMind's
// optical_flow colab does: windows of the model's training size (368x496 for the
// released model) every (size - 20) pixels, the last flush with the edge, each
// window's flow weighted by a pyramid that falls to 1 at the window's border, and
// averaged (models/flow-tiling.ts). The flow is written as a Middlebury colour-wheel
// PNG (and optionally a .flo file).
//
//   node dist/scripts/demo-flow.js                        # small config, RANDOM weights, 368x496 windows,
//                                                         # synthetic 400x560 frames (texture + shifted copy)
//   node dist/scripts/demo-flow.js --model DIR            # a HF model dir, e.g. deepmind/optical-flow-perceiver
//                                                         # or test/fixtures/hf/optical_flow (train_size 12x16)
//   node dist/scripts/demo-flow.js --frames f.safetensors # one tensor [2, H, W, 3], RGB values 0..255
//
// Options: --size HxW (synthetic frames), --shift DX,DY (synthetic motion, pixels),
// --window HxW (random-weight model only; default 368x496), --overlap N (default 20;
// lowered to half the window when the window is small), --out PREFIX (default
// flow: writes PREFIX.png), --flo (also PREFIX.flo), --device NAME.
//
// The model's output is its decoder output / 100 (HF); as in the colab it is then
// multiplied by 20 (FLOW_SCALE_FACTOR), unless the config's flow_output_scale already
// does that (DeepMind flavour). With random weights the flow is noise: the demo shows
// the pipeline and its cost, not the model's accuracy.
import { loadSafetensors, manualSeed } from '../lib/index.js';
import { PerceiverForOpticalFlow } from '../models/index.js';
import { loadModel } from '../models/load.js';
import type { Size2 } from '../models/flow-tiling.js';
import { estimateFlow } from '../models/flow-estimate.js';
import { encodeFlo, encodePng, flowSummary, flowToColor } from '../models/flow-vis.js';
import { writeFileAtomic } from '../models/image-io.js';
import { demoFlags, outputPrefix, runDemo } from './cli-args.js';
import { UsageError } from './cli/command.js';

// The released model's structure with fewer and narrower layers (random weights).
function smallConfig(window: Size2): Record<string, unknown> {
  return {
    architectures: ['PerceiverForOpticalFlow'],
    train_size: [...window],
    num_latents: 64,
    d_latents: 128,
    d_model: 322, // 64 (patches_linear) + 2 + 2 * 2 * 64 (Fourier, 64 bands)
    num_blocks: 1,
    num_self_attends_per_block: 2,
    num_self_attention_heads: 4,
    num_cross_attention_heads: 1,
    qk_channels: null,
    v_channels: null,
    cross_attention_shape_for_attention: 'kv',
    self_attention_widening_factor: 1,
    cross_attention_widening_factor: 1,
    hidden_act: 'gelu',
    use_query_residual: true,
    initializer_range: 0.02,
  };
}

function pair(name: string, text: string, sep: string): [number, number] {
  const parts = text.split(sep).map(Number);
  if (parts.length !== 2 || !parts.every(Number.isFinite)) throw new Error(`${name} must look like A${sep}B, got ${JSON.stringify(text)}`);
  return [parts[0], parts[1]];
}

/** A smooth but busy RGB texture in 0..255, sampled at (x, y) (any real coordinates). */
function texture(x: number, y: number, c: number): number {
  const v =
    0.5 +
    0.2 * Math.sin(x / (5 + c) + y / 9) +
    0.15 * Math.sin((x * 0.7 - y * 1.3) / (3 + c)) +
    0.15 * Math.cos(Math.hypot(x - 200, y - 150) / (4 + c));
  return Math.max(0, Math.min(255, Math.round(255 * v)));
}

/** Frames [2, H, W, 3]: the texture, then the texture moved by (dx, dy). */
function syntheticFrames(H: number, W: number, dx: number, dy: number): Float32Array {
  const out = new Float32Array(2 * H * W * 3);
  for (let f = 0; f < 2; f++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let c = 0; c < 3; c++) out[((f * H + y) * W + x) * 3 + c] = f === 0 ? texture(x, y, c) : texture(x - dx, y - dy, c);
  return out;
}

const USAGE = `usage: demo-flow [--model DIR] [--frames F.safetensors] [--size HxW] [--shift DX,DY] [--window HxW] [--overlap N] [--out PREFIX] [--flo] [--device NAME]

Optical flow between two frames (synthetic, or --frames), tiled as DeepMind's colab;
random weights unless --model names a PerceiverForOpticalFlow folder. Writes PREFIX.png
(default flow.png) and with --flo PREFIX.flo.
`;

async function main(): Promise<void> {
  const flags = demoFlags('demo-flow', USAGE, {
    values: ['--model', '--frames', '--size', '--shift', '--window', '--overlap', '--out', '--device'],
    switches: ['--flo'],
  });
  const arg = (name: string): string | undefined => flags.values[name];
  const dir = arg('--model');
  const device = arg('--device');
  const writeFlo = flags.switches.has('--flo');
  // Checked before the frames are made and the model runs.
  const out = outputPrefix(arg('--out') ?? 'flow', writeFlo ? ['.png', '.flo'] : ['.png']);
  const overlapText = arg('--overlap') ?? '20';
  if (!/^\d+$/.test(overlapText)) throw new UsageError(`--overlap must be a non-negative integer, got '${overlapText}'`);

  // Frames.
  let frames: Float32Array;
  let H: number;
  let W: number;
  const framesPath = arg('--frames');
  if (framesPath) {
    const st = await loadSafetensors(framesPath);
    const names = Object.keys(st);
    if (names.length !== 1) throw new Error(`--frames: expected one tensor [2, H, W, 3] in ${framesPath}, found ${names.length} (${names.join(', ')})`);
    const t = st[names[0]];
    if (t.rank !== 4 || t.shape[0] !== 2 || t.shape[3] !== 3) throw new Error(`--frames: '${names[0]}' must be [2, H, W, 3], got [${t.shape.join(', ')}]`);
    [H, W] = [t.shape[1], t.shape[2]];
    frames = Float32Array.from(await t.data());
    t.dispose();
  } else {
    [H, W] = pair('--size', arg('--size') ?? '400x560', 'x');
    const [dx, dy] = pair('--shift', arg('--shift') ?? '3,2', ',');
    frames = syntheticFrames(H, W, dx, dy);
    console.log(`synthetic frames ${H}x${W}: a texture and the same texture moved by (${dx}, ${dy}) pixels`);
  }

  // Model.
  let t0 = performance.now();
  let model: PerceiverForOpticalFlow;
  if (dir) {
    const loaded = await loadModel(dir, { device });
    if (!(loaded instanceof PerceiverForOpticalFlow)) {
      loaded.dispose();
      throw new Error(`--model ${dir}: not a PerceiverForOpticalFlow checkpoint`);
    }
    model = loaded;
  } else {
    if (device) throw new Error(`--device applies with --model; the random-weight demo runs on the CPU`);
    manualSeed(0); // the same random weights every run
    model = new PerceiverForOpticalFlow(smallConfig(pair('--window', arg('--window') ?? '368x496', 'x')));
  }
  const window = model.config.train_size;
  console.log(
    `${dir ? `weights from ${dir}` : 'small config, RANDOM weights (the flow is noise)'}; ${(model.numParameters() / 1e6).toFixed(2)} M parameters, ` +
      `window ${window[0]}x${window[1]}, ready in ${(performance.now() - t0).toFixed(0)} ms`,
  );

  // Tiling and scaling to pixels: models/flow-estimate.ts, shared with `perceiver flow`.
  const overlap = Number(overlapText);
  t0 = performance.now();
  const { flow, windows, overlap: used } = await estimateFlow(model, frames, [H, W], {
    overlap,
    device,
    onWindow: (i, n, ms) => {
      if (n <= 8 || i === 0 || i === n - 1) console.log(`  window ${i + 1}/${n}: ${ms.toFixed(0)} ms`);
    },
  });
  if (used !== overlap) console.log(`overlap ${overlap} does not fit a ${window[0]}x${window[1]} window: used ${used}`);
  // Every origin when there are few (the released model's window over the default frames:
  // a handful); else the first and last ones, as the per-window lines above, not thousands
  // (a model with a small train_size over the default 400x560 frames has 3696 windows).
  const origins = windows.map(([y, x]) => `(${y},${x})`);
  const shown = origins.length <= 8 ? origins.join(' ') : `${origins.slice(0, 4).join(' ')} ... ${origins.slice(-2).join(' ')}`;
  console.log(`${windows.length} window(s) at ${shown}, overlap >= ${used}`);
  model.dispose();

  const { meanFlow: [mu, mv], maxMagnitude: maxMag } = flowSummary(flow, H, W);
  console.log(
    `flow ${H}x${W}x2 in ${(performance.now() - t0).toFixed(0)} ms: mean (u, v) = (${mu.toFixed(3)}, ${mv.toFixed(3)}), max |flow| ${maxMag.toFixed(3)} pixels`,
  );
  await writeFileAtomic(`${out}.png`, encodePng(flowToColor(flow, H, W), H, W));
  console.log(`wrote ${out}.png (Middlebury colour wheel, saturation relative to the largest flow)`);
  if (writeFlo) {
    await writeFileAtomic(`${out}.flo`, encodeFlo(flow, H, W));
    console.log(`wrote ${out}.flo`);
  }
}

runDemo('demo-flow', main);
