// Optimizer: the state and bookkeeping every update rule shares (torch.optim's
// shape): parameter groups with their own hyper-parameters, per-parameter state
// tensors, a step counter, and a state dict that round-trips through safetensors.
// Updates run as engine ops under noGrad and write the parameters in place (the
// fused update ops of lib/ops/update.ts, or assign()), so a parameter keeps its
// identity (modules, caches and the user's references stay valid) and nothing is
// read back to JS.
import { Tensor } from '../tensor.js';
import { describe, isFloatDType } from '../dtype.js';
import { noGrad, sameShape } from '../autograd/tape.js';
import { keep, tidy } from '../scope.js';
import { zeros } from '../creation.js';
import { concat } from '../ops/layout.js';
import { knownKeys, optionKeys } from '../ops/args.js';

export interface ParamGroup {
  params: Tensor[];
  /** Names for the state dict (default 'p<group>.<index>'). */
  names?: string[];
  /** Learning rate of this group; default the optimizer's. */
  lr?: number;
  /** Decoupled weight decay of this group; default the optimizer's. */
  weightDecay?: number;
}

const GROUP_KEYS = optionKeys<ParamGroup>({ params: true, names: true, lr: true, weightDecay: true });

export interface ResolvedGroup {
  params: Tensor[];
  names: string[];
  lr: number;
  weightDecay: number;
}

/** What Optimizer.stateDict() returns and loadStateDict() takes. */
export interface OptimizerStateDict {
  tensors: Record<string, Tensor>;
  stepCount: number;
  /** Updates per parameter name; absent in states saved before they were kept. */
  steps?: Record<string, number>;
  groups?: { lr: number; weightDecay: number }[];
}

export abstract class Optimizer {
  readonly groups: ResolvedGroup[];
  /** Completed steps. */
  stepCount = 0;
  /** Per-parameter state tensors by parameter name, e.g. state.get(name).exp_avg. */
  protected readonly state = new Map<string, Record<string, Tensor>>();
  // Updates each parameter has had (torch's per-parameter state['step']): a parameter
  // that had no gradient for some steps starts its bias correction at its own first.
  private readonly steps = new Map<string, number>();
  private disposedFlag = false;

  constructor(op: string, params: Tensor[] | ParamGroup[], defaults: { lr: number; weightDecay: number }) {
    if (!Array.isArray(params) || params.length === 0)
      throw new TypeError(`${op}: argument 'params' must be a non-empty array of Tensors or parameter groups, got ${describe(params)}`);
    const groups: ParamGroup[] = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    checkRate(op, 'lr', defaults.lr);
    checkRate(op, 'weightDecay', defaults.weightDecay);
    const seen = new Set<Tensor>();
    const names = new Set<string>();
    this.groups = groups.map((g, gi) => {
      if (g === null || typeof g !== 'object' || !Array.isArray(g.params))
        throw new TypeError(`${op}: parameter group ${gi} must be { params: Tensor[], ... }, got ${describe(g)}`);
      // Only lr and weight decay vary by group here: another key (torch's groups also
      // take betas, eps or momentum) would be ignored and the optimizer's value used.
      knownKeys(op, `params[${gi}]`, g, GROUP_KEYS);
      g.params.forEach((p, i) => {
        if (!(p instanceof Tensor)) throw new TypeError(`${op}: group ${gi} param ${i} must be a Tensor, got ${describe(p)}`);
        if (p.dtype !== 'float32') throw new TypeError(`${op}: group ${gi} param ${i} must be float32 (master weights), got ${p.dtype}`);
        if (seen.has(p)) throw new Error(`${op}: a parameter appears twice (group ${gi} param ${i})`);
        seen.add(p);
      });
      if (g.names && g.names.length !== g.params.length)
        throw new RangeError(`${op}: group ${gi} has ${g.params.length} params but ${g.names.length} names`);
      const groupNames = g.names ?? g.params.map((_, i) => `p${gi}.${i}`);
      for (const n of groupNames) {
        if (names.has(n)) throw new Error(`${op}: parameter name '${n}' appears twice`);
        names.add(n);
      }
      const lr = g.lr ?? defaults.lr;
      const weightDecay = g.weightDecay ?? defaults.weightDecay;
      checkRate(op, `groups[${gi}].lr`, lr);
      checkRate(op, `groups[${gi}].weightDecay`, weightDecay);
      return { params: g.params, names: groupNames, lr, weightDecay };
    });
  }

  /** Sets every group's learning rate (schedules call this before step()). */
  setLearningRate(lr: number): void {
    checkRate('setLearningRate', 'lr', lr);
    for (const g of this.groups) g.lr = lr;
  }

