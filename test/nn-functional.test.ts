// Training losses and modes: cross-entropy (labels, soft targets, label smoothing),
// dropout, BatchNorm2d in training mode, train()/eval().
import test from 'ava';
import * as P from '../lib/index.js';
import { assertClose, randomArray } from './helpers/reference.js';

function logSoftmaxRow(row: ArrayLike<number>): number[] {
  const m = Math.max(...Array.from(row));
  const lse = m + Math.log(Array.from(row).reduce((s, v) => s + Math.exp(v - m), 0));
  return Array.from(row, (v) => v - lse);
}

test('crossEntropy: mean negative log-likelihood of int labels, with label smoothing, and of soft targets; gradient is softmax - target', async (t) => {
  const [N, K] = [3, 4];
  const x = randomArray(N * K, 5, -2, 2);
  const labels = [2, 0, 3];
  const logits = P.tensor(x, [N, K]);
  logits.requiresGrad = true;
  const y = P.tensor(Int32Array.from(labels), [N]);
  for (const ls of [0, 0.1]) {
    const loss = P.crossEntropy(logits, y, { labelSmoothing: ls });
    let want = 0;
    for (let i = 0; i < N; i++) {
      const lp = logSoftmaxRow(x.subarray(i * K, (i + 1) * K));
      for (let k = 0; k < K; k++) want -= ((k === labels[i] ? 1 - ls : 0) + ls / K) * lp[k];
    }
    assertClose(t, await loss.data(), [want / N], { rtol: 1e-6, atol: 1e-6, msg: `label smoothing ${ls}` });
    loss.dispose();
  }
  const loss = P.crossEntropy(logits, y);
  loss.backward();
  const g = await logits.grad!.data();
  for (let i = 0; i < N; i++) {
    const lp = logSoftmaxRow(x.subarray(i * K, (i + 1) * K));
    for (let k = 0; k < K; k++) t.true(Math.abs(g[i * K + k] - (Math.exp(lp[k]) - (k === labels[i] ? 1 : 0)) / N) < 1e-6);
  }
  const soft = P.tensor(new Float32Array([0.5, 0.5, 0, 0, 1, 0, 0, 0, 0, 0, 0.25, 0.75]), [N, K]);
  const s = P.crossEntropy(logits, soft, { reduction: 'sum' });
  let want = 0;
  for (let i = 0; i < N; i++) {
    const lp = logSoftmaxRow(x.subarray(i * K, (i + 1) * K));
    for (let k = 0; k < K; k++) want -= (await soft.data())[i * K + k] * lp[k];
  }
  assertClose(t, await s.data(), [want], { rtol: 1e-6, atol: 1e-6, msg: 'soft targets, summed' });
  t.throws(() => P.crossEntropy(logits, P.tensor(Int32Array.from([1]), [1])), { instanceOf: RangeError, message: /int32 labels \[3\] or probabilities \[3, 4\]/ });
  t.throws(() => P.crossEntropy(logits, y, { labelSmoothing: 1 }), { instanceOf: RangeError, message: /labelSmoothing/ });
  for (const v of [logits, y, loss, soft, s]) v.dispose();
});

test('dropout: identity in evaluation; in training zeroes about p of the values, scales the rest by 1/(1-p), reproducibly by seed', async (t) => {
  const x = P.ones([4000]);
  t.is(P.dropout(x, 0.3, { training: false }), x);
  const a = await P.dropout(x, 0.3, { training: true, seed: 9 }).data();
  const b = await P.dropout(x, 0.3, { training: true, seed: 9 }).data();
  t.deepEqual(a, b);
  const zeros = a.filter((v) => v === 0).length;
  t.true(zeros > 1050 && zeros < 1350, `${zeros} of 4000 dropped`);
  t.true(a.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6));
  t.throws(() => P.dropout(x, 1, { training: true }), { instanceOf: RangeError });
  // @ts-expect-error the options are required: whether to drop is never a default
  t.throws(() => P.dropout(x, 0.5), { instanceOf: TypeError, message: /dropout: argument 'opts' must be \{ training: boolean, seed\? \}, got undefined/ });
  t.throws(() => P.dropout(x, 0.5, { training: 1 as unknown as boolean }), { instanceOf: TypeError, message: /argument 'opts'/ });
  x.dispose();
});

