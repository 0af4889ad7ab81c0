// Reverse-mode autograd on a tape of GradNodes. An op whose inputs require gradients
// records one node: edges to the nodes (or leaf tensors) its inputs came from, the
// tensors its backward formula needs, and the formula. Nodes point at nodes, never at
// the op's input Tensors, so tidy() may dispose intermediates as usual: what backward
// needs is held by the node's own aliases (saved views of the same storage), released
// as soon as backward has used them.
import { native, type NativeHandle } from '../native.js';
import { Tensor, wrap, wrapDetached } from '../tensor.js';
import { keep, tidy } from '../scope.js';
import { scope as profilerScope } from '../profiler.js';
import type { DTypeName } from '../dtype.js';
import { optionKeys, options } from '../ops/args.js';

/**
 * The gradient summed so far where an input's gradient goes (the pending gradient of
 * the node that produced the input, or a leaf's .grad). A formula that takes it for
 * input i returns that sum plus its own gradient for input i, formed in one op (a
 * product with the sum as its addend): a weight the latent blocks share, or a residual
 * with two branches, then costs no separate addition (866 of them, 5.6 ms, in the
 * profile of a bf16 ImageNet training step on an H200).
 */
export interface Accumulated {
  /**
   * The sum so far for input i, when it has this shape and dtype (on the gradient's
   * device) and no other input of this op sends its gradient to the same place
   * (x * x); else null. A taken sum must not be returned for any other input.
   */
  take(i: number, shape: readonly number[], dtype: DTypeName): Tensor | null;
}

/**
 * A backward formula: the output's gradient g and the saved tensors -> one gradient per
 * input (or null). needs[i] is false where input i takes no gradient, so a formula
 * may skip that work (a convolution's image input, for one). acc: see Accumulated.
 */
export type BackwardFn = (g: Tensor, saved: Tensor[], needs: boolean[], acc: Accumulated) => (Tensor | null)[];

/** Where a gradient goes: another node, a leaf tensor (its .grad), or nowhere. */
export type Edge = { node: GradNode } | { leaf: Tensor } | null;

// The saved tensors of a node collected before its backward ran (a graph dropped
// without backward()): one registration per node, not one per saved tensor.
const unreleasedNodes = new FinalizationRegistry<NativeHandle[]>((handles) => {
  for (const h of handles) native.handleDispose(h);
});

export class GradNode {
  /** The op that recorded it, for error messages. */
  readonly name: string;
  readonly edges: Edge[];
  /** The output's shape and dtype: backward's incoming gradient has these. */
  readonly shape: readonly number[];
  private saved: Tensor[];
  // Each saved tensor's storage version when the forward read it (Storage::version).
  private readonly versions: number[];
  private fn: BackwardFn | null;
  /**
   * Throws when this node's gradient cannot be formed (what the op knew at its
   * forward); backward runs every node's before it sums any gradient.
   */
  precheck: (() => void) | null = null;

  constructor(name: string, edges: Edge[], shape: readonly number[], saved: Tensor[], fn: BackwardFn) {
    this.name = name;
    this.edges = edges;
    this.shape = shape;
    this.saved = saved;
    this.versions = saved.map((t) => native.handleVersion(t.handle));
    this.fn = fn;
    if (saved.length) unreleasedNodes.register(this, saved.map((t) => t.handle), this);
  }

  /** Gradients for each input edge (null where an input takes none). */
  apply(g: Tensor, acc: Accumulated): (Tensor | null)[] {
    if (!this.fn) throw new Error(`backward: the graph through '${this.name}' was already used by a backward() (pass { retainGraph: true } to backward twice)`);
    // The formula would read the new values: a gradient of some other function.
    this.saved.forEach((t, i) => {
      if (native.handleVersion(t.handle) !== this.versions[i])
        throw new Error(
          `backward: a tensor that '${this.name}' saved for its gradient (shape [${t.shape.join(', ')}]) was written in place (assign(), an optimizer step) after the forward read it; step the optimizer after backward(), or recompute the forward`,
        );
    });
    return this.fn(g, this.saved, this.edges.map((e) => e !== null), acc);
  }

  /** Frees what the formula kept; the node can no longer run. */
  release(): void {
    if (this.saved.length) unreleasedNodes.unregister(this);
    for (const t of this.saved) t.dispose();
    this.saved = [];
    this.fn = null;
  }
}

