// Tensor: a JS handle on a native tensor. Ops are queued on the device and return
// at once; `await t.data()` is the only wait.
import { native, handleMetaBuffer, type NativeHandle } from './native.js';
import { describe, isBranded, type DTypeName, type TypedData } from './dtype.js';
import { track } from './scope.js';
import { resolveDevice } from './device.js';
import * as E from './ops/elementwise.js';
import * as L from './ops/layout.js';
import * as R from './ops/reduce.js';
import * as M from './ops/linalg.js';
import { backward, sameShape, type BackwardOptions, type GradNode } from './autograd/tape.js';

const disposeSymbol: symbol = (Symbol as unknown as { dispose?: symbol }).dispose ?? Symbol.for('nodejs.dispose');

export type Scalar = number;
export type TensorOrScalar = Tensor | number;

// Only wrap() passes this, so user code cannot make a Tensor of an arbitrary number.
const MADE_BY_WRAP = Symbol('Tensor');
const DTYPE_NAMES = native.dtypeNames;
const cudaNames: string[] = [];
const cudaName = (i: number) => (cudaNames[i] ??= `cuda:${i}`);
// Frees the native slot of a Tensor collected without dispose(); dispose() unregisters.
const unreleased = new FinalizationRegistry<NativeHandle>((h) => native.handleDispose(h));

// In-place writes to tensors (assign, the optimizers' updates) so far: what caches
// values derived from tensors (autocast's casts of parameters) compare.
let writes = 0;
/** @internal Called by every op that writes into an existing tensor. */
export function noteWrite(): void {
  writes++;
}
/** @internal */
export function writeCount(): number {
  return writes;
}
/**
 * @internal Whether t's leading axis has several indices that all read the same
 * elements (stride 0, as broadcastTo over a batch makes it).
 */
export function batchBroadcast(t: Tensor): boolean {
  return t.rank > 0 && t.shape[0] > 1 && native.handleStrides(t.handle)[0] === 0;
}

export class Tensor {
  /** @internal The native handle; use the ops, not this. */
  readonly handle: NativeHandle;
  /** Dimensions, e.g. [B, N, C]. */
  readonly shape: readonly number[];
  readonly dtype: DTypeName;
  /** 'cpu' or 'cuda:N'. */
  readonly device: string;
  /**
   * Set on a leaf (a parameter) to have backward() accumulate d(root)/d(this) into
   * .grad. Results of ops on such tensors carry a gradient node instead.
   */
  requiresGrad = false;
  #grad: Tensor | null = null;
  /** @internal The node that computes this tensor's inputs' gradients (null for leaves and constants). */
  gradFn: GradNode | null = null;
  // Mirrors the handle's state (only dispose() releases a handle), so that argument
  // checks, which run for every operand of every op, need no native call.
  #disposed = false;
  #registered = false;
  /** @internal Set by keep(): no tidy() scope disposes this tensor. */
  scopeKept = false;

  // The private field is the one mark nothing else can carry: instanceof on the
  // prototype chain alone takes Object.create(Tensor.prototype), whose first read of
  // #disposed would then fail with V8's message instead of the op's. Checked where a
  // Tensor argument is taken (handleOf) and by describe(), not by overriding
  // instanceof: a Symbol.hasInstance made every op's dispatch 5-8% slower.
  static [isBranded](v: unknown): boolean {
    return typeof v === 'object' && v !== null && #disposed in v;
  }

  /** @internal Tensors are made by ops and creation functions (tensor(), zeros(), ...). */
  constructor(handle: NativeHandle, key?: symbol) {
    if (key !== MADE_BY_WRAP)
      throw new TypeError('Tensor: tensors are created with tensor(), zeros(), randn() or an op, not new Tensor()');
    this.handle = handle;
    // An op writes its result's metadata as it returns; other handles ask for it.
    const meta = handleMetaBuffer;
    if (meta[0] !== handle) native.handleMeta(handle);
    this.dtype = DTYPE_NAMES[meta[1]];
    this.device = meta[2] < 0 ? 'cpu' : cudaName(meta[2]);
    const shape = new Array<number>(meta[3]);
    for (let i = 0; i < shape.length; i++) shape[i] = meta[4 + i];
    this.shape = Object.freeze(shape);
    // A tidy() scope disposes what it owns, so the safety net is set only for
    // tensors outside scopes, and for those that escape one (see scope.ts). A
    // detached tensor has an owner that frees it instead (an autograd node).
    if (detachNext) this.scopeKept = true;
    else if (!track(this)) this.registerFinalizer();
  }

