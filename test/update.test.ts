// lib/ops/update: the fused optimizer updates. Each must equal, within float32
// rounding, the rule composed of elementwise engine ops (the form the optimizers used
// before: kept here as the reference), write in place in queue order, handle strided
// and aliased operands, and refuse bad arguments with a clear error.
import test from 'ava';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { assertClose, randomArray } from './helpers/reference.js';

interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

// ---- the composed references: one engine op per arithmetic step -----------------------

function composedAdamDirection(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: Hyper): Tensor {
  const m2 = m.mul(h.beta1).add(g.mul(1 - h.beta1));
  const v2 = v.mul(h.beta2).add(g.square().mul(1 - h.beta2));
  P.assign(m, m2);
  P.assign(v, v2);
  const mhat = m2.mul(1 / (1 - h.beta1 ** h.step));
  const vhat = v2.mul(1 / (1 - h.beta2 ** h.step));
  let u = mhat.div(vhat.sqrt().add(h.eps));
  if (h.weightDecay > 0) u = u.add(p.mul(h.weightDecay));
  return u;
}

function composedAdamW(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: Hyper): void {
  P.tidy(() => P.assign(p, p.sub(composedAdamDirection(p, g, m, v, h).mul(h.lr))));
}

function composedLamb(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: Hyper): void {
  P.tidy(() => {
    const u = composedAdamDirection(p, g, m, v, h);
    const pn = P.optim.norm(p);
    const un = P.optim.norm(u);
    const both = P.greater(pn, 0).cast('float32').mul(P.greater(un, 0).cast('float32'));
    const trust = both.mul(pn.div(un.add(both.scale(-1, 1)))).add(both.scale(-1, 1));
    P.assign(p, p.sub(u.mul(trust).mul(h.lr)));
  });
}

function composedSgd(p: Tensor, g: Tensor, buf: Tensor | null, o: { lr: number; momentum: number; weightDecay: number; nesterov: boolean }): void {
  P.tidy(() => {
    let d = g;
    if (o.momentum > 0 && buf) {
      const b = buf.mul(o.momentum).add(g);
      P.assign(buf, b);
      d = o.nesterov ? g.add(b.mul(o.momentum)) : b;
    }
    let next = p.sub(d.mul(o.lr));
    if (o.weightDecay > 0) next = next.sub(p.mul(o.lr * o.weightDecay));
    P.assign(p, next);
  });
}

const vals = async (ts: Tensor[]) => Promise.all(ts.map(async (x) => Float32Array.from((await x.data()) as Float32Array)));
const make = (n: number, seed: number, shape = [n]) => P.tensor(randomArray(n, seed), shape);

// Runs `steps` of the fused and the composed update from the same start; returns both
// final states [p, ...state].
async function twin(
  n: number,
  shape: number[],
  states: number,
  steps: number,
  fused: (p: Tensor, g: Tensor, s: Tensor[], step: number) => void,
  composed: (p: Tensor, g: Tensor, s: Tensor[], step: number) => void,
  zeroParam = false,
): Promise<[Float32Array[], Float32Array[]]> {
  const out: Float32Array[][] = [];
  for (const rule of [fused, composed]) {
    const p = zeroParam ? P.zeros(shape) : make(n, 1, shape);
    const s = Array.from({ length: states }, () => P.zeros(shape));
    for (let step = 1; step <= steps; step++) {
      const g = make(n, 10 + step, shape);
      rule(p, g, s, step);
      g.dispose();
    }
    out.push(await vals([p, ...s]));
    for (const x of [p, ...s]) x.dispose();
  }
  return [out[0], out[1]];
}

const names = ['param', 'exp_avg', 'exp_avg_sq'];

test('adamUpdate equals the composed AdamW rule (with and without weight decay) over several steps', async (t) => {
  for (const [n, shape] of [[37, [37]], [35, [5, 7]], [70001, [70001]]] as [number, number[]][])
    for (const weightDecay of [0, 0.05]) {
      const h = (step: number): Hyper => ({ lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, step });
      const [f, c] = await twin(
        n, shape, 2, 3,
        (p, g, [m, v], step) => P.adamUpdate(p, g, m, v, h(step)),
        (p, g, [m, v], step) => composedAdamW(p, g, m, v, h(step)),
      );
      f.forEach((x, i) => assertClose(t, x, c[i], { rtol: 1e-6, atol: 1e-9, msg: `${names[i]} n=${n} wd=${weightDecay}` }));
    }
});