test('BatchNorm2d training mode: batch statistics, running averages updated with unbiased variance, gradients flow; eval() returns to running statistics', async (t) => {
  const bn = new P.BatchNorm2d(2, { momentum: 0.5 });
  bn.train();
  t.true(bn.training);
  bn.requiresGrad_();
  const data = randomArray(2 * 3 * 2, 4, -1, 3);
  const x = P.tensor(data, [1, 3, 2, 2]);
  const y = bn.forward(x);
  const got = await y.data();
  const rows = 6;
  for (let c = 0; c < 2; c++) {
    const v = Array.from({ length: rows }, (_, r) => data[r * 2 + c]);
    const mean = v.reduce((s, e) => s + e, 0) / rows;
    const varB = v.reduce((s, e) => s + (e - mean) ** 2, 0) / rows;
    v.forEach((e, r) => t.true(Math.abs(got[r * 2 + c] - (e - mean) / Math.sqrt(varB + 1e-5)) < 1e-5));
    t.true(Math.abs((await bn.stateDict().running_mean.data())[c] - 0.5 * mean) < 1e-6);
    t.true(Math.abs((await bn.stateDict().running_var.data())[c] - (0.5 + (0.5 * varB * rows) / (rows - 1))) < 1e-5);
  }
  t.is((await bn.stateDict().num_batches_tracked.data())[0], 1);
  P.tidy(() => y.mul(P.tensor(randomArray(12, 8), [1, 3, 2, 2])).sum(3).sum(2).sum(1).sum(0).backward());
  t.truthy(bn.stateDict().weight.grad);
  bn.eval();
  t.false(bn.training);
  const z = await bn.forward(x).data();
  t.notDeepEqual(Array.from(z), Array.from(got), 'evaluation uses the running statistics');
  y.dispose();
  x.dispose();
  bn.dispose();
});

test('train() and eval() set the mode on a whole module tree', (t) => {
  const bn = new P.BatchNorm2d(2);
  const outer = new P.ModuleList<P.Module>([new P.Linear(2, 2), new P.ModuleList([bn])]);
  t.false(outer.training, 'modules start in evaluation mode');
  outer.train();
  t.true(bn.training);
  outer.eval();
  t.false(bn.training);
  t.throws(() => outer.train(1 as unknown as boolean), { instanceOf: TypeError });
  outer.dispose();
});

test('crossEntropy and dropout refuse a non-object options argument and a non-Tensor input', (t) => {
  const logits = P.zeros([2, 5]);
  const labels = P.tensor([1, 2], [2], { dtype: 'int32' });
  const bad = (v: unknown) => v as never;
  const cases: [string, () => unknown, typeof Error, RegExp][] = [
    ['crossEntropy opts 5', () => P.crossEntropy(logits, labels, bad(5)), TypeError, /^crossEntropy: argument 'options' must be an object, got number 5/],
    ['crossEntropy opts null', () => P.crossEntropy(logits, labels, bad(null)), TypeError, /^crossEntropy: argument 'options' must be an object, got null/],
    ['crossEntropy int32 logits', () => P.crossEntropy(P.zeros([2, 5], { dtype: 'int32' }), labels), TypeError, /^crossEntropy: argument 'logits' must have a floating dtype/],
    ['dropout x string (training)', () => P.dropout(bad('x'), 0.5, { training: true }), TypeError, /^dropout: argument 'x' must be a Tensor, got 'x'/],
    ['dropout x null (eval)', () => P.dropout(bad(null), 0.5, { training: false }), TypeError, /^dropout: argument 'x' must be a Tensor, got null/],
  ];
  for (const [name, fn, instanceOf, message] of cases) t.throws(fn, { instanceOf, message }, name);
  logits.dispose();
  labels.dispose();
});

