// Gradients of conv2d and max-pool (NHWC), composed of engine ops so they run on any
// backend. The input gradient of a convolution is itself a convolution (of the
// stride-dilated output gradient with the spatially flipped, in/out-swapped kernel),
// so the engine's conv kernel does the heavy work; the weight gradient is an im2col
// product. Max-pool routes each window's gradient to its first maximum, as PyTorch.
import { Tensor, wrap } from '../tensor.js';
import { native } from '../native.js';
import { tensor, full, zeros } from '../creation.js';
import { needsGrad, record } from './tape.js';
import { dilate, useKernel } from './grads.js';
import * as E from '../ops/elementwise.js';
import * as L from '../ops/layout.js';
import * as R from '../ops/reduce.js';
import * as M from '../ops/linalg.js';
import * as N from '../ops/nn.js';

type Pads = [number, number, number, number]; // top, bottom, left, right

/** The padding a forward op used, from its spec and the sizes it produced. */
export function resolvePads(spec: 'same' | 'valid' | number[], h: number, w: number, kh: number, kw: number, sh: number, sw: number, oh: number, ow: number): Pads {
  if (Array.isArray(spec)) return [spec[0], spec[1], spec[2], spec[3]];
  if (spec === 'valid') return [0, 0, 0, 0];
  const th = Math.max((oh - 1) * sh + kh - h, 0);
  const tw = Math.max((ow - 1) * sw + kw - w, 0);
  return [Math.floor(th / 2), th - Math.floor(th / 2), Math.floor(tw / 2), tw - Math.floor(tw / 2)];
}

/** x [B, H, W, C] with `value` rows/columns added around it. */
function padHW(x: Tensor, [t, b, l, r]: Pads, value: number): Tensor {
  const [B, H, W, C] = x.shape;
  let y = x;
  const block = (shape: number[]) => full(shape, value, { device: x.device, dtype: x.dtype });
  if (l > 0 || r > 0) y = L.concat([...(l > 0 ? [block([B, H, l, C])] : []), y, ...(r > 0 ? [block([B, H, r, C])] : [])], 2);
  const Wp = W + l + r;
  if (t > 0 || b > 0) y = L.concat([...(t > 0 ? [block([B, t, Wp, C])] : []), y, ...(b > 0 ? [block([B, b, Wp, C])] : [])], 1);
  return y;
}

/** g [B, OH, OW, C] spread out by (sh, sw) with zeros between: [B, (OH-1)sh+1, (OW-1)sw+1, C]. */
function dilateHW(g: Tensor, sh: number, sw: number): Tensor {
  return dilate(dilate(g, 1, sh), 2, sw);
}

/** xp's window offset (i, j) at every output position: [B, OH, OW, C]. */
function windowAt(xp: Tensor, i: number, j: number, sh: number, sw: number, oh: number, ow: number): Tensor {
  return L.slice(L.slice(xp, 1, i, i + sh * (oh - 1) + 1, sh), 2, j, j + sw * (ow - 1) + 1, sw);
}

/** t reversed along axis 0 (a gather of its rows in reverse order). */
function flip0(t: Tensor): Tensor {
  const n = t.shape[0];
  const rest = t.shape.slice(1);
  const ids = tensor(Int32Array.from({ length: n }, (_, i) => n - 1 - i), [n], { device: t.device });
  const rows = N.embedding(L.reshape(L.contiguous(t), [n, rest.reduce((a, b) => a * b, 1)]), ids);
  return L.reshape(rows, [n, ...rest]);
}

