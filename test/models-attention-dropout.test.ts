// Attention-weight dropout (HF's attention_probs_dropout_prob): the unfused
// attention of models/attention-dropout.ts against a float64 reference with the same
// dropout mask (the mask is the seeded rand draw `dropout` makes), its gradients by
// finite differences of that reference, p = 0 against the fused kernel, the expected
// value over many masks, and the modules that use it: training mode with p > 0 drops,
// reproducibly per manualSeed; evaluation mode (and p = 0) runs the fused kernel
// exactly as a model without dropout does.
import test from 'ava';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { PerceiverSelfAttention, createModel, perceiverConfig } from '../models/index.js';
import { attentionWithDropout } from '../models/attention-dropout.js';
import { assertClose, assertExact, attentionRef, randomArray, randomMask } from './helpers/reference.js';
import { assertUnknownOptions } from './helpers/options.js';

type Arr = ArrayLike<number>;
interface Dims { B: number; Nq: number; Nk: number; H: number; Dqk: number; Dv: number }

/**
 * float64 attention with inverted dropout: weight [b, h, i, j] times keep[b, h, i, j] / (1 - p);
 * mask uint8 [B, Nq, Nk] (rows with no allowed key give 0).
 */
function droppedAttentionRef(q: Arr, k: Arr, v: Arr, d: Dims, mask: Arr | null, keep: Arr, p: number): Float64Array {
  const { B, Nq, Nk, H, Dqk, Dv } = d;
  const out = new Float64Array(B * Nq * H * Dv);
  const w = new Float64Array(Nk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < Nq; i++) {
        let m = -Infinity;
        for (let j = 0; j < Nk; j++) {
          if (mask && !mask[(b * Nq + i) * Nk + j]) {
            w[j] = -Infinity;
            continue;
          }
          let s = 0;
          for (let c = 0; c < Dqk; c++) s += q[((b * Nq + i) * H + h) * Dqk + c] * k[((b * Nk + j) * H + h) * Dqk + c];
          w[j] = s / Math.sqrt(Dqk);
          m = Math.max(m, w[j]);
        }
        if (m === -Infinity) continue;
        let l = 0;
        for (let j = 0; j < Nk; j++) l += w[j] === -Infinity ? 0 : Math.exp(w[j] - m);
        for (let j = 0; j < Nk; j++) {
          if (w[j] === -Infinity) continue;
          const pw = (Math.exp(w[j] - m) / l) * (keep[((b * H + h) * Nq + i) * Nk + j] / (1 - p));
          for (let c = 0; c < Dv; c++) out[((b * Nq + i) * H + h) * Dv + c] += pw * v[((b * Nk + j) * H + h) * Dv + c];
        }
      }
  return out;
}

/** The keep mask (1 kept, 0 dropped) that `dropout` draws for weights of `shape` after manualSeed(seed). */
async function keepMask(shape: number[], seed: number, p: number): Promise<Float64Array> {
  const u = await P.rand(shape, { seed }).data();
  return Float64Array.from(u, (x) => (x < 1 - p ? 1 : 0));
}

function inputs(d: Dims, seed: number): { q: Float32Array; k: Float32Array; v: Float32Array } {
  return {
    q: randomArray(d.B * d.Nq * d.H * d.Dqk, seed, -1.5, 1.5),
    k: randomArray(d.B * d.Nk * d.H * d.Dqk, seed + 1, -1.5, 1.5),
    v: randomArray(d.B * d.Nk * d.H * d.Dv, seed + 2, -1, 1),
  };
}

const D: Dims = { B: 2, Nq: 3, Nk: 5, H: 2, Dqk: 4, Dv: 3 };

test('attentionWithDropout: softmax weights times the seeded keep mask / (1 - p), masked keys excluded (any nonzero mask value allows), fully masked rows 0', async (t) => {
  const p = 0.4;
  const { q, k, v } = inputs(D, 10);
  // Allowed keys marked 1, 7 or 255: any nonzero value allows, and none may scale.
  const mask = randomMask(D.B * D.Nq * D.Nk, 3, 0.7).map((x, i) => x * [1, 7, 255][i % 3]);
  mask.fill(0, 0, D.Nk); // query row 0 of batch 0 attends to nothing
  const tq = P.tensor(q, [D.B, D.Nq, D.H, D.Dqk]);
  const tk = P.tensor(k, [D.B, D.Nk, D.H, D.Dqk]);
  const tv = P.tensor(v, [D.B, D.Nk, D.H, D.Dv]);
  const tm = P.tensor(mask, [D.B, D.Nq, D.Nk], { dtype: 'uint8' });
  for (const m of [null, tm]) {
    P.manualSeed(77);
    const out = attentionWithDropout(tq, tk, tv, { mask: m, p });
    t.deepEqual(out.shape, [D.B, D.Nq, D.H, D.Dv]);
    const keep = await keepMask([D.B, D.H, D.Nq, D.Nk], 77, p);
    t.true(keep.some((x) => x === 0) && keep.some((x) => x === 1), 'the draw drops some weights and keeps others');
    assertClose(t, await out.data(), droppedAttentionRef(q, k, v, D, m ? mask : null, keep, p), { rtol: 1e-5, atol: 1e-6, msg: m ? 'masked' : 'unmasked' });
    out.dispose();
  }
  for (const x of [tq, tk, tv, tm]) x.dispose();
});