  /** Applies one update from each parameter's .grad (parameters without one are skipped). */
  step(): void {
    if (this.disposedFlag) throw new Error(`${this.constructor.name}: step() after dispose()`);
    this.stepCount++;
    noGrad(() => {
      for (const g of this.groups)
        g.params.forEach((p, i) => {
          // Module.loadStateDict replaces (and disposes) parameter tensors: an optimizer
          // made before a load would silently train nothing.
          if (p.disposed)
            throw new Error(`${this.constructor.name}: parameter '${g.names[i]}' was disposed (replaced by loadStateDict?); create the optimizer after loading weights`);
          if (!p.grad) return;
          const n = (this.steps.get(g.names[i]) ?? 0) + 1;
          this.steps.set(g.names[i], n);
          tidy(() => this.update(p, p.grad!, this.slot(g.names[i], p), g, n));
        });
    });
  }

  /** Clears every parameter's gradient. */
  zeroGrad(): void {
    for (const g of this.groups)
      for (const p of g.params) {
        p.grad?.dispose();
        p.grad = null;
      }
  }

  /** State tensor names this rule keeps per parameter (e.g. ['exp_avg', 'exp_avg_sq']). */
  protected abstract stateNames(): string[];
  /**
   * Writes the update of p (and its state) in place; runs inside tidy and noGrad.
   * `step` counts p's own updates, this one included (1 on its first).
   */
  protected abstract update(p: Tensor, grad: Tensor, state: Record<string, Tensor>, group: ResolvedGroup, step: number): void;

  private slot(name: string, p: Tensor): Record<string, Tensor> {
    let s = this.state.get(name);
    if (!s) {
      s = {};
      for (const k of this.stateNames()) s[k] = keep(zeros([...p.shape], { device: p.device }));
      this.state.set(name, s);
    }
    return s;
  }

  /**
   * The state as flat tensors: `<param name>.<state name>` (the optimizer's own
   * tensors: read or save them, do not dispose), plus the step counts (the
   * optimizer's, and each parameter's own updates) and rates.
   */
  stateDict(): OptimizerStateDict & { steps: Record<string, number>; groups: { lr: number; weightDecay: number }[] } {
    const tensors: Record<string, Tensor> = {};
    for (const [name, s] of this.state) for (const [k, t] of Object.entries(s)) tensors[`${name}.${k}`] = t;
    return {
      tensors,
      stepCount: this.stepCount,
      steps: Object.fromEntries(this.steps),
      groups: this.groups.map((g) => ({ lr: g.lr, weightDecay: g.weightDecay })),
    };
  }

