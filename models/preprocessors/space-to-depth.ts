// Space to depth (HF's space_to_depth): blocks of the spatial (and temporal) axes move
// into channels, ordered (dt, dh, dw, c) as HF's permute lays them out.
import { permute, reshape, tidy, type Tensor } from '../../lib/index.js';
import { intArg, tensorArg } from '../args.js';

/**
 * frames [B, C, H, W] -> [B, H/s, W/s, s*s*C], or [B, T, C, H, W] ->
 * [B, T/t, H/s, W/s, t*s*s*C] (channels-first in, channels-last out).
 */
export function spaceToDepth(frames: Tensor, temporalBlock = 1, spatialBlock = 1): Tensor {
  tensorArg('spaceToDepth', 'frames', frames, { rank: [4, 5], shape: '[B, C, H, W] or [B, T, C, H, W]' });
  intArg('spaceToDepth', 'temporalBlock', temporalBlock, 1);
  intArg('spaceToDepth', 'spatialBlock', spatialBlock, 1);
  const s = spatialBlock;
  const check = (name: string, size: number, block: number) => {
    if (size % block !== 0) throw new RangeError(`spaceToDepth: ${name} (${size}) must be divisible by its block size (${block})`);
  };
  return tidy(() => {
    if (frames.rank === 4) {
      const [B, C, H, W] = frames.shape;
      check('height', H, s);
      check('width', W, s);
      const x = reshape(frames, [B, C, H / s, s, W / s, s]);
      return reshape(permute(x, [0, 2, 4, 3, 5, 1]), [B, H / s, W / s, s * s * C]);
    }
    if (frames.rank === 5) {
      const t = temporalBlock;
      const [B, T, C, H, W] = frames.shape;
      check('time', T, t);
      check('height', H, s);
      check('width', W, s);
      const x = reshape(frames, [B, T / t, t, C, H / s, s, W / s, s]);
      return reshape(permute(x, [0, 1, 4, 6, 2, 5, 7, 3]), [B, T / t, H / s, W / s, t * s * s * C]);
    }
    throw new RangeError(`spaceToDepth: frames must be [B, C, H, W] or [B, T, C, H, W], got [${frames.shape.join(', ')}]`);
  });
}