test('attentionWithDropout with p = 0 is the fused attention (float32 rounding apart), with and without a key mask', async (t) => {
  const { q, k, v } = inputs(D, 20);
  const mask = randomMask(D.B * D.Nq * D.Nk, 4, 0.6);
  mask.fill(0, D.Nk, 2 * D.Nk);
  const tq = P.tensor(q, [D.B, D.Nq, D.H, D.Dqk]);
  const tk = P.tensor(k, [D.B, D.Nk, D.H, D.Dqk]);
  const tv = P.tensor(v, [D.B, D.Nk, D.H, D.Dv]);
  const tm = P.tensor(mask, [D.B, D.Nq, D.Nk], { dtype: 'uint8' });
  for (const m of [null, tm]) {
    const unfused = await attentionWithDropout(tq, tk, tv, { mask: m, p: 0 }).data();
    const fused = await P.attention(tq, tk, tv, { mask: m }).data();
    assertClose(t, unfused, fused, { rtol: 1e-5, atol: 1e-6, msg: m ? 'masked' : 'unmasked' });
    assertClose(t, unfused, attentionRef(q, k, v, D, m ? { data: mask, shape: [D.B, D.Nq, D.Nk] } : null), { rtol: 1e-5, atol: 1e-6 });
  }
  for (const x of [tq, tk, tv, tm]) x.dispose();
});

test('attentionWithDropout: about p of the weights are dropped; averaged over many masks it approaches the fused attention', async (t) => {
  // v = identity (Nk = Dv, one head) makes the output the dropped-out weights themselves.
  const n = 4000;
  const p = 0.3;
  const [Nq, Nk] = [2, 6];
  const q1 = randomArray(Nq * 4, 5, -1, 1);
  const k1 = randomArray(Nk * 4, 6, -1, 1);
  const eye = Float32Array.from({ length: Nk * Nk }, (_, i) => (i % (Nk + 1) === 0 ? 1 : 0));
  // n copies of one problem: every batch element draws its own mask.
  const q = P.broadcastTo(P.tensor(q1, [1, Nq, 1, 4]), [n, Nq, 1, 4]);
  const k = P.broadcastTo(P.tensor(k1, [1, Nk, 1, 4]), [n, Nk, 1, 4]);
  const v = P.broadcastTo(P.tensor(eye, [1, Nk, 1, Nk]), [n, Nk, 1, Nk]);
  const weights = await P.attention(q, k, v).data(); // [n, Nq, 1, Nk], every copy the same
  P.manualSeed(3);
  const dropped = await attentionWithDropout(q, k, v, { p }).data();
  let zeros = 0;
  const mean = new Float64Array(Nq * Nk);
  for (let i = 0; i < dropped.length; i++) {
    if (dropped[i] === 0) zeros++;
    else t.true(Math.abs(dropped[i] - weights[i] / (1 - p)) <= 1e-6, `kept weights are scaled by 1 / (1 - p) (element ${i})`);
    mean[i % (Nq * Nk)] += dropped[i] / n;
  }
  const frac = zeros / dropped.length;
  // Binomial standard deviation sqrt(p (1 - p) / 48000) ~ 0.0021: 5 sigma.
  t.true(Math.abs(frac - p) < 0.011, `dropped fraction ${frac}, expected about ${p}`);
  // Each mean weight has standard deviation <= sqrt(p / (1 - p) / n) * w ~ 0.011 w.
  assertClose(t, mean, weights.slice(0, Nq * Nk), { rtol: 0.06, atol: 0, msg: 'mean over masks' });
  for (const x of [q, k, v]) x.dispose();
});

