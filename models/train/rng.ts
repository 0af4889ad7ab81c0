// A small seeded generator (mulberry32 on a 32-bit state) for data order and
// augmentation: a training run is a pure function of its seed and step, which is what
// makes resume exact.
export class Rng {
  private s: number;

  /** seed: any safe integer (a fraction is floored); seeds below 2^32 keep the streams they always had. */
  constructor(seed: number) {
    if (typeof seed !== 'number' || !Number.isFinite(seed) || !Number.isSafeInteger(Math.floor(seed)))
      throw new RangeError(`Rng: argument 'seed' must be a safe integer (|seed| < 2^53), got ${String(seed)}`);
    const s = Math.floor(seed);
    // Mix the seed so nearby seeds (step, step + 1) start far apart. The low 32 bits
    // go in as they always did; the high ones, folded in only when non-zero (so small
    // seeds keep their streams), keep seeds 2^32 apart from sharing one.
    let h = (s ^ 0x9e3779b9) >>> 0;
    // Seeds in [-2^31, 2^32) went in whole (ToInt32); only those past them have more.
    const high = s >= 2 ** 32 || s < -(2 ** 31) ? Math.floor(s / 2 ** 32) : 0;
    if (high !== 0) h = (h ^ mix32(high >>> 0 ^ 0x7f4a7c15)) >>> 0;
    this.s = mix32(h);
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Gamma(shape, 1) by Marsaglia and Tsang (boosted below shape 1). */
  gamma(shape: number): number {
    if (shape < 1) return this.gamma(shape + 1) * this.next() ** (1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.next();
      if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Beta(alpha, alpha), MixUp's mixing weight. */
  beta(alpha: number): number {
    const a = this.gamma(alpha);
    const b = this.gamma(alpha);
    return a / (a + b);
  }
}

/** murmur3's 32-bit finaliser: a bijection on 32-bit values that spreads every input bit. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The seed of a run's stream number `counter` (an epoch's data order, a step's
 * augmentation, ...), `k` telling the kinds of stream apart: the low 32 bits of
 * seed * k + counter, worked out exactly in 32-bit integer arithmetic (the float
 * product lost the counter to rounding for seeds past 2^53 / k), plus the seed's high
 * bits above them, which Rng folds in. For seeds below 2^32 this is the
 * (seed * k + counter) mod 2^32 the trainer always used, so their runs are unchanged.
 */
export function streamSeed(seed: number, k: number, counter: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`streamSeed: argument 'seed' must be an integer in [0, 2^53), got ${String(seed)}`);
  // 2^32 steps would take years: a counter past that is a caller's bug, not a long run.
  if (!Number.isSafeInteger(counter) || counter < 0 || counter >= 2 ** 32) throw new RangeError(`streamSeed: argument 'counter' must be an integer in [0, 2^32), got ${String(counter)}`);
  const low = (Math.imul(seed >>> 0, k) + counter) >>> 0;
  return Math.floor(seed / 2 ** 32) * 2 ** 32 + low;
}
