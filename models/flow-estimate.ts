// Optical flow between two frames of any size (at least the model's window) with
// PerceiverForOpticalFlow, tiled as DeepMind's colab (flow-tiling.ts), in pixels: the
// model outputs decoder / 100 (HF), which the colab multiplies by 20
// (FLOW_SCALE_FACTOR) unless the config's flow_output_scale already did.
// The registry first: a task model's module loads the registry (through save.ts), which
// must finish loading every task model before it is read.
import { ARCHITECTURES } from './registry.js';
import { tensor } from '../lib/index.js';
import { computeGridIndices, gridRepeats, stitchWindows, windowPatches, type Size2 } from './flow-tiling.js';
import type { PerceiverForOpticalFlow } from './optical-flow.js';
import { describe } from '../lib/dtype.js';
import { intListArg, knownKeysArg, objectArg, optionKeys } from './args.js';

export const FLOW_SCALE_FACTOR = 20;

export interface FlowOptions {
  /** Minimum overlap of neighbouring windows in pixels (default 20, lowered to half the window for small windows). */
  overlap?: number;
  device?: string;
  /** Called after each window (progress, timing). */
  onWindow?: (index: number, count: number, ms: number) => void;
}

const FLOW_OPTIONS = optionKeys<FlowOptions>({ overlap: true, device: true, onWindow: true });

/**
 * frames [2, H, W, 3] (RGB 0..255, row-major) -> flow [H, W, 2] (u = x, v = y, pixels),
 * the weighted average of the windows that cover each pixel.
 */
export async function estimateFlow(model: PerceiverForOpticalFlow, frames: ArrayLike<number>, size: Size2, opts: FlowOptions = {}): Promise<{ flow: Float32Array; windows: [number, number][]; overlap: number }> {
  const op = 'estimateFlow';
  if (!(model instanceof ARCHITECTURES.PerceiverForOpticalFlow)) throw new TypeError(`${op}: argument 'model' must be a PerceiverForOpticalFlow, got ${describe(model)}`);
  if (!Array.isArray(size) || size.length !== 2) throw new TypeError(`${op}: argument 'size' must be [height, width], got ${describe(size)}`);
  intListArg(op, 'size', size, 1);
  const [H, W] = size;
  if (!Array.isArray(frames) && !(ArrayBuffer.isView(frames) && !(frames instanceof DataView)))
    throw new TypeError(`${op}: argument 'frames' must be an array or typed array of RGB values [2, H, W, 3], got ${describe(frames)}`);
  if (frames.length !== 2 * H * W * 3)
    throw new RangeError(`${op}: argument 'frames' must hold 2 x ${H} x ${W} x 3 = ${2 * H * W * 3} values (two RGB frames of size), got ${frames.length}`);
  // Pixels are 0-255 (the model's patches are normalised from that range): a string is
  // coerced, undefined becomes NaN, and 300 is out of the range the model saw. Bytes
  // cannot be wrong; anything else is read once here, as the patches read it anyway.
  if (!(frames instanceof Uint8Array || frames instanceof Uint8ClampedArray))
    for (let i = 0; i < frames.length; i++) {
      const v = frames[i];
      if (typeof v !== 'number' || !(v >= 0 && v <= 255))
        throw new RangeError(`${op}: argument 'frames' must hold RGB values in [0, 255], got ${describe(v)} at index ${i}`);
    }
  opts = objectArg(op, 'opts', opts);
  knownKeysArg(op, 'opts', opts, FLOW_OPTIONS);
  if (opts.onWindow !== undefined && typeof opts.onWindow !== 'function')
    throw new TypeError(`${op}: argument 'opts.onWindow' must be a function, got ${describe(opts.onWindow)}`);
  const window = model.config.train_size;
  const scale = FLOW_SCALE_FACTOR / model.config.flow_output_scale;
  const requested = opts.overlap ?? 20;
  if (!Number.isSafeInteger(requested) || requested < 0) throw new RangeError(`estimateFlow: overlap must be a non-negative integer, got ${String(requested)}`);
  const overlap = Math.min(requested, Math.floor(Math.min(window[0], window[1]) / 2));
  if (H < window[0] || W < window[1])
    throw new RangeError(`estimateFlow: the frames (${H}x${W}) are smaller than the model's window (train_size ${window[0]}x${window[1]}); use frames at least that large`);
  const grid = computeGridIndices([H, W], window, overlap);
  const pieces: Float32Array[] = [];
  for (const [i, origin] of grid.entries()) {
    const t0 = performance.now();
    const input = tensor(windowPatches(frames, [H, W], origin, window), [1, 2, 27, window[0], window[1]], { device: opts.device });
    try {
      const { logits } = model.forward(input);
      try {
        const piece = Float32Array.from((await logits.data()) as Float32Array);
        for (let k = 0; k < piece.length; k++) piece[k] *= scale;
        pieces.push(piece);
      } finally {
        logits.dispose();
      }
    } finally {
      input.dispose();
    }
    opts.onWindow?.(i, grid.length, performance.now() - t0);
  }
  return { flow: stitchWindows(pieces, grid, [H, W], window, 2, gridRepeats([H, W], window, overlap)), windows: grid, overlap };
}