  /** @internal Frees the native handle if this Tensor is collected undisposed. Idempotent. */
  registerFinalizer(): void {
    if (this.#registered || this.#disposed) return;
    this.#registered = true;
    unreleased.register(this, this.handle, this);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }
  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get disposed(): boolean {
    return this.#disposed;
  }

  /** The accumulated gradient of a leaf after backward(); owned by this tensor. */
  get grad(): Tensor | null {
    return this.#grad;
  }
  /**
   * Set by backward(), or by the user (a gradient computed elsewhere, for an
   * optimizer step): then a live tensor of this one's shape, dtype and device, as
   * backward adds to it and the optimizers update with it.
   */
  set grad(g: Tensor | null) {
    checkThis('grad', this);
    if (g !== null) {
      const op = 'Tensor.grad';
      if (!(g instanceof Tensor)) throw new TypeError(`${op}: argument 'value' must be a Tensor or null, got ${describe(g)}`);
      if (g.#disposed) throw new Error(`${op}: argument 'value' is a disposed Tensor`);
      if (!sameShape(g.shape, this.shape))
        throw new RangeError(`${op}: argument 'value' must have the tensor's shape [${this.shape.join(', ')}], got [${g.shape.join(', ')}]`);
      if (g.dtype !== this.dtype || g.device !== this.device)
        throw new TypeError(`${op}: argument 'value' must be ${this.dtype} on ${this.device} as the tensor is, got ${g.dtype} on ${g.device}`);
    }
    this.#grad = g;
  }
  /** Whether the elements are dense in row-major order (views may not be). */
  get isContiguous(): boolean {
    return native.handleIsContiguous(this.handle);
  }

  /**
   * The elements in row-major order, once every queued op that produces them has
   * run. float16/bfloat16 are returned widened to float32. Rejects with the failing
   * op's message if a kernel this tensor depends on failed.
   */
  async data(): Promise<TypedData> {
    checkThis('data', this);
    if (this.dtype === 'float16' || this.dtype === 'bfloat16') {
      const f = widenForRead('data', this);
      try {
        return new Float32Array(await native.handleRead(f.handle));
      } finally {
        f.dispose();
      }
    }
    return view(this.dtype, await native.handleRead(this.handle));
  }

  /**
   * Like data(), but BLOCKS the JS thread until the queue has produced the
   * values. Meant for scripts and tests, not servers.
   */
  dataSync(): TypedData {
    checkThis('dataSync', this);
    if (this.dtype === 'float16' || this.dtype === 'bfloat16') {
      const f = widenForRead('dataSync', this);
      try {
        return new Float32Array(native.handleReadSync(f.handle));
      } finally {
        f.dispose();
      }
    }
    return view(this.dtype, native.handleReadSync(this.handle));
  }

  /** The values as nested arrays matching the shape. */
  async array(): Promise<unknown> {
    return nest(Array.from(await this.data()), this.shape);
  }

  /** Releases the native memory now (and the gradient it holds). Idempotent; using the tensor afterwards throws. */
  dispose(): void {
    checkThis('dispose', this);
    if (!this.#disposed) {
      this.#disposed = true;
      if (this.#registered) unreleased.unregister(this);
      native.handleDispose(this.handle);
    }
    this.#grad?.dispose();
    this.#grad = null;
    this.gradFn = null;
  }

  /** Accumulates d(this)/d(leaf) into the .grad of every leaf this depends on (see autograd/tape.ts). */
  backward(opts?: BackwardOptions): void {
    backward(this, opts);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return this.disposed
      ? 'Tensor(disposed)'
      : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // Ops as methods; each is documented on the function of the same name.
  add(b: TensorOrScalar): Tensor { return E.add(this, b); }
  sub(b: TensorOrScalar): Tensor { return E.sub(this, b); }
  mul(b: TensorOrScalar): Tensor { return E.mul(this, b); }
  div(b: TensorOrScalar): Tensor { return E.div(this, b); }
  pow(b: TensorOrScalar): Tensor { return E.pow(this, b); }
  maximum(b: TensorOrScalar): Tensor { return E.maximum(this, b); }
  minimum(b: TensorOrScalar): Tensor { return E.minimum(this, b); }
  neg(): Tensor { return E.neg(this); }
  exp(): Tensor { return E.exp(this); }
  log(): Tensor { return E.log(this); }
  sin(): Tensor { return E.sin(this); }
  cos(): Tensor { return E.cos(this); }
  sqrt(): Tensor { return E.sqrt(this); }
  rsqrt(): Tensor { return E.rsqrt(this); }
  tanh(): Tensor { return E.tanh(this); }
  relu(): Tensor { return E.relu(this); }
  gelu(opts?: E.GeluOptions): Tensor { return E.gelu(this, opts); }
  sigmoid(): Tensor { return E.sigmoid(this); }
  abs(): Tensor { return E.abs(this); }
  square(): Tensor { return E.square(this); }
  scale(alpha: number, beta = 0): Tensor { return E.scale(this, alpha, beta); }
  sum(axis: number, opts?: R.ReduceOptions): Tensor { return R.sum(this, axis, opts); }
  mean(axis: number, opts?: R.ReduceOptions): Tensor { return R.mean(this, axis, opts); }
  max(axis: number, opts?: R.ReduceOptions): Tensor { return R.max(this, axis, opts); }
  min(axis: number, opts?: R.ReduceOptions): Tensor { return R.min(this, axis, opts); }
  argmax(axis: number, opts?: R.ReduceOptions): Tensor { return R.argmax(this, axis, opts); }
  softmax(axis = -1): Tensor { return R.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return R.logSoftmax(this, axis); }
  matmul(b: Tensor, opts?: M.MatmulOptions): Tensor { return M.matmul(this, b, opts); }
  reshape(shape: readonly number[]): Tensor { return L.reshape(this, shape); }
  flatten(startAxis = 0, endAxis = -1): Tensor { return L.flatten(this, startAxis, endAxis); }
  permute(axes: readonly number[]): Tensor { return L.permute(this, axes); }
  transpose(axis0 = -2, axis1 = -1): Tensor { return L.transpose(this, axis0, axis1); }
  slice(axis: number, start: number, end?: number, step?: number): Tensor { return L.slice(this, axis, start, end, step); }
  split(axis: number, sizes: readonly number[]): Tensor[] { return L.split(this, axis, sizes); }
  squeeze(axis?: number): Tensor { return L.squeeze(this, axis); }
  unsqueeze(axis: number): Tensor { return L.unsqueeze(this, axis); }
  broadcastTo(shape: readonly number[]): Tensor { return L.broadcastTo(this, shape); }
  contiguous(): Tensor { return L.contiguous(this); }
  cast(dtype: DTypeName): Tensor { return L.cast(this, dtype); }

  /**
   * A copy on `device` ('cpu', 'cuda' or 'cuda:N'), or this tensor itself (not a
   * copy) when it is already there. Queued like an op: ordered after whatever produces this
   * tensor, without blocking the JS thread. Ops never move tensors implicitly;
   * this is the one way between devices.
   */
  to(device: string): Tensor {
    const d = resolveDevice('to', device);
    handleOf('to', 'this', this);
    if ((d === 'cuda' ? 'cuda:0' : d) === this.device) return this;
    return wrap(native.to(this.handle, d));
  }
}

Object.defineProperty(Tensor.prototype, disposeSymbol, {
  value(this: Tensor) { this.dispose(); },
});

function view(dtype: DTypeName, buf: ArrayBuffer): TypedData {
  if (dtype === 'int32') return new Int32Array(buf);
  if (dtype === 'uint8') return new Uint8Array(buf);
  return new Float32Array(buf);
}

function nest(flat: number[], shape: readonly number[]): unknown {
  if (shape.length === 0) return flat[0];
  if (shape.length === 1) return flat;
  const [n, ...rest] = shape;
  const stride = rest.reduce((a, b) => a * b, 1);
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) out.push(nest(flat.slice(i * stride, (i + 1) * stride), rest));
  return out;
}

/** @internal Wraps a native handle returned by an op. */
export function wrap(h: NativeHandle): Tensor {
  return new Tensor(h, MADE_BY_WRAP);
}

let detachNext = false;

/**
 * @internal Wraps a handle for an owner that disposes it itself (or, if the owner is
 * collected first, frees the handle from its own finalizer): no tidy() scope owns the
 * tensor and no finalizer of its own watches it, which is what one costs per saved
 * tensor on the autograd tape.
 */
export function wrapDetached(h: NativeHandle): Tensor {
  detachNext = true;
  try {
    return new Tensor(h, MADE_BY_WRAP);
  } finally {
    detachNext = false;
  }
}

/** @internal The elements' bytes in row-major order and the tensor's own dtype (16-bit floats unwidened). */
export function readBytes(t: Tensor): Promise<ArrayBuffer> {
  handleOf('readBytes', 't', t);
  return native.handleRead(t.handle);
}

/** One read's limit: what one ArrayBuffer can hold (the native read's own check). */
const MAX_READ_BYTES = 2 ** 32;

/**
 * A 16-bit tensor's float32 copy, for reading. Its checks come first, in the read's
 * words: a disposed tensor would otherwise be reported by the cast, and a tensor
 * whose copy is too large to read would queue that copy before the read refused it.
 */
function widenForRead(op: string, t: Tensor): Tensor {
  if (t.disposed) throw new Error(`${op}: the Tensor has been disposed`);
  if (t.size * 4 > MAX_READ_BYTES)
    throw new RangeError(`${op}: the ${t.dtype} tensor [${t.shape.join(', ')}] is read as float32, ${t.size * 4} bytes, more than one ArrayBuffer can (${MAX_READ_BYTES}); read it in slices`);
  return L.cast(t, 'float32');
}

// Tensor's methods called on another object (Tensor.prototype.dispose.call({})).
function checkThis(op: string, v: unknown): void {
  if (!(v instanceof Tensor) || !Tensor[isBranded](v)) throw new TypeError(`${op}: argument 'this' must be a Tensor, got ${describe(v)}`);
}

/** @internal The handle of a Tensor argument, or a TypeError naming it. */
export function handleOf(op: string, name: string, v: unknown): NativeHandle {
  if (!(v instanceof Tensor) || !Tensor[isBranded](v))
    throw new TypeError(`${op}: argument '${name}' must be a Tensor, got ${describe(v)}`);
  if (v.disposed) throw new Error(`${op}: argument '${name}' is a disposed Tensor`);
  return v.handle;
}

/**
 * @internal Refuses a plain object in an optional positional Tensor slot (layerNorm's
 * weight, linear's bias), where an options object lands by mistake
 * (`layerNorm(x, { eps })`): the TypeError names the op the caller called and its
 * signature, not the op it is built on.
 */
export function notAnOptionsObject(op: string, name: string, v: unknown, signature: string): void {
  if (v !== null && typeof v === 'object' && !(v instanceof Tensor) && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype)
    throw new TypeError(`${op}: argument '${name}' must be a Tensor, null or undefined, got Object (an options object? the arguments are ${signature})`);
}

/** @internal Like handleOf, for optional arguments. */
export function optionalHandle(op: string, name: string, v: unknown): NativeHandle | null {
  return v === undefined || v === null ? null : handleOf(op, name, v);
}
