// Inverted dropout as ops: keep where rand() < 1 - p, times 1 / (1 - p). The one
// composition behind nn's dropout() and attention's composed dropout, and what the
// fused CPU attention reproduces bit for bit (AttentionArgs' dropout fields).
import type { Tensor } from '../tensor.js';
import { rand } from '../creation.js';
import { cast } from './layout.js';
import { less } from './elementwise.js';
import { tidy } from '../scope.js';

/** x with inverted dropout at probability p in (0, 1); `seed` fixes the mask (default: the global sequence). */
export function applyDropout(x: Tensor, p: number, seed?: number): Tensor {
  return tidy(() => {
    const keep = cast(less(rand([...x.shape], { device: x.device, seed }), 1 - p), x.dtype);
    return x.mul(keep.mul(1 / (1 - p)));
  });
}