export function conv2dGrad(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor | null, sh: number, sw: number, spec: 'same' | 'valid' | number[]): Tensor {
  if (!needsGrad(x, weight, bias)) return out;
  const [, H, W, Cin] = x.shape;
  const [KH, KW, , Cout] = weight.shape;
  const [, OH, OW] = out.shape;
  const pads = resolvePads(spec, H, W, KH, KW, sh, sw, OH, OW);
  const Hp = H + pads[0] + pads[1];
  const Wp = W + pads[2] + pads[3];
  return record('conv2d', out, [x, weight, bias], [x, weight], (g, [xs, ws], needs) => {
    const B = xs.shape[0];
    const g2 = L.reshape(L.contiguous(g), [B * OH * OW, Cout]);
    const gb = bias && needs[2] ? R.sum(g2, 0) : null;
    let gw: Tensor | null = null;
    if (needs[1]) {
      // dW = im2col(x)ᵀ g, columns ordered (kh, kw, cin) as the HWIO weight.
      const xp = padHW(xs, pads, 0);
      const cols: Tensor[] = [];
      for (let i = 0; i < KH; i++) for (let j = 0; j < KW; j++) cols.push(windowAt(xp, i, j, sh, sw, OH, OW));
      const im2col = L.reshape(L.concat(cols, 3), [B * OH * OW, KH * KW * Cin]);
      gw = L.reshape(M.matmul(im2col, g2, { transA: true }), [KH, KW, Cin, Cout]);
    }
    // An image input needs no gradient: skip the transposed convolution.
    if (!needs[0]) return [null, gw, gb];
    // dX: full correlation of the dilated gradient with the flipped, swapped kernel,
    // over the padded input's extent, then cropped to x.
    const flipped = L.permute(flip0(L.permute(flip0(ws), [1, 0, 2, 3])), [1, 0, 3, 2]); // [KH, KW, Cout, Cin]
    const gd = dilateHW(g, sh, sw);
    const extraH = Hp - ((OH - 1) * sh + KH);
    const extraW = Wp - ((OW - 1) * sw + KW);
    const gxp = N.conv2d(L.contiguous(gd), L.contiguous(flipped), { padding: [KH - 1, KH - 1 + extraH, KW - 1, KW - 1 + extraW] });
    const gx = L.slice(L.slice(gxp, 1, pads[0], pads[0] + H), 2, pads[2], pads[2] + W);
    return [gx, gw, gb];
  });
}

export function maxPool2dGrad(out: Tensor, x: Tensor, kh: number, kw: number, sh: number, sw: number, spec: 'same' | 'valid' | number[]): Tensor {
  if (!needsGrad(x)) return out;
  const [, H, W] = x.shape;
  const [, OH, OW] = out.shape;
  const pads = resolvePads(spec, H, W, kh, kw, sh, sw, OH, OW);
  const Hp = H + pads[0] + pads[1];
  const Wp = W + pads[2] + pads[3];
  return record('max_pool2d', out, [x], [x, out], (g, [xs, ys]) => {
    if (useKernel(xs, g)) return [wrap(native.maxPool2dBackward(xs.handle, g.handle, kh, kw, sh, sw, spec))];
    // 16-bit operands where the kernel takes float32 only (the CPU): the kernel on them
    // widened, which routes a NaN window's gradient to the NaN as torch does (the
    // composed form below finds no element equal to a NaN maximum and drops it).
    if (xs.dtype !== 'float32') {
      const x32 = L.cast(xs, 'float32');
      if (useKernel(x32)) return [L.cast(wrap(native.maxPool2dBackward(x32.handle, L.cast(g, 'float32').handle, kh, kw, sh, sw, spec)), xs.dtype)];
    }
    const xp = padHW(xs, pads, -Infinity);
    let taken: Tensor | null = null; // windows whose maximum already received the gradient
    let gxp: Tensor | null = null;
    for (let i = 0; i < kh; i++)
      for (let j = 0; j < kw; j++) {
        const hit = L.cast(E.equal(windowAt(xp, i, j, sh, sw, OH, OW), ys), xs.dtype);
        const first: Tensor = taken ? E.mul(hit, E.scale(taken, -1, 1)) : hit;
        taken = taken ? E.maximum(taken, hit) : hit;
        // Scatter this offset's share back: dilate, then shift to (i, j) inside the padded extent.
        const share = dilateHW(E.mul(g, first), sh, sw);
        const placed = padHW(share, [i, Hp - i - share.shape[1], j, Wp - j - share.shape[2]], 0);
        gxp = gxp ? E.add(gxp, placed) : placed;
      }
    return [L.slice(L.slice(gxp!, 1, pads[0], pads[0] + H), 2, pads[2], pads[2] + W)];
  });
}