test('lambUpdate equals the composed LAMB rule: trust ratio ||p|| / ||u||, 1 for a zero parameter', async (t) => {
  for (const [n, zero] of [[37, false], [37, true], [70001, false]] as [number, boolean][]) {
    const h = (step: number): Hyper => ({ lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.1, step });
    const [f, c] = await twin(
      n, [n], 2, 3,
      (p, g, [m, v], step) => P.lambUpdate(p, g, m, v, h(step)),
      (p, g, [m, v], step) => composedLamb(p, g, m, v, h(step)),
      zero,
    );
    // The norms are summed in another order than the composed reduction, so the trust
    // ratio may differ in its last bit: parameters O(1) agree to a float32 rounding of 1.
    f.forEach((x, i) => assertClose(t, x, c[i], { rtol: 2e-6, atol: i === 0 ? 2e-7 : 1e-9, msg: `${names[i]} n=${n} zero=${zero}` }));
  }
});

test('sgdUpdate equals the composed SGD rule: plain, momentum, Nesterov, decoupled weight decay', async (t) => {
  for (const n of [37, 70001])
    for (const [momentum, nesterov, weightDecay] of [[0, false, 0], [0, false, 0.01], [0.9, false, 0], [0.9, true, 0.01]] as [number, boolean, number][]) {
      const o = { lr: 0.1, momentum, weightDecay, nesterov };
      const [f, c] = await twin(
        n, [n], 1, 3,
        (p, g, [b]) => P.sgdUpdate(p, g, momentum > 0 ? b : null, o),
        (p, g, [b]) => composedSgd(p, g, b, o),
      );
      f.forEach((x, i) => assertClose(t, x, c[i], { rtol: 1e-6, atol: 1e-9, msg: `${['param', 'buf'][i]} n=${n} ${JSON.stringify(o)}` }));
    }
});

test('a large LAMB update is deterministic: the same bits on every run', async (t) => {
  const runs: Float32Array[][] = [];
  for (let r = 0; r < 2; r++) {
    const p = make(100003, 3);
    const g = make(100003, 4);
    const [m, v] = [P.zeros([100003]), P.zeros([100003])];
    P.lambUpdate(p, g, m, v, { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.01, step: 1 });
    runs.push(await vals([p, m, v]));
    for (const x of [p, g, m, v]) x.dispose();
  }
  runs[0].forEach((x, i) => t.deepEqual(x, runs[1][i], names[i]));
});

test('updates run in queue order: ops queued before read the old values, ops queued after the new ones', async (t) => {
  const p = P.tensor(new Float32Array([1, 2, 3]), [3]);
  const g = P.tensor(new Float32Array([1, 1, 1]), [3]);
  const before = p.mul(1);
  P.sgdUpdate(p, g, null, { lr: 0.5 });
  const after = p.mul(1);
  t.deepEqual(Array.from(await before.data()), [1, 2, 3]);
  t.deepEqual(Array.from(await after.data()), [0.5, 1.5, 2.5]);
  for (const x of [p, g, before, after]) x.dispose();
});

test('a strided parameter (a transposed view) is updated in place through its view', async (t) => {
  const base = make(12, 5, [3, 4]);
  const dense = P.contiguous(P.transpose(base)).add(0); // [4, 3], its own memory
  const view = P.transpose(base); // [4, 3], strided into base
  const g = make(12, 6, [4, 3]);
  const [m1, v1, m2, v2] = [0, 1, 2, 3].map(() => P.zeros([4, 3]));
  const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 };
  P.adamUpdate(dense, g, m1, v1, h);
  P.adamUpdate(view, g, m2, v2, h);
  t.deepEqual(Array.from(await P.contiguous(P.transpose(base)).data()), Array.from(await dense.data()), 'base holds the update');
  t.deepEqual(Array.from(await m2.data()), Array.from(await m1.data()));
  for (const x of [base, dense, view, g, m1, v1, m2, v2]) x.dispose();
});