/** An Accumulated that never gives a sum (a formula's parts called from elsewhere). */
export const NOTHING_ACCUMULATED: Accumulated = { take: () => null };

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether backward lets formulas fold the gradients already accumulated into their
 * own ops (Accumulated). false (or PERCEIVER_GRAD_FOLD=0 at startup) adds each
 * contribution separately, as before: the same gradients up to rounding, for
 * measuring what folding saves and for bisecting a numerical difference.
 */
export const gradFold = { enabled: switchFromEnv('PERCEIVER_GRAD_FOLD', true) };

/** A 0/1 switch from the environment; anything else is ignored with a warning (as the engine's variables), not read as on. */
function switchFromEnv(name: string, byDefault: boolean): boolean {
  const v = process.env[name];
  if (v === undefined || v === '') return byDefault;
  if (v === '0' || v === '1') return v === '1';
  process.stderr.write(`perceiver-io: ignoring ${name}=${v} (0 or 1)\n`);
  return byDefault;
}

let gradEnabled = true;

/** Whether ops record gradient nodes now (see noGrad). */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording gradients (inference, optimizer updates). fn must be synchronous. */
export function noGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError(`noGrad: argument 'fn' must be a function, got ${typeof fn}`);
  const prev = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } finally {
    gradEnabled = prev;
  }
  // The switch is one global, back on once fn returns: whatever an async fn does
  // after its first await would record gradients after all.
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    // Its rejection is this error's business; left unhandled it would end the process later.
    (result as unknown as PromiseLike<unknown>).then(undefined, () => undefined);
    throw new TypeError("noGrad: argument 'fn' must be synchronous; it returned a Promise (what runs after an await inside it would record gradients again)");
  }
  return result;
}

function edgeOf(t: Tensor | null | undefined): Edge {
  if (!t) return null;
  if (t.gradFn) return { node: t.gradFn };
  if (t.requiresGrad) return { leaf: t };
  return null;
}

/** Whether an op on these inputs must record a node. */
export function needsGrad(...inputs: (Tensor | number | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t instanceof Tensor && (t.gradFn !== null || t.requiresGrad)) return true;
  return false;
}

/** A second handle on t's storage that no tidy() scope owns: what a node keeps, and frees (release(), or its finalizer). */
export function alias(t: Tensor): Tensor {
  return wrapDetached(native.handleClone(t.handle));
}

/**
 * Records that `out` = op(inputs): backward(g, saved) returns one gradient per input
 * (shaped like that input, or null). `save` lists tensors the formula reads; they are
 * aliased here, so the caller may dispose its own handles. Returns out.
 */
export function record(
  name: string,
  out: Tensor,
  inputs: (Tensor | null | undefined)[],
  save: Tensor[],
  backward: BackwardFn,
): Tensor {
  const edges = inputs.map(edgeOf);
  if (edges.every((e) => e === null)) return out;
  out.gradFn = new GradNode(name, edges, out.shape, save.map(alias), backward);
  return out;
}

export interface BackwardOptions {
  /** d(root)/d(root); default ones (root must then be a scalar: shape [] or one element). */
  gradient?: Tensor;
  /** Keep the graph's saved tensors, to call backward through it again. */
  retainGraph?: boolean;
}

const BACKWARD_OPTIONS = optionKeys<BackwardOptions>({ gradient: true, retainGraph: true });

/**
 * Accumulates d(root)/d(leaf) into every reachable leaf's .grad (a leaf is a tensor
 * with requiresGrad set by the user, e.g. a parameter). Returns when every gradient
 * is queued; read them with await leaf.grad.data() as usual.
 */
