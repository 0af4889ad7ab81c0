// Module: the PyTorch nn.Module contract, so a checkpoint is a flat map from dotted
// attribute paths to tensors. Names are registered explicitly (TypeScript has no
// __setattr__ hook), which lets a TS field be camelCase while the registered name is
// the checkpoint's (HF's snake_case). A module owns one handle per parameter: loading
// takes a view that shares the caller's storage, so the caller still disposes what it
// passed in and no weight is copied.
import { Tensor } from '../tensor.js';
import { reshape, cast, assign as assignValues } from '../ops/layout.js';
import { uninitialized } from '../creation.js';
import { keep } from '../scope.js';
import { describe, isFloatDType, type FloatDTypeName } from '../dtype.js';
import { resolveDevice } from '../device.js';
import { noGrad } from '../autograd/tape.js';
import { knownKeys, optionKeys } from '../ops/args.js';

export interface LoadStateDictOptions {
  /** Missing or unexpected keys are an error (default true). A shape mismatch is always an error. */
  strict?: boolean;
  /**
   * Take the given tensors themselves (views of them; the caller may dispose its own)
   * instead of copies, where dtype and device already match: no second copy of the
   * weights in memory while loading. Only for tensors nothing else writes or reads as
   * its own afterwards (a checkpoint just read): an optimizer step on this module
   * would write through them, and an in-place write to them would change the module.
   * Default false: copies, as torch's load_state_dict.
   */
  assign?: boolean;
}

export interface ModuleToOptions {
  /** Casts every floating parameter and buffer (integer buffers keep their dtype). */
  dtype?: FloatDTypeName;
  /** Moves every parameter and buffer ('cpu', 'cuda', 'cuda:N'). */
  device?: string;
}

const LOAD_STATE_DICT_OPTIONS = optionKeys<LoadStateDictOptions>({ strict: true, assign: true });
const TO_OPTIONS = optionKeys<ModuleToOptions>({ dtype: true, device: true });

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

const MAX_LISTED = 20;

// Each tensor once, under its first name: an optimizer refuses a parameter given twice,
// and clipGradNorm or GradScaler.unscale would scale its gradient once per name.
function firstOfEach(entries: [string, Tensor][]): [string, Tensor][] {
  const seen = new Set<Tensor>();
  return entries.filter(([, t]) => {
    if (seen.has(t)) return false;
    seen.add(t);
    return true;
  });
}

// A plain object (not null, an array or a primitive).
function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function list(keys: string[]): string {
  const shown = keys.slice(0, MAX_LISTED).join(', ');
  return keys.length > MAX_LISTED ? `${shown}, ... (${keys.length - MAX_LISTED} more)` : shown;
}

export class Module {
  private readonly params = new Map<string, Tensor | null>();
  private readonly buffers = new Map<string, Tensor | null>();
  private readonly optionalOnLoad = new Set<string>();
  private readonly children = new Map<string, Module>();
  private isDisposed = false;
  /**
   * Training mode (dropout active, batch norm on batch statistics). Modules start in
   * evaluation mode, as HF's from_pretrained leaves them; train() and eval() set the
   * whole tree.
   */
  training = false;