test('crossEntropy: labels outside [0, K) made from host data are refused at the call, naming crossEntropy and target, not one_hot', async (t) => {
  const logits = P.zeros([2, 3]);
  for (const [labels, range] of [[[0, 3], '0 to 3'], [[-1, 2], '-1 to 2']] as const) {
    const target = P.tensor([...labels], [2], { dtype: 'int32' });
    t.throws(() => P.crossEntropy(logits, target), {
      instanceOf: RangeError,
      message: new RegExp(`^crossEntropy: argument 'target' must hold labels in \\[0, 3\\) for logits \\[2, 3\\], got labels from ${range}$`),
    });
    target.dispose();
  }
  const gone = P.tensor([0, 1], [2], { dtype: 'int32' });
  gone.dispose();
  t.throws(() => P.crossEntropy(logits, gone), { message: /^crossEntropy: argument 'target' is a disposed Tensor$/ });
  // Labels the host never saw (computed by a kernel) still reach one_hot, whose failure the loss's data() reports.
  const computed = P.arange(2, 4, 1, { dtype: 'int32' });
  const loss = P.crossEntropy(logits, computed);
  await t.throwsAsync(() => loss.data(), { message: /index 3/ });
  const ok = P.tensor([2, 0], [2], { dtype: 'int32' });
  t.true(Math.abs((P.crossEntropy(logits, ok).dataSync() as Float32Array)[0] - Math.log(3)) < 1e-6);
  for (const v of [logits, computed, loss, ok]) v.dispose();
});

test('crossEntropy: 16-bit soft targets are smoothed in float32, not rounded to 16 bits twice', (t) => {
  const logits = P.tensor([[0.5, -1.25, 2]], undefined, { dtype: 'bfloat16' });
  const target = P.tensor([[0.3, 0.3, 0.4]], undefined, { dtype: 'bfloat16' });
  // The reference in double from the bfloat16 values themselves (0.3 -> 0.30078125, 0.4 -> 0.400390625).
  const q = Array.from(P.cast(target, 'float32').dataSync()).map((v) => v * 0.9 + 0.1 / 3);
  const z = [0.5, -1.25, 2];
  const lse = Math.log(z.reduce((a, v) => a + Math.exp(v), 0));
  const want = -z.reduce((a, v, i) => a + q[i] * (v - lse), 0);
  const got = P.crossEntropy(logits, target, { labelSmoothing: 0.1 }).dataSync()[0];
  t.true(Math.abs(got - want) < 1e-5, `${got} vs ${want}`);
  logits.dispose();
  target.dispose();
});

test('crossEntropy: a -inf logit of a class other than the label (a masked class) leaves the loss and gradient finite, as torch\'s; with smoothing the loss is inf', async (t) => {
  const logits = P.tensor([[0, -Infinity, 1], [2, 0.5, -Infinity]]);
  logits.requiresGrad = true;
  const labels = P.tensor(Int32Array.from([0, 1]), [2]);
  const loss = P.crossEntropy(logits, labels);
  // torch 1.13: F.cross_entropy of the same -> 1.5073 (mean of 1.3133 and 1.7014).
  const want = (-logSoftmaxRow([0, -Infinity, 1])[0] - logSoftmaxRow([2, 0.5, -Infinity])[1]) / 2;
  assertClose(t, await loss.data(), [want], { rtol: 1e-6, atol: 0 });
  loss.backward();
  const g = Array.from(await logits.grad!.data());
  t.true(g.every(Number.isFinite), String(g));
  t.is(g[1], 0);
  t.is(g[5], 0);
  const smoothed = P.crossEntropy(logits, labels, { labelSmoothing: 0.1 });
  t.deepEqual(Array.from(await smoothed.data()), [Infinity]);
  for (const v of [logits, labels, loss, smoothed]) v.dispose();
});