export function backward(root: Tensor, opts?: BackwardOptions): void {
  if (!(root instanceof Tensor)) throw new TypeError(`backward: argument 'root' must be a Tensor`);
  if (root.disposed) throw new Error(`backward: argument 'root' is a disposed Tensor`);
  const o = options('backward', opts, BACKWARD_OPTIONS);
  if (!root.gradFn && !root.requiresGrad)
    throw new Error(`backward: the tensor does not require gradients (no parameter it depends on has requiresGrad set, or it was computed under noGrad)`);
  const seed = o.gradient;
  if (seed !== undefined) {
    if (!(seed instanceof Tensor)) throw new TypeError(`backward: option 'gradient' must be a Tensor`);
    if (seed.disposed) throw new Error(`backward: option 'gradient' is a disposed Tensor`);
    if (seed.shape.join(',') !== root.shape.join(','))
      throw new RangeError(`backward: option 'gradient' must have the root's shape [${root.shape.join(', ')}], got [${seed.shape.join(', ')}]`);
    // The seed becomes the root's gradient: a gradient of another dtype or device would
    // meet the graph's own at the first sum.
    if (seed.dtype !== root.dtype || seed.device !== root.device)
      throw new TypeError(`backward: option 'gradient' must be ${root.dtype} on ${root.device} as the root is, got ${seed.dtype} on ${seed.device}`);
  } else if (root.size !== 1) {
    throw new RangeError(`backward: the root must be a scalar (one element) unless option 'gradient' is given, got shape [${root.shape.join(', ')}]`);
  }
  const retain = o.retainGraph ?? false;
  profilerScope('backward', () => noGrad(() => tidy(() => backwardPass(root, seed, retain))));
}

function backwardPass(root: Tensor, seed: Tensor | undefined, retain: boolean): void {
  // Storages a new .grad must not share: the caller's seed, and each .grad this pass
  // hands out (a formula passes g through, or one tensor to several inputs), with the
  // tensor that holds each. A storage id is an address, which the allocator hands out
  // again once that storage is freed: an entry whose tensor is disposed (a .grad
  // replaced by a later sum) claims nothing.
  const claimed: Claimed = new Map();
  if (seed) claimed.set(native.handleStorageId(seed.handle), seed);
  // An alias: the loop disposes gradients once used, never the caller's tensor.
  if (!root.gradFn) {
    checkLeafGrad(root);
    accumulate(root, seed ? view(seed) : onesLike(root), false, claimed);
    return;
  }
  // Topological order by depth-first search.
  const order: GradNode[] = [];
  const visited = new Set<GradNode>();
  const stack: [GradNode, number][] = [[root.gradFn, 0]];
  visited.add(root.gradFn);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.edges.length) {
      top[1]++;
      const e = node.edges[i];
      if (e && 'node' in e && !visited.has(e.node)) {
        visited.add(e.node);
        stack.push([e.node, 0]);
      }
    } else {
      order.push(node);
      stack.pop();
    }
  }
  // Before any gradient is summed, so a bad .grad leaves every leaf as it was.
  for (const node of order) {
    node.precheck?.();
    for (const e of node.edges) if (e && 'leaf' in e) checkLeafGrad(e.leaf);
  }
  const g0 = seed ? view(seed) : onesLike(root);
  const grads = new Map<GradNode, Tensor>([[root.gradFn, g0]]);
  // Reverse post-order: every consumer of a node runs before it.
  for (let n = order.length - 1; n >= 0; n--) {
    const node = order[n];
    const g = grads.get(node);
    grads.delete(node);
    if (!g) {
      if (!retain) node.release();
      continue;
    }
    const acc = new NodeAccumulated(node.edges, grads, g.device);
    // Per node, so a formula's temporaries are freed before the next node runs; under a
    // profile its ops count in the node's scope.
    const inputGrads = profilerScope(node.name, () => tidy(() => node.apply(g, acc)));
    if (!inputGrads.includes(g)) g.dispose();
    if (!retain) node.release();
    // A formula may pass one tensor to several inputs (or pass g through); each
    // destination gets its own handle, since each is disposed on its own. Every
    // handle is disposed as soon as it is summed, so a weight used many times (the
    // latent blocks share theirs) holds one gradient, not one per use.
    // (A node has a handful of edges: arrays, not Sets.)
    const routed: Tensor[] = [];
    const deliveries: [NonNullable<Edge>, Tensor, Tensor | null][] = [];
    for (let i = 0; i < node.edges.length; i++) {
      const e = node.edges[i];
      let gi = inputGrads[i];
      if (!e || !gi) continue;
      const folded = acc.taken[i];
      if (folded && (gi === folded || inputGrads.some((o, j) => j !== i && (o === gi || o === folded))))
        throw new Error(`backward: internal error: '${node.name}' returned the sum it took for input ${i} as is, or for another input`);
      if (routed.includes(gi)) gi = view(gi);
      routed.push(gi);
      deliveries.push([e, gi, folded]);
    }
    for (const t of inputGrads) if (t && !routed.includes(t)) t.dispose();
    for (const [e, gi, folded] of deliveries) {
      if ('leaf' in e) {
        // As torch's AccumulateGrad: a leaf whose requiresGrad was cleared after the
        // forward recorded its edge takes no gradient.
        if (e.leaf.requiresGrad) accumulate(e.leaf, gi, folded !== null, claimed);
        gi.dispose();
      } else {
        const prev = grads.get(e.node);
        if (prev && !folded) {
          grads.set(e.node, addGrads(prev, gi));
          gi.dispose();
        } else grads.set(e.node, gi);
        prev?.dispose();
      }
    }
  }
}

