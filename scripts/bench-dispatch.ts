// What every op costs on top of its kernel: a tiny elementwise op (4x8 float32)
// issued from JS through the addon and the device queue, against the same loop in
// torch (scripts/bench-dispatch.py; on the CPU Debian's python3-torch). A model's
// small ops and a GPU's whole training step (thousands of launches) pay this per op.
//   node dist/scripts/bench-dispatch.js [--ops 20000] [--device cpu|cuda]
import * as P from '../lib/index.js';
import { PerceiverForMaskedLM } from '../models/index.js';
import { LANGUAGE_PERCEIVER } from '../models/presets.js';
import { arg } from './cli-args.js';
import { runTorchBaseline } from './torch-baseline.js';

const n = Number(arg('--ops') ?? 20000);
if (!Number.isInteger(n) || n < 100) throw new RangeError(`bench-dispatch: --ops must be an integer >= 100, got ${arg('--ops')}`);
const device = arg('--device') ?? 'cpu';
if (device !== 'cpu' && device !== 'cuda') throw new RangeError(`bench-dispatch: --device must be 'cpu' or 'cuda', got ${device}`);
const threads = Number(process.env.PERCEIVER_NUM_THREADS ?? P.backends()[0].threads ?? 2);
const a = P.randn([4, 8], { seed: 1, device });
const b = P.randn([4, 8], { seed: 2, device });
const w = P.randn([4, 8], { seed: 3, device });
w.requiresGrad = true;
const total = (x: P.Tensor) => P.sum(P.sum(x, 0), 0);

/** Median over reps of microseconds per op; fn runs n ops and waits for them. */
async function median(fn: () => Promise<void>, reps = 5): Promise<number> {
  await fn();
  const out: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    out.push(((performance.now() - t0) * 1000) / n);
  }
  return out.sort((x, y) => x - y)[Math.floor(reps / 2)];
}

// n dependent adds, then one read: issue and execution overlap, as in a model.
const chain = () => {
  const c = P.tidy(() => {
    let c = a;
    for (let i = 0; i < n; i++) c = P.add(c, b);
    return total(c);
  });
  return c.data().then(() => c.dispose());
};
// An op, a reduction and a read of the result, n/10 times: the latency of ops through the queue.
const roundtrip = async () => {
  for (let i = 0; i < n / 10; i++) {
    const s = P.tidy(() => total(P.add(a, b)));
    await s.data();
    s.dispose();
  }
};
// n ops recorded on the tape (mul and add alternating), then their backward.
const gradChain = async () => {
  const loss = P.tidy(() => {
    let c = a;
    for (let i = 0; i < n / 2; i++) c = P.add(P.mul(c, w), b);
    return total(c);
  });
  loss.backward();
  loss.dispose();
  await w.grad!.data();
  w.grad!.dispose();
  w.grad = null;
};

// The released language model's depth (26 latent layers) at tiny widths: a forward
// whose kernels take next to nothing, so its time is what issuing its ops costs.
const mlm = new PerceiverForMaskedLM({
  ...LANGUAGE_PERCEIVER, d_model: 64, d_latents: 64, qk_channels: 64, v_channels: 64, num_latents: 16, max_position_embeddings: 64,
});
mlm.eval().to(device);
const bytes = P.tensor(Int32Array.from({ length: 64 }, (_, i) => 3 + (i % 250)), [1, 64], { dtype: 'int32', device });
P.profiler.start();
P.tidy(() => mlm.forward(bytes).logits).dispose();
const mlmOps = P.profiler.stop().rows.reduce((a, r) => a + r.calls, 0);
const forwards = async () => {
  for (let r = 0; r < 20; r++) {
    const l = P.tidy(() => mlm.forward(bytes).logits);
    if (r === 19) await l.data();
    l.dispose();
  }
};
let mlmMs = Infinity;
for (let r = 0; r < 7; r++) {
  const t0 = performance.now();
  await forwards();
  mlmMs = Math.min(mlmMs, (performance.now() - t0) / 20);
}

const ours = { chain: await median(chain), roundtrip: ((await median(roundtrip)) * 10) / 3, grad: await median(gradChain) };
const torch = runTorchBaseline<{ chain_us: number; roundtrip_us: number; grad_us: number; torch: string }>('bench-dispatch.py', [String(n), String(threads), device]);
const rows: [string, number, number | undefined][] = [
  [`${n} dependent adds, one read (per op)`, ours.chain, torch.result?.chain_us],
  ['add, sum, sum + read of the result (per op)', ours.roundtrip, torch.result?.roundtrip_us],
  [`${n} ops with autograd, forward + backward (per op)`, ours.grad, torch.result?.grad_us],
];
console.log(`per-op overhead on the ${device}${device === 'cpu' ? `, ${threads} threads` : ''}, medians of 5:`);
for (const [what, us, t] of rows)
  console.log(`  ${what.padEnd(52)} ${us.toFixed(2).padStart(7)} µs` + (t === undefined ? '' : `   torch ${t.toFixed(2).padStart(6)} µs   ours/torch speed ${(t / us).toFixed(2)}x`));
console.log(`  ${`miniature language model forward (${mlmOps} ops)`.padEnd(52)} ${mlmMs.toFixed(2).padStart(7)} ms   (${((mlmMs * 1000) / mlmOps).toFixed(2)} µs per op; best of 7)`);
console.log(torch.result ? `  baseline: torch ${torch.result.torch} (${torch.info})` : `  ${torch.info}`);
a.dispose();
b.dispose();
w.dispose();
bytes.dispose();
mlm.dispose();