test('attentionWithDropout gradients (q, k, v) match finite differences of the reference under the same mask', async (t) => {
  const d: Dims = { B: 1, Nq: 3, Nk: 4, H: 2, Dqk: 2, Dv: 2 };
  const p = 0.25;
  const seed = 123;
  const { q, k, v } = inputs(d, 30);
  const mask = Uint8Array.from([1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 1]);
  const keep = await keepMask([d.B, d.H, d.Nq, d.Nk], seed, p);
  const xs = [P.tensor(q, [1, d.Nq, d.H, d.Dqk]), P.tensor(k, [1, d.Nk, d.H, d.Dqk]), P.tensor(v, [1, d.Nk, d.H, d.Dv])];
  for (const x of xs) x.requiresGrad = true;
  const tm = P.tensor(mask, [1, d.Nq, d.Nk], { dtype: 'uint8' });
  const w = randomArray(d.B * d.Nq * d.H * d.Dv, 9, -1, 1);
  P.manualSeed(seed);
  const loss = P.tidy(() => attentionWithDropout(xs[0], xs[1], xs[2], { mask: tm, p }).mul(P.tensor(w, [1, d.Nq, d.H, d.Dv])).sum(3).sum(2).sum(1).sum(0));
  loss.backward();
  const f64 = [q, k, v].map((a) => Float64Array.from(a));
  const lossRef = () => droppedAttentionRef(f64[0], f64[1], f64[2], d, mask, keep, p).reduce((s, y, i) => s + y * w[i], 0);
  t.true(Math.abs((await loss.data())[0] - lossRef()) < 1e-5, 'the loss is the reference loss: same mask');
  for (let i = 0; i < 3; i++) {
    const numeric = new Float64Array(f64[i].length);
    for (let j = 0; j < numeric.length; j++) {
      const keepValue = f64[i][j];
      f64[i][j] = keepValue + 1e-6;
      const up = lossRef();
      f64[i][j] = keepValue - 1e-6;
      const down = lossRef();
      f64[i][j] = keepValue;
      numeric[j] = (up - down) / 2e-6;
    }
    t.true(numeric.some((g) => g !== 0), `input ${i} influences the loss`);
    assertClose(t, await xs[i].grad!.data(), numeric, { rtol: 1e-3, atol: 1e-5, msg: `d loss / d ${'qkv'[i]}` });
  }
  for (const x of [...xs, tm, loss]) x.dispose();
});

/** A self- or cross-attention module with seeded random weights. */
function attentionModule(opts: { cross: boolean; heads: number; p: number }, seed: number): PerceiverSelfAttention {
  const m = new PerceiverSelfAttention({ isCrossAttention: opts.cross, qDim: 8, kvDim: opts.cross ? 6 : 8, numHeads: opts.heads, attentionProbsDropoutProb: opts.p });
  const sd: Record<string, Tensor> = {};
  for (const [name, w] of Object.entries(m.stateDict())) sd[name] = P.tensor(randomArray(w.size, seed++, -0.6, 0.6), [...w.shape]);
  m.loadStateDict(sd);
  for (const w of Object.values(sd)) w.dispose();
  return m;
}

test('PerceiverSelfAttention: evaluation mode (any p) and training with p = 0 give bit-for-bit the output of a module without dropout', async (t) => {
  const x = P.tensor(randomArray(2 * 4 * 8, 40), [2, 4, 8]);
  const kv = P.tensor(randomArray(2 * 7 * 6, 41), [2, 7, 6]);
  const mask = P.tensor(randomMask(2 * 7, 42, 0.7), [2, 1, 7], { dtype: 'uint8' });
  // One head of cross-attention takes the fast path in evaluation; two heads the fused kernel.
  for (const [cross, heads] of [[false, 2], [true, 1], [true, 2]] as const) {
    const run = async (m: PerceiverSelfAttention) => {
      const out = cross ? m.forward(x, kv, mask) : m.forward(x);
      try {
        return await out.data();
      } finally {
        out.dispose();
      }
    };
    const plain = attentionModule({ cross, heads, p: 0 }, 50);
    const dropping = attentionModule({ cross, heads, p: 0.5 }, 50);
    const want = await run(plain);
    assertExact(t, await run(dropping), want, `cross ${cross}, ${heads} heads, evaluation`);
    plain.train();
    assertExact(t, await run(plain), want, `cross ${cross}, ${heads} heads, training with p = 0`);
    for (const m of [plain, dropping]) m.dispose();
  }
  for (const a of [x, kv, mask]) a.dispose();
});