/** Accumulated for one node's formula: which sums it took, per input. */
class NodeAccumulated implements Accumulated {
  readonly taken: (Tensor | null)[];
  constructor(
    private readonly edges: readonly Edge[],
    private readonly grads: Map<GradNode, Tensor>,
    private readonly device: string,
  ) {
    this.taken = edges.map(() => null);
  }

  take(i: number, shape: readonly number[], dtype: DTypeName): Tensor | null {
    const e = this.edges[i];
    // (Not the .grad of a leaf that no longer requires one: backward leaves it alone.)
    if (!e || this.taken[i] || !gradFold.enabled || ('leaf' in e && !e.leaf.requiresGrad)) return null;
    for (let j = 0; j < this.edges.length; j++) {
      const o = this.edges[j];
      if (j !== i && o && ('leaf' in e ? 'leaf' in o && o.leaf === e.leaf : 'node' in o && o.node === e.node)) return null;
    }
    const prev = 'leaf' in e ? e.leaf.grad : this.grads.get(e.node);
    if (!prev || prev.disposed || prev.dtype !== dtype || prev.device !== this.device || !sameShape(prev.shape, shape)) return null;
    this.taken[i] = prev;
    return prev;
  }
}

/** A second handle on t's storage (owned by the current tidy() scope). */
function view(t: Tensor): Tensor {
  return wrap(native.handleClone(t.handle));
}

function onesLike(t: Tensor): Tensor {
  return wrap(native.full([...t.shape], 1, t.dtype, t.device));
}

/** a + b as a new tensor (gradients are summed, never updated in place). */
function addGrads(a: Tensor, b: Tensor): Tensor {
  return wrap(native.binary('add', a.handle, b.handle));
}

// The .grad setter checks what is set; disposing it afterwards is the one way it can
// go bad, and summing into it would fail with the engine's message about 'add'.
function checkLeafGrad(leaf: Tensor): void {
  if (leaf.grad?.disposed)
    throw new Error(`backward: the .grad of a leaf of shape [${leaf.shape.join(', ')}] is a disposed Tensor; set .grad = null (or zeroGrad()) rather than disposing it`);
}

/** Storage id -> the tensor whose storage it is (backwardPass's claimed). */
type Claimed = Map<number, Tensor>;

/** folded: g already holds the leaf's .grad (Accumulated) and replaces it. */
function accumulate(leaf: Tensor, g: Tensor, folded: boolean, claimed: Claimed): void {
  if (!sameShape(g.shape, leaf.shape))
    throw new Error(`backward: internal error: gradient of shape [${g.shape.join(', ')}] for a leaf of shape [${leaf.shape.join(', ')}]`);
  let sum = leaf.grad && !folded ? addGrads(leaf.grad, g) : wrap(native.contiguous(g.handle));
  // As torch's AccumulateGrad, which steals a gradient only when nothing else holds it:
  // a .grad never shares memory with the seed or another leaf's .grad, so writing one
  // (assign, zeroing) changes nothing else. Only such shared gradients are copied.
  let id = native.handleStorageId(sum.handle);
  const holder = claimed.get(id);
  // (The leaf's own .grad's storage is its own: a folded sum may land there.)
  if (holder && !holder.disposed && !(leaf.grad && native.handleStorageId(leaf.grad.handle) === id)) {
    const copy = wrap(native.empty([...sum.shape], sum.dtype, sum.device));
    native.assign(copy.handle, sum.handle);
    sum.dispose();
    sum = copy;
    id = native.handleStorageId(sum.handle);
  }
  claimed.set(id, sum);
  leaf.grad?.dispose();
  leaf.grad = keep(sum);
}
