// The table of bad calls that test/errors.test.ts checks, and the child process
// that runs it. Run as `node dist/test/helpers/bad-calls-child.js [--from N]`, it
// executes rows N.. one at a time and writes one JSON line per event to fd 1 with
// writeSync (a native crash must not lose lines still buffered in a stream):
//   {"row": i, "phase": "start"}                      before row i runs
//   {"row": i, "phase": "done", ...BadCallResult}      after it
// so the parent can tell which row a segfault or abort happened on, record it, and
// restart the child after that row. Imported (by the parent), it only exports the
// table: nothing runs and no tensor is created at import.
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as P from '../../lib/index.js';
import type { Tensor } from '../../lib/index.js';

export type ErrorClass = 'TypeError' | 'RangeError' | 'Error';

/** Tensors a row makes are registered here, so the child can dispose them and then check that the failed call itself left nothing alive. */
export class Fixtures {
  readonly made: Tensor[] = [];
  t<T extends Tensor>(x: T): T {
    this.made.push(x);
    return x;
  }
  /** float32 normal samples. */
  r(shape: number[]): Tensor {
    return this.t(P.randn(shape, { seed: 7 }));
  }
  ones(shape: number[], dtype: P.DTypeName = 'float32'): Tensor {
    return this.t(P.ones(shape, { dtype }));
  }
  ids(values: number[]): Tensor {
    return this.t(P.tensor(values, undefined, { dtype: 'int32' }));
  }
  mask(shape: number[]): Tensor {
    return this.ones(shape, 'uint8');
  }
  disposed(): Tensor {
    const x = this.t(P.ones([2]));
    x.dispose();
    return x;
  }
}

export interface BadCall {
  /** What is wrong, in words; unique (it is the ava test title). */
  name: string;
  /** The call. A returned promise must reject; a returned Tensor means the call was accepted (a failure). */
  call: (f: Fixtures) => unknown;
  error: ErrorClass;
  /** Names the op and the argument and, for shapes, expected vs received. */
  message: RegExp;
  /** The row is about a machine without CUDA; where CUDA works the call is valid. */
  withoutCuda?: boolean;
}

// Loose shorthands for calls that are wrong on purpose (the types would refuse them).
/* eslint-disable @typescript-eslint/no-explicit-any */
const A = P as any;
const HUGE = [2 ** 40, 2 ** 20];
// 4323 * 8534232742868171 = 2**64 * 2000 + 1: the element count wraps to 1 in int64.
const WRAPS_TO_ONE = [4323, 8534232742868171];
// Ops whose JS name is camelCase report a snake_case name; either is accepted.
const LN = 'layer_?[nN]orm';

