// Elementwise ops on floating tensors (float32; float16/bfloat16 compute natively
// on CUDA and through float32 on the CPU) with numpy broadcasting. A number in place of
// a tensor is broadcast as a scalar; + - * / by a number fuse into one affine pass.
import { native } from '../native.js';
import { describe } from '../dtype.js';
import { Tensor, wrap, handleOf, type TensorOrScalar } from '../tensor.js';
import * as G from '../autograd/grads.js';
import { optionKeys, options } from './args.js';
import { cast } from './layout.js';
import { tidy } from '../scope.js';

function scalarLike(op: string, name: string, v: number, like: Tensor): Tensor {
  if (typeof v !== 'number') throw new TypeError(`${op}: argument '${name}' must be a Tensor or a number, got ${describe(v)}`);
  // A number takes the tensor's floating dtype, so bfloat16 + 1 stays bfloat16 (+ - *
  // and / ** keep the number itself: affine() and withNumberInFloat32). Comparisons
  // compare with the rounded number, as torch does (bf16 1 == 1.001 is true there too).
  const dtype = like.dtype === 'float16' || like.dtype === 'bfloat16' ? like.dtype : 'float32';
  return wrap(native.full([], v, dtype, like.device));
}

function checkOperand(op: string, name: string, v: unknown): void {
  if (typeof v !== 'number') handleOf(op, name, v);
}

function binary(op: string, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  checkOperand(op, 'a', a);
  checkOperand(op, 'b', b);
  if (typeof a === 'number' && typeof b === 'number')
    throw new TypeError(`${op}: at least one of 'a' and 'b' must be a Tensor, got two numbers`);
  const ta = typeof a === 'number' ? scalarLike(op, 'a', a, b as Tensor) : a;
  const tb = typeof b === 'number' ? scalarLike(op, 'b', b, ta) : b;
  try {
    return G.binaryGrad(op, wrap(native.binary(op, handleOf(op, 'a', ta), handleOf(op, 'b', tb))), ta, tb);
  } finally {
    if (ta !== a) ta.dispose();
    if (tb !== b) tb.dispose();
  }
}

function unary(op: string, x: Tensor, alpha = 1, beta = 0): Tensor {
  return G.unaryGrad(op, wrap(native.unary(op, handleOf(op, 'x', x), alpha, beta)), x, alpha);
}

// tensor OP number as one affine pass (alpha * x + beta); errors still name the
// op the caller used and the argument the tensor came in.
function affine(op: string, name: 'a' | 'b', x: Tensor, alpha: number, beta: number): Tensor {
  handleOf(op, name, x);
  if (x.dtype !== 'float32' && x.dtype !== 'float16' && x.dtype !== 'bfloat16')
    throw new TypeError(`${op}: argument '${name}' must have a floating dtype (float32, float16 or bfloat16), got ${x.dtype}`);
  return unary('scale', x, alpha, beta);
}

function isTensor(v: unknown): v is Tensor {
  return v instanceof Tensor;
}

/** a + b, broadcasting. */
export function add(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (typeof b === 'number' && typeof a !== 'number') return affine('add', 'a', a, 1, b);
  if (typeof a === 'number' && typeof b !== 'number') return affine('add', 'b', b, 1, a);
  return binary('add', a, b);
}
/** a - b, broadcasting. */
export function sub(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (typeof b === 'number' && typeof a !== 'number') return affine('sub', 'a', a, 1, -b);
  if (typeof a === 'number' && typeof b !== 'number') return affine('sub', 'b', b, -1, a);
  return binary('sub', a, b);
}
/** a * b, broadcasting. */
export function mul(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  // beta -0, not 0: x * b + 0 turns a product of -0 (-0 * 1, -3 * 0) into +0.
  if (typeof b === 'number' && typeof a !== 'number') return affine('mul', 'a', a, b, -0);
  if (typeof a === 'number' && typeof b !== 'number') return affine('mul', 'b', b, a, -0);
  return binary('mul', a, b);
}
/**
 * A number against a 16-bit tensor in / and **, computed in float32 from the number
 * itself and rounded once, as torch computes a scalar operand of a 16-bit op: the
 * number rounded to bfloat16 first made pow(x, 2.3) x^2.296875 (3 ulps off at 100).
 * null where this does not apply.
 */
function withNumberInFloat32(op: string, a: TensorOrScalar, b: TensorOrScalar): Tensor | null {
  const t = typeof a === 'number' ? b : typeof b === 'number' ? a : null;
  if (!(t instanceof Tensor) || t.disposed || (t.dtype !== 'float16' && t.dtype !== 'bfloat16')) return null;
  const dtype = t.dtype;
  return tidy(() => cast(binary(op, typeof a === 'number' ? a : cast(a, 'float32'), typeof b === 'number' ? b : cast(b, 'float32')), dtype));
}

/** a / b, broadcasting. */
export function div(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  // Not x * (1/b): that rounds twice and overflows for |b| below ~2.9e-39.
  return withNumberInFloat32('div', a, b) ?? binary('div', a, b);
}
/** a ** b, broadcasting. */
export const pow = (a: TensorOrScalar, b: TensorOrScalar): Tensor => withNumberInFloat32('pow', a, b) ?? binary('pow', a, b);
/** Elementwise maximum (NaN wins). */
export const maximum = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('maximum', a, b);
/** Elementwise minimum (NaN wins). */
export const minimum = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('minimum', a, b);
/** a == b as uint8 (1 or 0). */
export const equal = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('eq', a, b);
export const notEqual = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('ne', a, b);
export const less = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('lt', a, b);
export const lessEqual = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('le', a, b);
export const greater = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('gt', a, b);
export const greaterEqual = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('ge', a, b);

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
/** 1 / sqrt(x). */
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const square = (x: Tensor): Tensor => unary('square', x);

export interface GeluOptions {
  /** 'none': exact erf form (HuggingFace's "gelu"); 'tanh': the approximation JAX and the original Perceiver use. */
  approximate?: 'none' | 'tanh';
}
const GELU_OPTIONS = optionKeys<GeluOptions>({ approximate: true });

/** GELU, exact by default. */
export function gelu(x: Tensor, opts?: GeluOptions): Tensor {
  const approx = options('gelu', opts, GELU_OPTIONS).approximate ?? 'none';
  if (approx !== 'none' && approx !== 'tanh')
    throw new TypeError(`gelu: option 'approximate' must be 'none' or 'tanh', got ${describe(approx)}`);
  return unary(approx === 'tanh' ? 'gelu_tanh' : 'gelu', x);
}

/** alpha * x + beta in one pass. */
export function scale(x: Tensor, alpha: number, beta = 0): Tensor {
  return unary('scale', x, alpha, beta);
}

/** cond ? a : b elementwise, broadcasting; cond is uint8. */
export function where(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  handleOf('where', 'cond', cond);
  checkOperand('where', 'a', a);
  checkOperand('where', 'b', b);
  const ref = isTensor(a) ? a : isTensor(b) ? b : cond;
  const ta = typeof a === 'number' ? scalarLike('where', 'a', a, ref) : a;
  const tb = typeof b === 'number' ? scalarLike('where', 'b', b, ref) : b;
  try {
    return G.whereGrad(wrap(native.where(handleOf('where', 'cond', cond), handleOf('where', 'a', ta), handleOf('where', 'b', tb))), cond, ta, tb);
  } finally {
    if (ta !== a) ta.dispose();
    if (tb !== b) tb.dispose();
  }
}