  /** Sets training mode on this module and every descendant. Returns this. */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw new TypeError(`train: argument 'mode' must be a boolean, got ${describe(mode)}`);
    this.training = mode;
    for (const m of this.children.values()) m.train(mode);
    return this;
  }

  /** Evaluation mode for the whole tree (train(false)). */
  eval(): this {
    return this.train(false);
  }

  /** Registers a trainable tensor under name (null: declared but absent, like a Linear without bias). */
  protected registerParameter(name: string, value: Tensor | null): void {
    this.register(name, this.params, value);
  }

  /**
   * Registers a non-trainable tensor that is still part of the state dict (running
   * statistics). `optionalOnLoad`: a dict without it loads, strictly too, and leaves
   * the module's own value (BatchNorm's num_batches_tracked, as torch fills it in).
   */
  protected registerBuffer(name: string, value: Tensor | null, opts: { optionalOnLoad?: boolean } = {}): void {
    this.register(name, this.buffers, value);
    if (opts.optionalOnLoad === true) this.optionalOnLoad.add(name);
  }

  /** The keys of stateDict() that loadStateDict does not require (see registerBuffer's optionalOnLoad). */
  optionalStateKeys(): Set<string> {
    return new Set([...this.slots('')].filter(([, slot]) => slot.optional).map(([key]) => key));
  }

  /** Registers a child; its entries appear under `name.`. Returns the child for a typed field. */
  protected registerModule<M extends Module>(name: string, module: M): M {
    this.checkName(name);
    if (!(module instanceof Module)) throw new TypeError(`registerModule: '${name}' must be a Module, got ${describe(module)}`);
    // A module inside itself makes every walk of the tree (parameters(), to(), dispose()) endless.
    if (module.contains(this))
      throw new Error(`registerModule: '${name}' must not be this ${this.constructor.name} or a module that contains it (that would make a cycle), got ${describe(module)}`);
    this.children.set(name, module);
    return module;
  }

  // Whether m is this module or one of its descendants. A module may be shared by
  // several parents, so the same one can be met twice on the way.
  private contains(m: Module): boolean {
    const seen = new Set<Module>();
    const stack: Module[] = [this];
    while (stack.length) {
      const cur = stack.pop()!;
      if (cur === m) return true;
      if (seen.has(cur)) continue;
      seen.add(cur);
      stack.push(...cur.children.values());
    }
    return false;
  }

  private register(name: string, map: Map<string, Tensor | null>, value: Tensor | null): void {
    this.checkName(name);
    if (value !== null && !(value instanceof Tensor))
      throw new TypeError(`${this.constructor.name}: '${name}' must be a Tensor or null, got ${describe(value)}`);
    // Created inside someone's tidy() or not, a parameter lives as long as its module.
    if (value !== null) keep(value);
    map.set(name, value);
  }

  private checkName(name: string): void {
    if (typeof name !== 'string' || name === '' || name.includes('.'))
      throw new TypeError(`${this.constructor.name}: a registered name must be a non-empty string without '.', got ${describe(name)}`);
    if (this.params.has(name) || this.buffers.has(name) || this.children.has(name))
      throw new Error(`${this.constructor.name}: '${name}' is already registered`);
  }

  /** A parameter or buffer of this module (not of children); throws if absent. */
  protected tensor(name: string): Tensor {
    this.checkAlive();
    const t = this.params.get(name) ?? this.buffers.get(name);
    if (t === undefined || t === null) throw new Error(`${this.constructor.name}: no tensor '${name}'`);
    return t;
  }

  /** Like tensor(), but null when registered as absent. */
  protected optionalTensor(name: string): Tensor | null {
    this.checkAlive();
    return this.params.get(name) ?? this.buffers.get(name) ?? null;
  }

  private checkAlive(): void {
    if (this.isDisposed) throw new Error(`${this.constructor.name}: used after dispose()`);
  }

  /** Direct children in registration order. */
  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /**
   * [dotted name, tensor] for every parameter, depth first in registration order; one
   * reached by several paths (a module shared by two parents) once, under its first
   * name, as torch's named_parameters.
   */
  namedParameters(prefix = ''): [string, Tensor][] {
    if (typeof prefix !== 'string') throw new TypeError(`namedParameters: argument 'prefix' must be a string, got ${describe(prefix)}`);
    return firstOfEach(this.collect(prefix, 'params'));
  }

  /** Like namedParameters(), for the buffers. */
  namedBuffers(prefix = ''): [string, Tensor][] {
    if (typeof prefix !== 'string') throw new TypeError(`namedBuffers: argument 'prefix' must be a string, got ${describe(prefix)}`);
    return firstOfEach(this.collect(prefix, 'buffers'));
  }

  private collect(prefix: string, which: 'params' | 'buffers'): [string, Tensor][] {
    this.checkAlive();
    const out: [string, Tensor][] = [];
    for (const [n, t] of this[which]) if (t !== null) out.push([prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.collect(`${prefix}${n}.`, which));
    return out;
  }

  /**
   * Parameters and buffers by dotted name (HF keys such as
   * `perceiver.encoder.self_attends.0.attention.self.query.weight`). The tensors are
   * the module's own: do not dispose them; read or save them.
   */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    // As torch's state_dict: module by module, its parameters, its buffers, then its
    // children; every path, a shared module's under each of its names (loadStateDict
    // expects them all).
    const visit = (m: Module, prefix: string) => {
      m.checkAlive();
      for (const [n, t] of m.params) if (t !== null) out[prefix + n] = t;
      for (const [n, t] of m.buffers) if (t !== null) out[prefix + n] = t;
      for (const [n, c] of m.children) visit(c, `${prefix}${n}.`);
    };
    visit(this, '');
    return out;
  }

  /** Every parameter tensor (each once), depth first in registration order. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /**
   * Marks every parameter as a gradient leaf (or not): backward() then accumulates
   * into each parameter's .grad. Loading weights keeps the flag. Returns this.
   */
  requiresGrad_(flag = true): this {
    if (typeof flag !== 'boolean') throw new TypeError(`requiresGrad_: argument 'flag' must be a boolean, got ${describe(flag)}`);
    for (const t of this.parameters()) t.requiresGrad = flag;
    return this;
  }

  /** Drops every parameter's accumulated gradient. */
  zeroGrad(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.grad = null;
    }
  }

  /** Number of parameter elements (a shared parameter's once). */
  numParameters(): number {
    return this.namedParameters().reduce((n, [, t]) => n + t.size, 0);
  }

  /**
   * Replaces parameters and buffers with copies of the tensors of dict (same shapes; a
   * different dtype is cast, and another device copied, to the module's), so that
   * dict's tensors and the module never share memory (loading one model's state into
   * another and training it leaves the first alone); `assign: true` takes the tensors
   * themselves instead. The caller may dispose dict afterwards either way. Nothing
   * changes when an error is thrown.
   */
  loadStateDict(dict: Record<string, Tensor>, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    this.checkAlive();
    if (!isRecord(dict)) throw new TypeError(`loadStateDict: argument 'dict' must be an object of Tensors, got ${describe(dict)}`);
    if (!isRecord(opts)) throw new TypeError(`loadStateDict: argument 'opts' must be an object, got ${describe(opts)}`);
    knownKeys('loadStateDict', 'opts', opts, LOAD_STATE_DICT_OPTIONS);
    const strict = opts.strict ?? true;
    const assign = opts.assign ?? false;
    if (typeof strict !== 'boolean') throw new TypeError(`loadStateDict: option 'strict' must be a boolean, got ${describe(strict)}`);
    if (typeof assign !== 'boolean') throw new TypeError(`loadStateDict: option 'assign' must be a boolean, got ${describe(assign)}`);
    const slots = this.slots('');
    const missing: string[] = [];
    const misShaped: string[] = [];
    for (const [key, slot] of slots) {
      const src = dict[key];
      if (src === undefined) {
        if (!slot.optional) missing.push(key);
        continue;
      }
      if (!(src instanceof Tensor)) throw new TypeError(`loadStateDict: '${key}' must be a Tensor, got ${describe(src)}`);
      if (src.disposed) throw new Error(`loadStateDict: '${key}' is a disposed Tensor`);
      const cur = slot.map.get(slot.name)!;
      if (src.shape.length !== cur.shape.length || src.shape.some((d, i) => d !== cur.shape[i]))
        misShaped.push(`${key} (checkpoint [${src.shape.join(', ')}], model [${cur.shape.join(', ')}])`);
    }
    const unexpected = Object.keys(dict).filter((k) => !slots.has(k));
    const problems: string[] = [];
    if (misShaped.length) problems.push(`mis-shaped keys: ${list(misShaped)}`);
    if (strict && missing.length) problems.push(`missing keys: ${list(missing)}`);
    if (strict && unexpected.length) problems.push(`unexpected keys: ${list(unexpected)}`);
    if (problems.length) throw new Error(`loadStateDict (${this.constructor.name}): ${problems.join('; ')}`);

    // A replaced tensor that dict also holds is disposed after the last copy: it may be
    // the source of a later key (a shared module's own state dict names each of its
    // tensors twice). Others go at once, so a load never holds two copies of the weights.
    const sources = new Set(Object.values(dict));
    const replaced: Tensor[] = [];
    for (const [key, slot] of slots) {
      const src = dict[key];
      if (src === undefined) continue;
      const cur = slot.map.get(slot.name)!;
      // The module's device and dtype win, as torch's load_state_dict copies into the parameter.
      const next = keep(
        noGrad(() => {
          const placed = src.device === cur.device ? src : src.to(cur.device);
          // A move or a cast is a copy already; otherwise copy unless told to assign.
          let out: Tensor;
          if (placed.dtype !== cur.dtype) out = cast(placed, cur.dtype);
          else if (assign || placed !== src) out = reshape(placed, placed.shape);
          else {
            out = uninitialized(placed.shape, { dtype: placed.dtype, device: placed.device });
            assignValues(out, placed);
          }
          if (placed !== src) placed.dispose();
          return out;
        }),
      );
      next.requiresGrad = cur.requiresGrad;
      if (sources.has(cur)) replaced.push(cur);
      else cur.dispose();
      slot.map.set(slot.name, next);
    }
    for (const t of replaced) t.dispose();
    return { missingKeys: missing, unexpectedKeys: unexpected };
  }

  /**
   * Casts and/or moves every parameter and buffer in place, like torch's
   * module.to(): `to('bfloat16')`, `to('cuda')` or `to({ dtype, device })`. A
   * bfloat16/float16 model computes in that dtype (inputs are cast by its first
   * layers; see autocast.ts). Gradients are dropped and an optimizer built before
   * holds the old tensors: create it afterwards. Returns this.
   */
  to(target: FloatDTypeName | string | ModuleToOptions): this {
    this.checkAlive();
    const opts: ModuleToOptions =
      typeof target === 'string' ? (isFloatDType(target) ? { dtype: target } : { device: target }) : target;
    if (!isRecord(opts))
      throw new TypeError(`to: argument 'target' must be a dtype, a device or { dtype, device }, got ${describe(target)}`);
    knownKeys('to', 'target', opts, TO_OPTIONS);
    const { dtype } = opts;
    if (dtype !== undefined && !isFloatDType(dtype))
      throw new TypeError(`to: option 'dtype' must be 'float32', 'float16' or 'bfloat16', got ${describe(dtype)}`);
    const device = opts.device === undefined ? undefined : resolveDevice('to', opts.device);
    const canonical = device === 'cuda' ? 'cuda:0' : device;
    for (const [, slot] of this.slots('')) {
      const cur = slot.map.get(slot.name)!;
      const recast = dtype !== undefined && isFloatDType(cur.dtype) && cur.dtype !== dtype;
      const moved = canonical !== undefined && cur.device !== canonical;
      if (!recast && !moved) continue;
      const next = keep(
        noGrad(() => {
          const placed = moved ? cur.to(device!) : cur;
          if (!recast) return placed;
          const c = cast(placed, dtype);
          if (placed !== cur) placed.dispose();
          return c;
        }),
      );
      next.requiresGrad = cur.requiresGrad;
      cur.grad?.dispose();
      cur.dispose();
      slot.map.set(slot.name, next);
    }
    this.visit((m) => m.onTo(device));
    return this;
  }

  private visit(fn: (m: Module) => void): void {
    fn(this);
    for (const m of this.children.values()) m.visit(fn);
  }

  /**
   * Hook run after to() replaced the tensors (device: where they moved, undefined for a
   * cast only): modules that cache tensors derived from them, or create tensors on a
   * device of their own, drop or move those.
   */
  protected onTo(_device: string | undefined): void {}

  private slots(prefix: string): Map<string, { map: Map<string, Tensor | null>; name: string; optional: boolean }> {
    const out = new Map<string, { map: Map<string, Tensor | null>; name: string; optional: boolean }>();
    for (const map of [this.params, this.buffers])
      for (const [n, t] of map) if (t !== null) out.set(prefix + n, { map, name: n, optional: map === this.buffers && this.optionalOnLoad.has(n) });
    for (const [n, m] of this.children) for (const [k, v] of m.slots(`${prefix}${n}.`)) out.set(k, v);
    return out;
  }

  /** Releases every parameter and buffer (children included). Idempotent. */
  dispose(): void {
    if (this.isDisposed) return;
    for (const map of [this.params, this.buffers]) for (const t of map.values()) t?.dispose();
    for (const m of this.children.values()) m.dispose();
    this.onDispose();
    this.isDisposed = true;
  }

  /** Hook for modules that hold other resources (caches). */
  protected onDispose(): void {}

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Children named '0', '1', ... like torch.nn.ModuleList. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: readonly M[];

  constructor(modules: readonly M[]) {
    super();
    if (!Array.isArray(modules)) throw new TypeError(`ModuleList: argument 'modules' must be an array of Modules, got ${describe(modules)}`);
    this.items = modules.map((m, i) => this.registerModule(String(i), m));
  }

  get length(): number {
    return this.items.length;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/** Children by name, like torch.nn.ModuleDict (entries appear under `name.`). */
export class ModuleDict<M extends Module = Module> extends Module {
  readonly entries: ReadonlyMap<string, M>;

  constructor(modules: Record<string, M>) {
    super();
    if (!isRecord(modules)) throw new TypeError(`ModuleDict: argument 'modules' must be an object of Modules by name, got ${describe(modules)}`);
    const map = new Map<string, M>();
    for (const [k, m] of Object.entries(modules)) map.set(k, this.registerModule(k, m));
    this.entries = map;
  }

  get(name: string): M {
    if (typeof name !== 'string') throw new TypeError(`ModuleDict.get: argument 'name' must be a string, got ${describe(name)}`);
    const m = this.entries.get(name);
    if (m === undefined) throw new Error(`ModuleDict: no entry '${name}' (has ${[...this.entries.keys()].join(', ')})`);
    return m;
  }
}

/** Parameters by name, like torch.nn.ParameterDict (HF's per-modality padding vectors). */
export class ParameterDict extends Module {
  readonly names: readonly string[];

  constructor(params: Record<string, Tensor>) {
    super();
    if (!isRecord(params)) throw new TypeError(`ParameterDict: argument 'params' must be an object of Tensors by name, got ${describe(params)}`);
    for (const [k, t] of Object.entries(params)) this.registerParameter(k, t);
    this.names = Object.keys(params);
  }

  get(name: string): Tensor {
    if (typeof name !== 'string') throw new TypeError(`ParameterDict.get: argument 'name' must be a string, got ${describe(name)}`);
    return this.tensor(name);
  }
}