export const BAD_CALLS: BadCall[] = [
  // ---- wrong types where a Tensor is expected ----
  { name: "add(tensor, string): 'b' is not a Tensor", call: (f) => P.add(f.r([2]), 'x' as any), error: 'TypeError', message: /^add: argument 'b' must be a Tensor, got 'x'/ },
  { name: "add(number, string): names add and 'b', not an internal op", call: () => A.add(5, 'x'), error: 'TypeError', message: /^add: argument 'b' must be a Tensor, got 'x'/ },
  { name: "add(null, tensor): 'a' is null", call: (f) => A.add(null, f.r([2])), error: 'TypeError', message: /^add: argument 'a' must be a Tensor, got null/ },
  { name: "mul(tensor, plain object)", call: (f) => A.mul(f.r([2]), { shape: [2] }), error: 'TypeError', message: /^mul: argument 'b' must be a Tensor, got Object/ },
  { name: "matmul(number, tensor)", call: (f) => A.matmul(3, f.r([2, 2])), error: 'TypeError', message: /^matmul: argument 'a' must be a Tensor, got number 3/ },
  { name: "matmul(tensor, disposed tensor)", call: (f) => P.matmul(f.r([2, 2]), f.disposed()), error: 'Error', message: /^matmul: argument 'b' is a disposed Tensor/ },
  { name: "exp(null)", call: () => A.exp(null), error: 'TypeError', message: /^exp: argument 'x' must be a Tensor, got null/ },
  { name: "exp(disposed tensor)", call: (f) => P.exp(f.disposed()), error: 'Error', message: /^exp: argument 'x' is a disposed Tensor/ },
  { name: "disposed.mul(2): names mul and 'a', not the fused 'scale' op", call: (f) => f.disposed().mul(2), error: 'Error', message: /^mul: argument 'a' is a disposed Tensor/ },
  { name: "softmax(string)", call: () => A.softmax('abc'), error: 'TypeError', message: /^softmax: argument 'x' must be a Tensor, got 'abc'/ },
  { name: "layerNorm weight is a plain array", call: (f) => A.layerNorm(f.r([2, 4]), [1, 1, 1, 1]), error: 'TypeError', message: new RegExp(`^${LN}: argument 'weight' must be a Tensor, got array of length 4`) },
  { name: "embedding ids is a plain array", call: (f) => A.embedding(f.r([4, 3]), [1, 2]), error: 'TypeError', message: /^embedding: argument 'ids' must be a Tensor, got array of length 2/ },
  { name: "attention v is a string", call: (f) => A.attention(f.r([1, 2, 1, 4]), f.r([1, 3, 1, 4]), 'v'), error: 'TypeError', message: /^attention: argument 'v' must be a Tensor, got 'v'/ },
  { name: "conv2d bias is a number", call: (f) => A.conv2d(f.r([1, 5, 5, 3]), f.r([3, 3, 3, 4]), { bias: 5 }), error: 'TypeError', message: /^conv2d: argument 'bias' must be a Tensor, got number 5/ },
  { name: "concat element is a number", call: (f) => A.concat([f.r([2]), 3]), error: 'TypeError', message: /^concat: argument 'tensors\[1\]' must be a Tensor, got number 3/ },
  { name: "concat of a Tensor instead of an array", call: (f) => A.concat(f.r([2])), error: 'TypeError', message: /^concat: argument 'tensors' must be an array of Tensors/ },
  { name: "where(string cond, 1, 2): names where and 'cond'", call: () => A.where('x', 1, 2), error: 'TypeError', message: /^where: argument 'cond' must be a Tensor, got 'x'/ },
  { name: "reshape(disposed tensor)", call: (f) => P.reshape(f.disposed(), [2]), error: 'Error', message: /^reshape: argument 'x' is a disposed Tensor/ },
  { name: "disposed.data() rejects", call: (f) => f.disposed().data(), error: 'Error', message: /^data: the Tensor has been disposed/ },
  { name: "disposed.dataSync() throws", call: (f) => f.disposed().dataSync(), error: 'Error', message: /^dataSync: the Tensor has been disposed/ },
  { name: "disposed bfloat16 .data() rejects in data's words, not the widening cast's", call: (f) => { const x = P.ones([2], { dtype: 'bfloat16' }); x.dispose(); f.t(x); return x.data(); }, error: 'Error', message: /^data: the Tensor has been disposed/ },
  { name: "disposed float16 .dataSync() throws in dataSync's words", call: () => { const x = P.ones([2], { dtype: 'float16' }); x.dispose(); return x.dataSync(); }, error: 'Error', message: /^dataSync: the Tensor has been disposed/ },
  { name: "bfloat16 read whose float32 copy passes 2^32 bytes: refused before the copy is queued", call: (f) => f.t(P.broadcastTo(f.t(P.ones([1], { dtype: 'bfloat16' })), [2 ** 30 + 1])).dataSync(), error: 'RangeError', message: /^dataSync: the bfloat16 tensor \[1073741825\] is read as float32, 4294967300 bytes, more than one ArrayBuffer can \(4294967296\)/ },
  { name: "sub(number, number)", call: () => A.sub(1, 2), error: 'TypeError', message: /^sub: at least one of 'a' and 'b' must be a Tensor, got two numbers/ },
  { name: "new Tensor(plain object)", call: () => new (P.Tensor as any)({}), error: 'TypeError', message: /^Tensor: .*not new Tensor\(\)/ },
  { name: "tidy(number)", call: () => A.tidy(5), error: 'TypeError', message: /^tidy: argument 'fn' must be a function, got number/ },
  { name: "tidy(async function)", call: () => A.tidy(async () => 1), error: 'TypeError', message: /^tidy: argument 'fn' must be synchronous/ },

  // ---- wrong dtypes ----
  { name: "exp(int32)", call: (f) => P.exp(f.ids([1, 2])), error: 'TypeError', message: /^exp: argument 'x' must have a floating dtype \(float32, float16 or bfloat16\), got int32/ },
  { name: "exp(uint8)", call: (f) => P.exp(f.ones([2], 'uint8')), error: 'TypeError', message: /^exp: argument 'x' must have a floating dtype \(float32, float16 or bfloat16\), got uint8/ },
  { name: "add(int32, 1): names add and 'a', not the fused 'scale' op", call: (f) => P.add(f.ids([1, 2]), 1), error: 'TypeError', message: /^add: argument 'a' must have a floating dtype \(float32, float16 or bfloat16\), got int32/ },
  { name: "embedding with float32 ids", call: (f) => P.embedding(f.r([4, 3]), f.r([2])), error: 'TypeError', message: /^embedding: argument 'ids' must have dtype int32, got float32/ },
  { name: "embedding with a 1-D weight", call: (f) => P.embedding(f.r([4]), f.ids([1])), error: 'RangeError', message: /^embedding: argument 'weight' must have 2 dimensions, got shape \[4\]/ },
  { name: "matmul(uint8, float32)", call: (f) => P.matmul(f.ones([2, 2], 'uint8'), f.r([2, 2])), error: 'TypeError', message: /^matmul: argument 'a' must have a floating dtype \(float32, float16 or bfloat16\), got uint8/ },
  { name: "where with a float32 cond", call: (f) => P.where(f.r([2]), f.r([2]), f.r([2])), error: 'TypeError', message: /^where: argument 'cond' must have dtype uint8, got float32/ },
  { name: "oneHot of float32 ids", call: (f) => P.oneHot(f.r([2]), 3), error: 'TypeError', message: /^one_?[hH]ot: argument 'ids' must have dtype int32, got float32/ },
  { name: "concat of float32 and int32", call: (f) => P.concat([f.r([2]), f.ids([1])]), error: 'TypeError', message: /^concat: argument 'tensors\[1\]' has dtype int32, expected float32/ },
  { name: "attention mask of dtype float32", call: (f) => P.attention(f.r([1, 2, 2, 4]), f.r([1, 3, 2, 4]), f.r([1, 3, 2, 4]), { mask: f.r([1, 2, 3]) }), error: 'TypeError', message: /^attention: argument 'mask' must have dtype uint8, got float32/ },
  { name: "layerNorm weight of dtype int32", call: (f) => P.layerNorm(f.r([2, 2]), f.ids([1, 1])), error: 'TypeError', message: new RegExp(`^${LN}: argument 'weight' must have a floating dtype \\(float32, float16 or bfloat16\\), got int32`) },
  { name: "cast to 'float64'", call: (f) => A.cast(f.r([2]), 'float64'), error: 'TypeError', message: /^cast: argument 'dtype' must be one of .*got 'float64'/ },

  // ---- shape mismatches ----
  { name: "add [2,3] + [4,3] does not broadcast", call: (f) => P.add(f.r([2, 3]), f.r([4, 3])), error: 'RangeError', message: /^add: shapes of 'a' \[2, 3\] and 'b' \[4, 3\] cannot be broadcast together \(dimension 0: 2 vs 4\)/ },
  { name: "matmul inner dimensions differ", call: (f) => P.matmul(f.r([2, 3]), f.r([4, 5])), error: 'RangeError', message: /^matmul: inner dimensions differ: 'a' \[2, 3\] has K = 3 but 'b' \[4, 5\] has K = 4/ },
  { name: "matmul of a 1-D 'a'", call: (f) => P.matmul(f.r([3]), f.r([3, 2])), error: 'RangeError', message: /^matmul: argument 'a' must have at least 2 dimensions, got shape \[3\]/ },
  { name: "matmul batch dims differ", call: (f) => P.matmul(f.r([2, 2, 3]), f.r([3, 3, 4])), error: 'RangeError', message: /^matmul: shapes of 'a \(batch dims\)' \[2\] and 'b \(batch dims\)' \[3\] cannot be broadcast/ },
  { name: "matmul bias of the wrong length", call: (f) => P.matmul(f.r([2, 3]), f.r([3, 4]), { bias: f.r([5]) }), error: 'RangeError', message: /^matmul: argument 'bias' must have shape \[4\], got \[5\]/ },
  { name: "linear weight [out, in] does not match x", call: (f) => P.linear(f.r([2, 3]), f.r([4, 5])), error: 'RangeError', message: /^(linear|matmul): .*'a' \[2, 3\] has K = 3 but 'b' \[4, 5\] \(transposed\) has K = 5/ },
  { name: "attention q is 3-D", call: (f) => P.attention(f.r([1, 2, 3]), f.r([1, 2, 1, 3]), f.r([1, 2, 1, 3])), error: 'RangeError', message: /^attention: argument 'q' must have 4 dimensions, got shape \[1, 2, 3\]/ },
  { name: "attention k head size differs from q", call: (f) => P.attention(f.r([1, 2, 2, 4]), f.r([1, 3, 2, 5]), f.r([1, 3, 2, 4])), error: 'RangeError', message: /^attention: argument 'k' must have shape \[1, Nk, 2, 4\] to match 'q' \[1, 2, 2, 4\], got \[1, 3, 2, 5\]/ },
  { name: "attention v length differs from k", call: (f) => P.attention(f.r([1, 2, 2, 4]), f.r([1, 3, 2, 4]), f.r([1, 5, 2, 4])), error: 'RangeError', message: /^attention: argument 'v' must have shape \[1, 3, 2, Dv\] .*got \[1, 5, 2, 4\]/ },
  { name: "attention mask does not broadcast to [B, Nq, Nk]", call: (f) => P.attention(f.r([1, 2, 2, 4]), f.r([1, 3, 2, 4]), f.r([1, 3, 2, 4]), { mask: f.mask([1, 2, 4]) }), error: 'RangeError', message: /^attention: argument 'mask' must be broadcastable to \[B, Nq, Nk\] = \[1, 2, 3\], got \[1, 2, 4\]/ },
  { name: "attention mask is 4-D", call: (f) => P.attention(f.r([1, 2, 2, 4]), f.r([1, 3, 2, 4]), f.r([1, 3, 2, 4]), { mask: f.mask([1, 1, 2, 3]) }), error: 'RangeError', message: /^attention: argument 'mask' must be broadcastable to \[B, Nq, Nk\] = \[1, 2, 3\], got \[1, 1, 2, 3\]/ },
  { name: "layerNorm weight of the wrong length", call: (f) => P.layerNorm(f.r([2, 4]), f.r([3])), error: 'RangeError', message: new RegExp(`^${LN}: argument 'weight' must have shape \\[4\\], got \\[3\\]`) },
  { name: "layerNorm bias of the wrong rank", call: (f) => P.layerNorm(f.r([2, 4]), f.r([4]), f.r([4, 1])), error: 'RangeError', message: new RegExp(`^${LN}: argument 'bias' must have shape \\[4\\], got \\[4, 1\\]`) },
  { name: "batchNorm mean of the wrong length", call: (f) => P.batchNorm(f.r([2, 3]), f.r([4]), f.r([3])), error: 'RangeError', message: /^batch_?[nN]orm: argument 'mean' must have shape \[3\], got \[4\]/ },
  { name: "conv2d weight Cin differs from x", call: (f) => P.conv2d(f.r([1, 5, 5, 3]), f.r([3, 3, 2, 4])), error: 'RangeError', message: /^conv2d: argument 'weight' must have shape \[KH, KW, 3, Cout\] .*got \[3, 3, 2, 4\]/ },
  { name: "conv2d weight is 3-D", call: (f) => P.conv2d(f.r([1, 5, 5, 3]), f.r([3, 3, 3])), error: 'RangeError', message: /^conv2d: argument 'weight' must have 4 dimensions, got shape \[3, 3, 3\]/ },
  { name: "conv2d bias of the wrong length", call: (f) => P.conv2d(f.r([1, 5, 5, 3]), f.r([3, 3, 3, 4]), { bias: f.r([3]) }), error: 'RangeError', message: /^conv2d: argument 'bias' must have shape \[4\], got \[3\]/ },
  { name: "conv2d kernel larger than the input", call: (f) => P.conv2d(f.r([1, 2, 2, 3]), f.r([3, 3, 3, 4])), error: 'RangeError', message: /^conv2d: kernel height 3 is larger than the \(padded\) input height 2/ },
  { name: "concat shapes differ off the axis", call: (f) => P.concat([f.r([2, 3]), f.r([2, 4])], 0), error: 'RangeError', message: /^concat: argument 'tensors\[1\]' has shape \[2, 4\], expected \[2, 3\] except along axis 0/ },
  { name: "concat of no tensors", call: () => P.concat([]), error: 'RangeError', message: /^concat: argument 'tensors' must hold at least one tensor, got 0/ },
  { name: "reshape [2,3] to [4,2]", call: (f) => P.reshape(f.r([2, 3]), [4, 2]), error: 'RangeError', message: /^reshape: argument 'shape' \[4, 2\] has 8 elements but the tensor \[2, 3\] has 6/ },
  { name: "reshape with two -1", call: (f) => P.reshape(f.r([2, 3]), [-1, -1]), error: 'RangeError', message: /^reshape: argument 'shape' \[-1, -1\] has more than one -1/ },
  { name: "reshape to a shape whose element count wraps around int64", call: (f) => f.t(P.sum(f.t(P.reshape(f.ones([1]), WRAPS_TO_ONE)), 1)).dataSync(), error: 'RangeError', message: /^reshape: argument 'shape' \[4323, 8534232742868171\] is too large/ },
  { name: "broadcastTo [2,3] -> [4,3]", call: (f) => P.broadcastTo(f.r([2, 3]), [4, 3]), error: 'RangeError', message: /^broadcast(To)?: cannot broadcast \[2, 3\] to \[4, 3\] \(dimension 0 is 2, expected 1 or 4\)/ },
  { name: "broadcastTo a negative dimension", call: (f) => f.t(P.broadcastTo(f.ones([1]), [-5])).data(), error: 'RangeError', message: /^broadcast(To)?: argument 'shape' \[-5\] has a negative dimension/ },

  // ---- bad axes ----
  { name: "sum over axis 2 of a 2-D tensor", call: (f) => P.sum(f.r([2, 3]), 2), error: 'RangeError', message: /^sum: argument 'axis' must be in \[-2, 2\), got 2/ },
  { name: "sum over axis 0.5", call: (f) => P.sum(f.r([2, 3]), 0.5), error: 'TypeError', message: /^sum: argument 'axis' must be an integer, got number 0.5/ },
  { name: "max over an empty axis", call: (f) => P.max(f.r([0, 3]), 0), error: 'RangeError', message: /^max: cannot reduce over axis 0 of size 0 \(shape \[0, 3\]\)/ },
  { name: "softmax over axis 0", call: (f) => P.softmax(f.r([2, 3]), 0), error: 'RangeError', message: /^softmax: only the last axis is supported \(axis -1 or 1\), got 0/ },
  { name: "softmax of a scalar", call: (f) => P.softmax(f.t(P.tensor(3))), error: 'RangeError', message: /^softmax: argument 'x' must have at least 1 dimensions, got shape \[\]/ },
  { name: "transpose axis1 out of range", call: (f) => P.transpose(f.r([2, 3]), 0, 5), error: 'RangeError', message: /^transpose: argument 'axis1' must be in \[-2, 2\), got 5/ },
  { name: "permute repeats an axis", call: (f) => P.permute(f.r([2, 3]), [0, 0]), error: 'RangeError', message: /^permute: argument 'axes' \[0, 0\] repeats axis 0/ },
  { name: "permute lists too few axes", call: (f) => P.permute(f.r([2, 3]), [0]), error: 'RangeError', message: /^permute: argument 'axes' must list 2 axes for shape \[2, 3\], got \[0\]/ },
  { name: "slice axis out of range", call: (f) => P.slice(f.r([2, 3]), 3, 0), error: 'RangeError', message: /^slice: argument 'axis' must be in \[-2, 2\), got 3/ },
  { name: "slice step 0", call: (f) => P.slice(f.r([2, 3]), 0, 0, 2, 0), error: 'RangeError', message: /^slice: argument 'step' must be >= 1, got 0/ },
  { name: "squeeze an axis of size 2", call: (f) => P.squeeze(f.r([2, 3]), 0), error: 'RangeError', message: /^squeeze: axis 0 has size 2, expected 1/ },
  { name: "unsqueeze axis out of range", call: (f) => P.unsqueeze(f.r([2]), 3), error: 'RangeError', message: /^unsqueeze: argument 'axis' must be in \[-2, 2\), got 3/ },
  { name: "concat along axis 1 of 1-D tensors", call: (f) => P.concat([f.r([2]), f.r([2])], 1), error: 'RangeError', message: /^concat: argument 'axis' must be in \[-1, 1\), got 1/ },

  // ---- bad options ----
  { name: "matmul activation 'swish'", call: (f) => P.matmul(f.r([2, 3]), f.r([3, 4]), { activation: 'swish' as any }), error: 'TypeError', message: /^matmul: option 'activation' must be one of 'none', 'relu', 'gelu', 'gelu_tanh', got 'swish'/ },
  { name: "matmul transA 'yes'", call: (f) => P.matmul(f.r([2, 3]), f.r([3, 4]), { transA: 'yes' as any }), error: 'TypeError', message: /^matmul: option 'transA' must be a boolean, got 'yes'/ },
  { name: "matmul options is a number", call: (f) => A.matmul(f.r([2, 3]), f.r([3, 4]), 5), error: 'TypeError', message: /^matmul: argument 'options' must be an object, got number 5/ },
  { name: "attention scale -1", call: (f) => P.attention(f.r([1, 2, 2, 4]), f.r([1, 3, 2, 4]), f.r([1, 3, 2, 4]), { scale: -1 }), error: 'RangeError', message: /^attention: option 'scale' must be a positive finite number, got -1/ },
  { name: "conv2d padding 'full'", call: (f) => P.conv2d(f.r([1, 5, 5, 3]), f.r([3, 3, 3, 4]), { padding: 'full' as any }), error: 'TypeError', message: /^conv2d: option 'padding' must be 'same', 'valid', a number or \[top, bottom, left, right\], got 'full'/ },
  { name: "conv2d negative stride", call: (f) => P.conv2d(f.r([1, 5, 5, 3]), f.r([3, 3, 3, 4]), { stride: -1 }), error: 'RangeError', message: /^conv2d: argument 'stride' must be >= 1, got \[-1, -1\]/ },
  { name: "conv2d stride 1.5", call: (f) => P.conv2d(f.r([1, 5, 5, 3]), f.r([3, 3, 3, 4]), { stride: 1.5 }), error: 'TypeError', message: /^conv2d: argument 'stride' must be an integer, got number 1.5/ },
  { name: "conv2d negative padding", call: (f) => P.conv2d(f.r([1, 5, 5, 3]), f.r([3, 3, 3, 4]), { padding: [-1, 0, 0, 0] }), error: 'RangeError', message: /^conv2d: argument 'padding' must be >= 0/ },
  { name: "maxPool2d without a kernel", call: (f) => A.maxPool2d(f.r([1, 4, 4, 1]), {}), error: 'TypeError', message: /^max_?[pP]ool2d: option 'kernel' is required/ },
  { name: "maxPool2d stride 0", call: (f) => P.maxPool2d(f.r([1, 4, 4, 1]), { kernel: 2, stride: 0 }), error: 'RangeError', message: /^max_?[pP]ool2d: argument 'stride' must be >= 1, got \[0, 0\]/ },
  { name: "adamUpdate int32 grad", call: (f) => P.adamUpdate(f.r([2]), f.ids([1, 2]), f.r([2]), f.r([2]), { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 }), error: 'TypeError', message: /^adam_update: argument 'grad' must have a floating dtype \(float32, float16 or bfloat16\), got int32/ },
  { name: "adamUpdate uint8 param", call: (f) => P.adamUpdate(f.ones([2], 'uint8'), f.r([2]), f.r([2]), f.r([2]), { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 }), error: 'TypeError', message: /^adam_update: argument 'param' must have dtype float32, got uint8/ },
  { name: "lambUpdate disposed param", call: (f) => P.lambUpdate(f.disposed(), f.r([2]), f.r([2]), f.r([2]), { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-6, step: 1 }), error: 'Error', message: /^lamb_update: argument 'param' is a disposed Tensor/ },
  { name: "lambUpdate step 1.5", call: (f) => P.lambUpdate(f.r([2]), f.r([2]), f.r([2]), f.r([2]), { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-6, step: 1.5 }), error: 'TypeError', message: /^lamb_update: argument 'step' must be an integer, got number 1.5/ },
  { name: "sgdUpdate lr NaN", call: (f) => P.sgdUpdate(f.r([2]), f.r([2]), null, { lr: NaN }), error: 'TypeError', message: /^sgd_update: argument 'lr' must be a number/ },
  { name: "sgdUpdate into a broadcast view", call: (f) => P.sgdUpdate(f.t(P.broadcastTo(f.r([1]), [3])), f.r([3]), null, { lr: 0.1 }), error: 'Error', message: /^sgd_update: argument 'param' is a broadcast view \(axis 0 has stride 0\)/ },
  { name: "sgdUpdate grad of another shape", call: (f) => P.sgdUpdate(f.r([2, 3]), f.r([3, 2]), null, { lr: 0.1 }), error: 'RangeError', message: /^sgd_update: argument 'grad' must have shape \[2, 3\], got \[3, 2\]/ },
  { name: "oneHot depth 0", call: (f) => P.oneHot(f.ids([1]), 0), error: 'RangeError', message: /^one_?[hH]ot: argument 'depth' must be >= 1, got 0/ },
  { name: "gelu approximate 'fast'", call: (f) => P.gelu(f.r([2]), { approximate: 'fast' as any }), error: 'TypeError', message: /^gelu: option 'approximate' must be 'none' or 'tanh', got 'fast'/ },
  { name: "layerNorm eps -1", call: (f) => P.layerNorm(f.r([2, 4]), null, null, { eps: -1 }), error: 'RangeError', message: new RegExp(`^${LN}: argument 'eps' must be >= 0, got -1`) },
  { name: "randn std -1", call: () => P.randn([2], { std: -1 }), error: 'RangeError', message: /^randn: argument 'std' must be >= 0, got -1/ },
  { name: "randn seed -1", call: () => P.randn([2], { seed: -1 }), error: 'RangeError', message: /^randn: option 'seed' must be >= 0, got -1/ },
  { name: "arange step 0", call: () => P.arange(0, 5, 0), error: 'RangeError', message: /^arange: argument 'step' must not be 0/ },
  { name: "zeros on device 'gpu'", call: () => P.zeros([2], { device: 'gpu' }), error: 'TypeError', message: /^(zeros|full): argument 'device' must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'/ },
  { name: "tensor on device 'cuda' where CUDA is unavailable", call: () => P.tensor([1], undefined, { device: 'cuda' }), error: 'Error', message: /^tensor: device 'cuda' was requested but CUDA is unavailable: \S.*/, withoutCuda: true },

  // ---- tensor() ----
  { name: "tensor of a ragged array", call: () => P.tensor([[1, 2], [3]]), error: 'RangeError', message: /^tensor: argument 'data' is ragged: expected 2 elements at depth 1, got 1/ },
  { name: "tensor of an array holding an array where a number belongs", call: () => A.tensor([[1, 2], [3, [4]]]), error: 'TypeError', message: /^tensor: argument 'data' must hold numbers, found array of length 1/ },
  { name: "tensor of strings", call: () => A.tensor(['a', 'b']), error: 'TypeError', message: /^tensor: argument 'data' must hold numbers, found 'a'/ },
  { name: "tensor shape [4,2] for 6 values", call: () => P.tensor(new Float32Array(6), [4, 2]), error: 'RangeError', message: /^tensor: argument 'shape' \[4, 2\] has 8 elements but 'data' has 6/ },
  { name: "tensor dtype 'float64'", call: () => A.tensor([1, 2], undefined, { dtype: 'float64' }), error: 'TypeError', message: /^tensor: argument 'dtype' must be one of 'float32', 'float16', 'bfloat16', 'int32', 'uint8', got 'float64'/ },
  { name: "tensor int32 from 1.5", call: () => P.tensor([1.5], undefined, { dtype: 'int32' }), error: 'TypeError', message: /^tensor: int32 needs integers, 'data\[0\]' is 1.5/ },
  { name: "tensor of a plain object", call: () => A.tensor({ a: 1 }), error: 'TypeError', message: /^tensor: argument 'data' must be a typed array, a number or nested number arrays, got Object/ },
  { name: "tensor of a DataView", call: () => A.tensor(new DataView(new ArrayBuffer(4))), error: 'TypeError', message: /^tensor: argument 'data' must be a typed array, got DataView/ },
  { name: "tensor of an int64 id past int32", call: () => P.tensor(new BigInt64Array([2n ** 40n])), error: 'RangeError', message: /^tensor: argument 'data' value 1099511627776 at 0 does not fit in int32/ },
  { name: "tensor with 9 dimensions", call: () => P.tensor(new Float32Array(1), [1, 1, 1, 1, 1, 1, 1, 1, 1]), error: 'RangeError', message: /^tensor: argument 'shape' has 9 dimensions; at most 8 are supported/ },
  { name: "zeros with 9 dimensions", call: () => P.zeros([1, 1, 1, 1, 1, 1, 1, 1, 1]), error: 'RangeError', message: /^(zeros|full): argument 'shape' has 9 dimensions; at most 8 are supported/ },
  { name: "reshape to 9 dimensions", call: (f) => P.reshape(f.ones([1]), [1, 1, 1, 1, 1, 1, 1, 1, 1]), error: 'RangeError', message: /^reshape: argument 'shape' has 9 dimensions; at most 8 are supported/ },
  { name: "zeros with a dimension 1.5", call: () => P.zeros([1.5]), error: 'TypeError', message: /^(zeros|full): argument 'shape' must be an array of integers, element 0 is number 1.5/ },
  { name: "zeros with a negative dimension", call: () => P.zeros([-1, 2]), error: 'RangeError', message: /^(zeros|full): argument 'shape' \[-1, 2\] has a negative dimension/ },

  // ---- sizes that cannot be allocated ----
  { name: "zeros [2**40, 2**20] cannot be allocated", call: () => P.zeros(HUGE), error: 'RangeError', message: /^(zeros|full): argument 'shape' \[1099511627776, 1048576\] is too large/ },
  { name: "randn [2**40, 2**20] cannot be allocated", call: () => P.randn(HUGE), error: 'RangeError', message: /^randn: argument 'shape' \[1099511627776, 1048576\] is too large/ },
  { name: "zeros [2**45] (128 TiB) fails with out of memory", call: () => P.zeros([2 ** 45]), error: 'Error', message: /^(zeros|full): .*out of memory.*140737488355328 bytes/ },
  { name: "arange of 2**50 elements cannot be allocated", call: () => P.arange(2 ** 50), error: 'RangeError', message: /^arange: .*\[1125899906842624\] is too large/ },
  { name: "oneHot depth 2**45 cannot be allocated", call: (f) => P.oneHot(f.ids([1]), 2 ** 45), error: 'Error', message: /^one_?[hH]ot: .*(out of memory|too large)/ },
  { name: "broadcastTo a shape too large to describe", call: (f) => f.t(P.broadcastTo(f.ones([1]), HUGE)), error: 'RangeError', message: /^broadcast: argument 'shape' \[1099511627776, 1048576\] is too large/ },
  { name: "data() of a broadcast view too large for one ArrayBuffer", call: (f) => f.t(P.broadcastTo(f.ones([1]), [2 ** 23, 2 ** 20])).data(), error: 'RangeError', message: /^data: the tensor \[8388608, 1048576\] holds 35184372088832 bytes, more than one ArrayBuffer can/ },

  // ---- kernels that fail: data() rejects with the op's message ----
  { name: "embedding id 7 of 4 rows: data() rejects", call: (f) => f.t(P.embedding(f.r([4, 3]), f.ids([0, 7]))).data(), error: 'Error', message: /^embedding: index 7 at position 1 is out of range \[0, 4\)/ },
  { name: "embedding id -1: data() rejects", call: (f) => f.t(P.embedding(f.r([4, 3]), f.ids([-1]))).data(), error: 'Error', message: /^embedding: index -1 at position 0 is out of range \[0, 4\)/ },
  { name: "embedding id 4 of 4 rows: dataSync() throws", call: (f) => f.t(P.embedding(f.r([4, 3]), f.ids([4]))).dataSync(), error: 'Error', message: /^embedding: index 4 at position 0 is out of range \[0, 4\)/ },
  { name: "embedding out of range, then add(1): data() of the dependent rejects with embedding's message", call: (f) => f.t(f.t(P.embedding(f.r([4, 3]), f.ids([9]))).add(1)).data(), error: 'Error', message: /^embedding: index 9 at position 0 is out of range \[0, 4\)/ },
  { name: "oneHot id 5 with depth 3: data() rejects", call: (f) => f.t(P.oneHot(f.ids([5]), 3)).data(), error: 'Error', message: /^one_?[hH]ot: index 5 at position 0 is out of range \[0, 3\)/ },
];

export interface BadCallResult {
  row: number;
  name: string;
  /** 'threw' or 'rejected' when the call failed as it should; 'returned' when it was accepted. */
  outcome: 'threw' | 'rejected' | 'returned';
  errorClass?: string;
  message?: string;
  /** Live handles/storages left after the row's own tensors were disposed (must be 0). */
  leakedTensors: number;
  leakedStorages: number;
}

function write(obj: unknown): void {
  writeSync(1, JSON.stringify(obj) + '\n');
}

function drain(): void {
  // The queue runs tasks in order: once this read is done, every task before it has
  // run and released the storages it held.
  const z = P.zeros([1]);
  z.dataSync();
  z.dispose();
}

async function runRow(i: number): Promise<void> {
  const row = BAD_CALLS[i];
  drain();
  const before = P.memory().cpu;
  const f = new Fixtures();
  const res: BadCallResult = { row: i, name: row.name, outcome: 'returned', leakedTensors: 0, leakedStorages: 0 };
  try {
    const v = row.call(f);
    if (v && typeof (v as Promise<unknown>).then === 'function') {
      try {
        await v;
      } catch (err) {
        res.outcome = 'rejected';
        res.errorClass = (err as Error)?.constructor?.name;
        res.message = String((err as Error)?.message ?? err);
      }
    } else if (v instanceof P.Tensor) {
      // Accepted: run the kernel anyway (a crash must show up here), then free it.
      try {
        v.dataSync();
      } catch {
        /* the outcome is already 'returned' */
      }
      v.dispose();
    }
  } catch (err) {
    res.outcome = 'threw';
    res.errorClass = (err as Error)?.constructor?.name;
    res.message = String((err as Error)?.message ?? err);
  }
  for (const t of f.made) t.dispose();
  drain();
  const after = P.memory().cpu;
  res.leakedTensors = after.tensors - before.tensors;
  res.leakedStorages = after.storages - before.storages;
  write({ ...res, phase: 'done' });
}

async function main(): Promise<void> {
  const k = process.argv.indexOf('--from');
  const from = k >= 0 ? Number(process.argv[k + 1]) : 0;
  for (let i = from; i < BAD_CALLS.length; i++) {
    write({ row: i, phase: 'start' });
    await runRow(i);
  }
  write({ phase: 'end' });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    writeSync(2, `bad-calls-child: ${err?.stack ?? err}\n`);
    process.exit(3);
  });
}