test('PerceiverSelfAttention in training with p > 0: differs from evaluation, the same for the same manualSeed, the evaluation output on average', async (t) => {
  const n = 3000;
  const x1 = randomArray(3 * 8, 60);
  const kv1 = randomArray(5 * 6, 61);
  const x = P.broadcastTo(P.tensor(x1, [1, 3, 8]), [n, 3, 8]);
  const kv = P.broadcastTo(P.tensor(kv1, [1, 5, 6]), [n, 5, 6]);
  for (const [cross, heads] of [[false, 2], [true, 1]] as const) {
    const m = attentionModule({ cross, heads, p: 0.2 }, 70);
    const run = async () => {
      const out = cross ? m.forward(x, kv) : m.forward(x);
      try {
        return await out.data();
      } finally {
        out.dispose();
      }
    };
    const evaluated = await run();
    m.train();
    P.manualSeed(8);
    const a = await run();
    P.manualSeed(8);
    const b = await run();
    P.manualSeed(9);
    const c = await run();
    const what = `${cross ? 'cross' : 'self'}-attention, ${heads} heads`;
    assertExact(t, b, a, `${what}: same seed, same masks`);
    t.true(a.some((v, i) => v !== c[i]), `${what}: another seed, other masks`);
    t.true(a.some((v, i) => Math.abs(v - evaluated[i]) > 1e-3), `${what}: training drops weights`);
    // The mean over n independent masks (every batch element draws its own) -> the evaluation output.
    const C = a.length / n;
    const mean = new Float64Array(C);
    for (let i = 0; i < a.length; i++) mean[i % C] += a[i] / n;
    const scale = Math.max(...Array.from(evaluated.slice(0, C), Math.abs));
    assertClose(t, mean, evaluated.slice(0, C), { rtol: 0, atol: 0.03 * scale, msg: `${what}: mean over masks` });
    m.dispose();
  }
  for (const a of [x, kv]) a.dispose();
});

test('PerceiverSelfAttention in training with p > 0: gradients reach the query, key and value weights', async (t) => {
  const m = attentionModule({ cross: true, heads: 1, p: 0.3 }, 80).train().requiresGrad_(true);
  const x = P.tensor(randomArray(2 * 4 * 8, 81), [2, 4, 8]);
  const kv = P.tensor(randomArray(2 * 6 * 6, 82), [2, 6, 6]);
  P.manualSeed(1);
  const loss = P.tidy(() => m.forward(x, kv).mul(m.forward(x, kv)).mean(2).mean(1).mean(0));
  loss.backward();
  for (const p of [m.query.weight, m.key.weight, m.value.weight]) {
    const g = await p.grad!.data();
    t.true(g.every(Number.isFinite) && g.some((v) => v !== 0));
  }
  loss.dispose();
  for (const a of [x, kv]) a.dispose();
  m.dispose();
});

test('attention_probs_dropout_prob reaches every attention of a model; values outside [0, 1) are refused', (t) => {
  const cfg = {
    architectures: ['PerceiverForImageClassificationLearned'],
    num_latents: 4, d_latents: 16, d_model: 8, num_blocks: 1, num_self_attends_per_block: 2,
    num_self_attention_heads: 2, num_cross_attention_heads: 1, image_size: 4, num_labels: 3,
    attention_probs_dropout_prob: 0.15,
  };
  const model = createModel(cfg);
  const found: number[] = [];
  const visit = (mod: P.Module) => {
    if (mod instanceof PerceiverSelfAttention) found.push(mod.attentionProbsDropoutProb);
    for (const [, c] of mod.namedChildren()) visit(c);
  };
  visit(model);
  t.deepEqual(found, [0.15, 0.15, 0.15, 0.15], 'encoder cross-attention, two self-attentions, decoder cross-attention');
  model.dispose();
  t.is(perceiverConfig({}).attention_probs_dropout_prob, 0.1, "HF's default");
  for (const bad of [1, -0.1, '0.1', NaN]) {
    t.throws(() => perceiverConfig({ attention_probs_dropout_prob: bad as number }), { instanceOf: TypeError, message: /attention_probs_dropout_prob must be a number in \[0, 1\)/ });
    t.throws(() => new PerceiverSelfAttention({ qDim: 4, attentionProbsDropoutProb: bad as number }), { instanceOf: RangeError, message: /attention_probs_dropout_prob/ });
  }
});

test('attentionWithDropout refuses a misspelt option, naming the op, the argument and the key', async (t) => {
  const [q, k, v] = [P.zeros([1, 2, 1, 4]), P.zeros([1, 3, 1, 4]), P.zeros([1, 3, 1, 4])];
  await assertUnknownOptions(t, [[() => attentionWithDropout(q, k, v, { p: 0.1, dropout: 0.1 } as never), 'attentionWithDropout', 'opts', 'dropout']]);
  for (const x of [q, k, v]) x.dispose();
});
