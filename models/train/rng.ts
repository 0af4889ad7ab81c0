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

const MASK64 = (1n << 64n) - 1n;

/** splitmix64's finaliser (Stafford's mix13): a bijection on 64-bit values in which every input bit moves every output bit. */
function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * The seed of a run's stream number `counter` (an epoch's data order, a step's
 * augmentation, ...), `k` telling the kinds of stream apart: a 53-bit hash of
 * (seed, k, counter). Streams of different (k, counter) are independent for every
 * seed: (k, counter) is packed into one 64-bit word, which goes through a bijection
 * keyed by the hashed seed, so for a given seed two pairs collide only where the
 * 64-bit results agree in their low 53 bits (chance 2^-53). The older
 * low32(seed * k + counter) gave every k the same stream at seed 0 (epoch e's data
 * order was step e's augmentation), and k1 * seed + c1 = k2 * seed + c2 pairs for
 * others. BigInt: once per epoch or step, exactness over speed.
 */
export function streamSeed(seed: number, k: number, counter: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`streamSeed: argument 'seed' must be an integer in [0, 2^53), got ${String(seed)}`);
  // k and counter share one 64-bit word, 32 bits each, which keeps the packing one to one.
  if (!Number.isSafeInteger(k) || k < 0 || k >= 2 ** 32) throw new RangeError(`streamSeed: argument 'k' must be an integer in [0, 2^32), got ${String(k)}`);
  // 2^32 steps would take years: a counter past that is a caller's bug, not a long run.
  if (!Number.isSafeInteger(counter) || counter < 0 || counter >= 2 ** 32) throw new RangeError(`streamSeed: argument 'counter' must be an integer in [0, 2^32), got ${String(counter)}`);
  // The golden-ratio increment keeps seed 0 off mix64's fixed point at 0.
  const key = mix64((BigInt(seed) + 0x9e3779b97f4a7c15n) & MASK64);
  const word = (BigInt(k) << 32n) | BigInt(counter);
  return Number(mix64(key ^ word) & ((1n << 53n) - 1n));
}

/**
 * The streams of checkpoints written before streamSeed became a hash (their
 * trainer.json has no `streams` field): the low 32 bits of seed * k + counter, plus the
 * seed's high bits. A run resumed from one keeps drawing these, so that its epoch goes
 * on in the same order (a new order mid-epoch would train some images twice and skip
 * others). Seed 0 gives every k the same stream: why it was replaced.
 */
export function legacyStreamSeed(seed: number, k: number, counter: number): number {
  const low = (Math.imul(seed >>> 0, k) + counter) >>> 0;
  return Math.floor(seed / 2 ** 32) * 2 ** 32 + low;
}
