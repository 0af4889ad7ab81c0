// Times training steps (forward, cross-entropy, backward, optimizer step) of a
// classifier on one fixed batch, for the benchmark scripts.
import * as P from '../lib/index.js';
import type { TrainableClassifier } from '../models/train/trainer.js';

/**
 * Milliseconds of each of `steps` training steps, after `warmup` untimed ones; 'bfloat16'
 * is mixed precision (the forward under autocast, float32 master weights). `issue`, when
 * given, receives each timed step's host time to issue its ops (forward, backward and
 * the update, before the first read): the JS side's share, which the device overlaps.
 */
export async function timeTrainingSteps(
  model: TrainableClassifier,
  opt: P.optim.Optimizer,
  x: P.Tensor,
  y: P.Tensor,
  steps: number,
  warmup: number,
  precision: 'float32' | 'bfloat16' = 'float32',
  issue?: number[],
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < steps + warmup; i++) {
    const t0 = performance.now();
    const loss = P.tidy(() => P.crossEntropy(P.autocast(precision, () => model.forward(x).logits), y));
    loss.backward();
    opt.step();
    opt.zeroGrad();
    if (i >= warmup) issue?.push(performance.now() - t0);
    await loss.data();
    // The update is queued after the loss: wait for the last parameter too.
    await model.parameters().at(-1)!.data();
    loss.dispose();
    if (i >= warmup) times.push(performance.now() - t0);
  }
  return times;
}

/**
 * One training step under the profiler (forward, backward and the optimizer in
 * scopes of those names), after the caller's warm-up; returns the profile.
 */
export async function profileTrainingStep(
  model: TrainableClassifier,
  opt: P.optim.Optimizer,
  x: P.Tensor,
  y: P.Tensor,
  precision: 'float32' | 'bfloat16' = 'float32',
): Promise<P.Profile> {
  P.profiler.start({ shapes: true });
  let loss: P.Tensor | null = null;
  let profile: P.Profile;
  // Stopped whatever happens, so that a failed step leaves no profile recording
  // (its per-op marks would slow every later measurement).
  try {
    loss = P.profiler.scope('forward', () => P.tidy(() => P.crossEntropy(P.autocast(precision, () => model.forward(x).logits), y)));
    loss.backward();
    P.profiler.scope('optimizer', () => {
      opt.step();
      opt.zeroGrad();
    });
  } finally {
    profile = P.profiler.stop();
  }
  await loss.data();
  loss.dispose();
  return profile;
}