  /**
   * Restores a stateDict() (the caller keeps and disposes what it passed). Without
   * `steps` (a state saved before they were kept), every parameter that has state is
   * taken to have had stepCount updates.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const op = `${this.constructor.name}.loadStateDict`;
    if (sd === null || typeof sd !== 'object' || Array.isArray(sd)) throw new TypeError(`${op}: argument must be a stateDict() object, got ${describe(sd)}`);
    if (sd.tensors === null || typeof sd.tensors !== 'object' || Array.isArray(sd.tensors))
      throw new TypeError(`${op}: 'tensors' must be an object of Tensors by name, got ${describe(sd.tensors)}`);
    if (!Number.isSafeInteger(sd.stepCount) || sd.stepCount < 0) throw new TypeError(`${op}: 'stepCount' must be a non-negative integer, got ${describe(sd.stepCount)}`);
    if (sd.steps !== undefined && (sd.steps === null || typeof sd.steps !== 'object' || Array.isArray(sd.steps)))
      throw new TypeError(`${op}: 'steps' must be an object of parameter name to update count, got ${describe(sd.steps)}`);
    if (sd.groups !== undefined) {
      if (!Array.isArray(sd.groups)) throw new TypeError(`${op}: 'groups' must be an array of { lr, weightDecay }, got ${describe(sd.groups)}`);
      if (sd.groups.length !== this.groups.length) throw new RangeError(`${op}: ${sd.groups.length} groups, the optimizer has ${this.groups.length}`);
      sd.groups.forEach((g: unknown, i) => {
        if (g === null || typeof g !== 'object' || Array.isArray(g)) throw new TypeError(`${op}: 'groups[${i}]' must be { lr, weightDecay }, got ${describe(g)}`);
        // The constructor's rules: a state dict must not set what the constructor refuses.
        checkRate(op, `groups[${i}].lr`, (g as { lr?: unknown }).lr);
        checkRate(op, `groups[${i}].weightDecay`, (g as { weightDecay?: unknown }).weightDecay);
      });
    }
    const byName = new Map<string, Tensor>();
    for (const g of this.groups) g.params.forEach((p, i) => byName.set(g.names[i], p));
    const problems: string[] = [];
    // '<param name>.<state name>'; parameter names contain dots, state names do not.
    const entries = Object.entries(sd.tensors).map(([key, t]) => {
      const dot = key.lastIndexOf('.');
      return { key, t, name: key.slice(0, dot), k: key.slice(dot + 1), p: byName.get(key.slice(0, dot)) };
    });
    for (const { key, t, k, p } of entries) {
      if (!p || !this.stateNames().includes(k)) problems.push(`unexpected '${key}'`);
      else if (!(t instanceof Tensor) || t.disposed || !isFloatDType(t.dtype) || !sameShape(t.shape, p.shape))
        problems.push(`'${key}' must be a floating Tensor of shape [${p.shape.join(', ')}], got ${t instanceof Tensor ? (t.disposed ? 'a disposed Tensor' : `${t.dtype} [${t.shape.join(', ')}]`) : describe(t)}`);
    }
    for (const [name, n] of Object.entries(sd.steps ?? {})) {
      if (!byName.has(name)) problems.push(`steps: unexpected '${name}'`);
      else if (!Number.isInteger(n) || n < 0 || n > sd.stepCount) problems.push(`steps: '${name}' must be an integer in [0, ${sd.stepCount}], got ${describe(n)}`);
    }
    if (problems.length) throw new Error(`${op}: ${problems.join('; ')}`);
    // Copies on the parameters' devices, as the optimizer makes its own state there.
    const next = new Map<string, Record<string, Tensor>>();
    const disposeNext = () => {
      for (const s of next.values()) for (const t of Object.values(s)) t.dispose();
    };
    try {
      for (const { t, name, k, p } of entries) {
        const s = next.get(name) ?? {};
        s[k] = keep(noGrad(() => tidy(() => t.to(p!.device).cast('float32').contiguous().add(0))));
        next.set(name, s);
      }
      this.checkNonNegative(op, next);
    } catch (e) {
      disposeNext();
      throw e;
    }
    for (const s of this.state.values()) for (const t of Object.values(s)) t.dispose();
    this.state.clear();
    for (const [k, v] of next) this.state.set(k, v);
    this.stepCount = sd.stepCount;
    this.steps.clear();
    if (sd.steps) for (const [name, n] of Object.entries(sd.steps)) this.steps.set(name, n);
    else for (const name of next.keys()) this.steps.set(name, sd.stepCount);
    sd.groups?.forEach((g, i) => {
      this.groups[i].lr = g.lr;
      this.groups[i].weightDecay = g.weightDecay;
    });
  }

  /** State names whose values the update rule takes the square root of (Adam's second moments): never negative or NaN. */
  protected nonNegativeStateNames(): string[] {
    return [];
  }

  // One minimum per tensor, computed by the engine and read back together (per
  // device): a wait or two, and no pass over the elements in JS.
  private checkNonNegative(op: string, state: Map<string, Record<string, Tensor>>): void {
    const names = this.nonNegativeStateNames();
    const byDevice = new Map<string, [string, Tensor][]>();
    for (const [name, s] of state)
      for (const k of names) {
        const t = s[k];
        if (!t || t.size === 0) continue;
        const list = byDevice.get(t.device) ?? [];
        list.push([`${name}.${k}`, t]);
        byDevice.set(t.device, list);
      }
    const bad: string[] = [];
    for (const list of byDevice.values()) {
      const mins = noGrad(() => tidy(() => concat(list.map(([, t]) => t.reshape([t.size]).min(0, { keepdim: true })), 0).dataSync()));
      list.forEach(([key], i) => {
        if (!(mins[i] >= 0)) bad.push(`'${key}' (min ${mins[i]})`);
      });
    }
    if (bad.length) throw new RangeError(`${op}: ${bad.join(', ')} must not hold negative or NaN values`);
  }

  /** Frees the state tensors (not the parameters). */
  dispose(): void {
    for (const s of this.state.values()) for (const t of Object.values(s)) t.dispose();
    this.state.clear();
    this.disposedFlag = true;
  }
}

export function checkRate(op: string, name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`${op}: '${name}' must be a finite number >= 0, got ${describe(v)}`);
}

export function checkUnit(op: string, name: string, v: unknown, inclusiveZero = true): void {
  if (typeof v !== 'number' || !(inclusiveZero ? v >= 0 : v > 0) || !(v < 1)) throw new RangeError(`${op}: '${name}' must be in ${inclusiveZero ? '[0' : '(0'}, 1), got ${describe(v)}`);
}