test('a gradient that aliases the parameter gives the same result as a separate copy', async (t) => {
  const a = make(9, 7);
  const b = make(9, 7);
  const bg = b.add(0);
  P.sgdUpdate(a, a, null, { lr: 0.25, weightDecay: 0.1 });
  P.sgdUpdate(b, bg, null, { lr: 0.25, weightDecay: 0.1 });
  t.deepEqual(Array.from(await a.data()), Array.from(await b.data()));
  for (const x of [a, b, bg]) x.dispose();
});

test('a float16 gradient is converted; parameters and state must be float32', async (t) => {
  const p = make(5, 8);
  const q = make(5, 8);
  const g = make(5, 9);
  const [m1, v1, m2, v2] = [0, 1, 2, 3].map(() => P.zeros([5]));
  const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
  P.adamUpdate(p, g.cast('float16'), m1, v1, h);
  P.adamUpdate(q, g.cast('float16').cast('float32'), m2, v2, h);
  t.deepEqual(Array.from(await p.data()), Array.from(await q.data()));
  const p16 = p.cast('bfloat16');
  t.throws(() => P.adamUpdate(p16, g, m1, v1, h), { instanceOf: TypeError, message: /adam_update: argument 'param' must have dtype float32, got bfloat16/ });
  t.throws(() => P.sgdUpdate(p, g, p16, { lr: 0.1, momentum: 0.9 }), { instanceOf: TypeError, message: /sgd_update: argument 'momentumBuffer' must have dtype float32/ });
  for (const x of [p, q, g, m1, v1, m2, v2, p16]) x.dispose();
});

test('the update ops validate their arguments', (t) => {
  const p = make(4, 1);
  const g = make(4, 2);
  const [m, v] = [P.zeros([4]), P.zeros([4])];
  const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
  t.throws(() => P.adamUpdate(p, P.zeros([3]), m, v, h), { instanceOf: RangeError, message: /adam_update: argument 'grad' must have shape \[4\], got \[3\]/ });
  t.throws(() => P.lambUpdate(p, g, P.zeros([2, 2]), v, h), { instanceOf: RangeError, message: /lamb_update: argument 'exp_avg' must have shape \[4\]/ });
  t.throws(() => P.adamUpdate(p, g, m, v, { ...h, step: 0 }), { instanceOf: RangeError, message: /'step' must be an integer >= 1/ });
  t.throws(() => P.adamUpdate(p, g, m, v, { ...h, beta1: 1 }), { instanceOf: RangeError, message: /'beta1' must be in \[0, 1\)/ });
  t.throws(() => P.adamUpdate(p, g, m, v, { ...h, eps: 0 }), { instanceOf: RangeError, message: /'eps' must be a positive number/ });
  t.throws(() => P.adamUpdate(p, g, m, v, { ...h, lr: -1 }), { instanceOf: RangeError, message: /'lr' must be a finite number >= 0/ });
  t.throws(() => P.adamUpdate(p, g, m, v, { ...h, lr: 'x' as unknown as number }), { instanceOf: TypeError, message: /adam_update: argument 'lr' must be a number, got 'x'/ });
  t.throws(() => P.adamUpdate(p, g, m, m, h), { message: /adam_update: argument 'exp_avg_sq' overlaps the memory of 'exp_avg'/ });
  t.throws(() => P.adamUpdate(p, g, P.broadcastTo(P.zeros([1]), [4]), v, h), { message: /argument 'exp_avg' is a broadcast view/ });
  t.throws(() => P.adamUpdate(p, g, m, v, undefined as unknown as typeof h), { message: /adam_update: argument 'lr' must be a number/ });
  t.throws(() => P.sgdUpdate(p, g, null, { lr: 0.1, momentum: 0.9 }), { message: /sgd_update: argument 'momentumBuffer' is required/ });
  t.throws(() => P.sgdUpdate(p, g, m, { lr: 0.1, nesterov: true }), { instanceOf: RangeError, message: /'nesterov' needs momentum > 0/ });
  t.throws(() => P.sgdUpdate(p, g, m, { lr: 0.1, momentum: 1 }), { instanceOf: RangeError, message: /'momentum' must be in \[0, 1\)/ });
  t.throws(() => P.sgdUpdate(p, 3 as unknown as Tensor, null, { lr: 0.1 }), { instanceOf: TypeError, message: /sgd_update: argument 'grad' must be a Tensor, got number/ });
  for (const x of [p, g, m, v]) x.dispose();
});
