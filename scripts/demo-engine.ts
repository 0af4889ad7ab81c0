// The engine's main job until the models land: one Perceiver encoder step at the
// ImageNet model's real shapes, on random weights. 512 latents cross-attend to
// 50,176 pixel tokens of 261 channels (one head), then one latent self-attention
// layer (8 heads, 1024 channels) with its MLP. It checks the fused attention
// against the explicit softmax(Q Kᵀ) V path on a few queries, and reports time,
// GFLOP/s and memory.
import {
  attention, backends, gelu, layerNorm, linear, matmul, memory, ones, randn, softmax, tidy, zeros,
  type Tensor,
} from '../lib/index.js';
import { demoFlags, runDemo } from './cli-args.js';

const N_IN = 224 * 224, C_IN = 261, N_LAT = 512, C_LAT = 1024, HEADS = 8;

function param(shape: number[], seed: number, std = 0.02): Tensor {
  return randn(shape, { seed, std });
}

async function timed<T extends Tensor>(label: string, flops: number, fn: () => T, rows: string[][]): Promise<T> {
  const t0 = performance.now();
  const out = fn();
  await out.data();
  const ms = performance.now() - t0;
  rows.push([label, ms.toFixed(1), (flops / ms / 1e6).toFixed(1)]);
  return out;
}

const USAGE = `usage: demo-engine

One Perceiver encoder step at the ImageNet model's real shapes on random weights:
the fused attention checked against the explicit path, time, GFLOP/s and memory.
Takes no options.
`;

async function main(): Promise<void> {
  demoFlags('demo-engine', USAGE, {});
  const cpu = backends()[0];
  console.log(`perceiver-io engine demo — cpu, ${cpu.threads} threads, ${cpu.simd}`);
  console.log(`inputs [1, ${N_IN}, ${C_IN}], latents [${N_LAT}, ${C_LAT}], random weights\n`);
  const rows: string[][] = [];
  let seed = 1;
  const inputs = randn([1, N_IN, C_IN], { seed: seed++ });
  const latents = param([1, N_LAT, C_LAT], seed++);
  const w = {
    lnQ: [ones([C_LAT]), zeros([C_LAT])], lnKv: [ones([C_IN]), zeros([C_IN])],
    q: param([C_IN, C_LAT], seed++), k: param([C_IN, C_IN], seed++), v: param([C_IN, C_IN], seed++),
    o: param([C_LAT, C_IN], seed++),
    sq: param([C_LAT, C_LAT], seed++), sk: param([C_LAT, C_LAT], seed++), sv: param([C_LAT, C_LAT], seed++),
    so: param([C_LAT, C_LAT], seed++),
    m1: param([C_LAT, C_LAT], seed++), m2: param([C_LAT, C_LAT], seed++),
  };
  await inputs.data();

  // Cross-attention: latents (queries) attend to the pixels (keys/values).
  const kvn = await timed('layer norm (inputs)', 8 * N_IN * C_IN, () => layerNorm(inputs, w.lnKv[0], w.lnKv[1]), rows);
  const k = await timed('key projection', 2 * N_IN * C_IN * C_IN, () => linear(kvn, w.k), rows);
  const v = await timed('value projection', 2 * N_IN * C_IN * C_IN, () => linear(kvn, w.v), rows);
  const qn = layerNorm(latents, w.lnQ[0], w.lnQ[1]);
  const q = linear(qn, w.q);
  const q4 = q.reshape([1, N_LAT, 1, C_IN]);
  const k4 = k.reshape([1, N_IN, 1, C_IN]);
  const v4 = v.reshape([1, N_IN, 1, C_IN]);
  const attnFlops = 4 * N_LAT * N_IN * C_IN;
  const att = await timed('fused attention 512 x 50176', attnFlops, () => attention(q4, k4, v4), rows);

  // The same function, materialised, for the first 8 queries.
  const check = tidy(() => {
    const qs = q4.slice(1, 0, 8).reshape([8, C_IN]);
    const p = softmax(matmul(qs, k.reshape([N_IN, C_IN]), { transB: true, alpha: 1 / Math.sqrt(C_IN) }));
    return matmul(p, v.reshape([N_IN, C_IN]));
  });
  const [fused, plain] = await Promise.all([att.slice(1, 0, 8).data(), check.data()]);
  let maxErr = 0, maxRef = 0;
  for (let i = 0; i < plain.length; i++) {
    maxErr = Math.max(maxErr, Math.abs(fused[i] - plain[i]));
    maxRef = Math.max(maxRef, Math.abs(plain[i]));
  }

  const x = await timed('output projection + residual', 2 * N_LAT * C_IN * C_LAT, () =>
    tidy(() => linear(att.reshape([1, N_LAT, C_IN]), w.o).add(latents)), rows);

  // One latent self-attention layer with its MLP (HF's exact GELU, fused into the GEMM).
  const y = await timed('latent self-attention layer', 2 * N_LAT * C_LAT * C_LAT * 6 + 4 * N_LAT * N_LAT * C_LAT, () =>
    tidy(() => {
      const h = layerNorm(x);
      const sq = linear(h, w.sq).reshape([1, N_LAT, HEADS, C_LAT / HEADS]);
      const sk = linear(h, w.sk).reshape([1, N_LAT, HEADS, C_LAT / HEADS]);
      const sv = linear(h, w.sv).reshape([1, N_LAT, HEADS, C_LAT / HEADS]);
      const a = linear(attention(sq, sk, sv).reshape([1, N_LAT, C_LAT]), w.so).add(x);
      const m = linear(gelu(linear(layerNorm(a), w.m1)), w.m2);
      return m.add(a);
    }), rows);
  const out = await y.data();
  let finite = true;
  for (const vv of out) if (!Number.isFinite(vv)) finite = false;

  const mem = memory().cpu;
  console.log('stage'.padEnd(34) + 'ms'.padStart(10) + 'GFLOP/s'.padStart(10));
  for (const [label, ms, g] of rows) console.log(label.padEnd(34) + ms.padStart(10) + g.padStart(10));
  console.log(`\nfused vs explicit attention (8 queries): max |diff| ${maxErr.toExponential(2)} (max |value| ${maxRef.toExponential(2)})`);
  console.log(`output [${y.shape.join(', ')}] finite: ${finite}`);
  console.log(`memory: ${mem.tensors} live tensors, ${(mem.bytes / 2 ** 20).toFixed(1)} MiB live, peak ${(mem.peakBytes / 2 ** 20).toFixed(1)} MiB`);
  if (!finite || maxErr > 1e-4 * Math.max(1, maxRef)) {
    console.error('demo: FAILED — the fused attention disagrees with the explicit path');
    process.exit(1);
  }
}

runDemo('demo-engine', main);
