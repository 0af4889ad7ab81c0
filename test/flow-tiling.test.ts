// Tiling large frames into model windows (DeepMind's optical_flow colab), the
// weighted stitching, the per-window patch input, and the flow pictures/files.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import * as P from '../lib/index.js';
import { PerceiverForOpticalFlow } from '../models/index.js';
import { caseConfig, caseDir, loadCaseWeights } from './helpers/hf-fixture.js';
import { computeGridIndices, crc32, encodeFlo, encodePng, estimateFlow, flowToColor, gridRepeats, makeColorWheel, stitchWindows, windowPatches, windowWeights } from '../models/index.js';
import { randomArray } from './helpers/reference.js';

const SINTEL: [number, number] = [436, 1024];
const WINDOW: [number, number] = [368, 496];

/** How many windows cover each pixel. */
function coverage(indices: [number, number][], [H, W]: readonly [number, number], [h, w]: readonly [number, number]): Int32Array {
  const c = new Int32Array(H * W);
  for (const [y0, x0] of indices) for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) c[y * W + x]++;
  return c;
}

/** The DeepMind colab's compute_grid_indices, verbatim in JS (duplicates and order kept). */
function colabGrid([H, W]: readonly [number, number], [h, w]: readonly [number, number], o = 20): [number, number][] {
  const ys: number[] = [];
  for (let y = 0; y < H; y += h - o) ys.push(y);
  const xs: number[] = [];
  for (let x = 0; x < W; x += w - o) xs.push(x);
  ys[ys.length - 1] = H - h;
  xs[xs.length - 1] = W - w;
  return ys.flatMap((y) => xs.map((x) => [y, x] as [number, number]));
}

test('grid: the colab windows for Sintel-sized frames', (t) => {
  const g = computeGridIndices(SINTEL, WINDOW);
  t.deepEqual(g, [
    [0, 0],
    [0, 476],
    [0, 528],
    [68, 0],
    [68, 476],
    [68, 528],
  ]);
  t.deepEqual(g, colabGrid(SINTEL, WINDOW));
});

test('grid covers the image, windows inside it, neighbours overlap by >= 20', (t) => {
  for (const shape of [SINTEL, WINDOW, [368, 497], [369, 496], [400, 560], [700, 1500], [1080, 1920]] as [number, number][]) {
    const g = computeGridIndices(shape, WINDOW, 20);
    const cov = coverage(g, shape, WINDOW);
    t.true(cov.every((c) => c > 0), `${shape}: every pixel covered`);
    for (const [y, x] of g) t.true(y >= 0 && x >= 0 && y + WINDOW[0] <= shape[0] && x + WINDOW[1] <= shape[1]);
    const ys = [...new Set(g.map((p) => p[0]))];
    const xs = [...new Set(g.map((p) => p[1]))];
    t.is(g.length, ys.length * xs.length, 'no repeated windows');
    for (const [starts, size] of [
      [ys, WINDOW[0]],
      [xs, WINDOW[1]],
    ] as [number[], number][]) {
      t.is(starts[0], 0);
      for (let i = 1; i < starts.length; i++) t.true(starts[i - 1] + size - starts[i] >= 20, `${shape}: overlap ${starts[i - 1] + size - starts[i]}`);
    }
    // The same set of windows as the colab (which may repeat one, and whose next-to-last
    // window may stick out past the edge: clamped here).
    const colab = colabGrid(shape, WINDOW).map(([y, x]) => [Math.min(y, shape[0] - WINDOW[0]), Math.min(x, shape[1] - WINDOW[1])]);
    t.deepEqual(new Set(g.map(String)), new Set(colab.map(String)), `${shape}: as the colab`);
  }
  t.deepEqual(computeGridIndices(WINDOW, WINDOW), [[0, 0]], 'one window, not the colab repeated [0, 0]');
  t.deepEqual(computeGridIndices([12, 16], [12, 16], 6), [[0, 0]]);
  // Rows: 0, 6, 12 -> 8 (colab: 0, 6, 12, 8 with 12 past the edge); columns 0, 10, 20 -> 14.
  t.deepEqual(computeGridIndices([20, 30], [12, 16], 6), [
    [0, 0],
    [0, 10],
    [0, 14],
    [6, 0],
    [6, 10],
    [6, 14],
    [8, 0],
    [8, 10],
    [8, 14],
  ]);
  t.true(colabGrid([700, 1000], WINDOW).some(([y]) => y + WINDOW[0] > 700), 'the colab grid sticks out at 700 rows');
  t.deepEqual([...new Set(computeGridIndices([700, 1000], WINDOW).map((p) => p[0]))], [0, 332]);
});

test('weights: positive, 1 on the border, ramping up by 1 per pixel inwards', (t) => {
  const [h, w] = [9, 12];
  const wt = windowWeights([h, w]);
  t.is(wt.length, h * w);
  t.true(wt.every((v) => v >= 1));
  t.is(wt[0], 1);
  t.is(wt[w - 1], 1);
  t.is(wt[(h - 1) * w], 1);
  t.is(wt[1 * w + 1], 2);
  t.is(wt[4 * w + 5], 5, 'centre row: min(5, 5, 6, 7)');
  const big = windowWeights(WINDOW);
  t.is(big.reduce((a, b) => Math.max(a, b), 0), 184, 'peak min(184, 248)');
  t.true(big.every((v) => v > 0));
});

test('stitching a constant flow gives the constant back exactly', (t) => {
  for (const [shape, win, o] of [
    [SINTEL, WINDOW, 20],
    [[50, 70], [12, 16], 6],
  ] as [[number, number], [number, number], number][]) {
    const g = computeGridIndices(shape, win, o);
    for (const [u, v] of [
      [0.1, -3.7],
      [Math.fround(1 / 3), 1e-7],
      [0, 0],
    ]) {
      const piece = new Float32Array(win[0] * win[1] * 2);
      for (let i = 0; i < piece.length; i += 2) {
        piece[i] = u;
        piece[i + 1] = v;
      }
      const out = stitchWindows(
        g.map(() => piece),
        g,
        shape,
        win,
      );
      t.is(out.length, shape[0] * shape[1] * 2);
      let bad = 0;
      for (let i = 0; i < out.length; i += 2) if (out[i] !== Math.fround(u) || out[i + 1] !== Math.fround(v)) bad++;
      t.is(bad, 0, `${shape} (${u}, ${v})`);
    }
  }
});

test('stitching is the weighted average (plain-JS reference), channels generic', (t) => {
  const shape: [number, number] = [20, 30];
  const win: [number, number] = [12, 16];
  const g = computeGridIndices(shape, win, 6);
  const pieces = g.map((_, i) => randomArray(win[0] * win[1] * 3, 10 + i));
  const out = stitchWindows(pieces, g, shape, win, 3);
  const wt = windowWeights(win);
  let worst = 0;
  for (let y = 0; y < shape[0]; y++)
    for (let x = 0; x < shape[1]; x++)
      for (let c = 0; c < 3; c++) {
        let s = 0;
        let n = 0;
        g.forEach(([y0, x0], i) => {
          if (y < y0 || y >= y0 + win[0] || x < x0 || x >= x0 + win[1]) return;
          const k = (y - y0) * win[1] + (x - x0);
          s += wt[k] * pieces[i][k * 3 + c];
          n += wt[k];
        });
        worst = Math.max(worst, Math.abs(out[(y * shape[1] + x) * 3 + c] - s / n));
      }
  t.true(worst < 1e-6, `max |diff| ${worst}`);
  // A pixel covered by one window only takes that window's value.
  t.is(out[0], pieces[0][0]);
});

test("estimateFlow weighs a window the colab's list repeats as often as the colab (18 rows, window 12, overlap 6: rows 0, 6, 6)", async (t) => {
  const [H, W] = [18, 16];
  const win: [number, number] = [12, 16];
  // Columns 0, 0 (one window wide), rows 0, 6, 6: the lower window counts twice as much.
  t.deepEqual(colabGrid([H, W], win, 6), [
    [0, 0],
    [0, 0],
    [6, 0],
    [6, 0],
    [6, 0],
    [6, 0],
  ]);
  t.deepEqual(computeGridIndices([H, W], win, 6), [
    [0, 0],
    [6, 0],
  ]);
  t.deepEqual(gridRepeats([H, W], win, 6), [2, 4]);
  t.deepEqual(gridRepeats([12, 16], win, 6), [4], 'one window: the colab runs [0, 0] four times (no change to the average)');
  const model = new PerceiverForOpticalFlow(caseConfig('optical_flow'), { device: 'cpu' });
  await loadCaseWeights('optical_flow', model);
  const frames = Uint8Array.from({ length: 2 * H * W * 3 }, (_, i) => (i * 73 + 11) % 256);
  // The colab's compute_optical_flow: every entry of its list run and added, repeats included.
  const acc = new Float64Array(H * W * 2);
  const count = new Float64Array(H * W);
  const wt = windowWeights(win);
  for (const [y0, x0] of colabGrid([H, W], win, 6)) {
    const input = P.tensor(windowPatches(frames, [H, W], [y0, x0], win), [1, 2, 27, ...win], { device: 'cpu' });
    const { logits } = model.forward(input);
    const piece = await logits.data();
    for (const x of [input, logits]) x.dispose();
    for (let y = 0; y < win[0]; y++)
      for (let x = 0; x < win[1]; x++) {
        const k = y * win[1] + x;
        const p = (y0 + y) * W + x0 + x;
        count[p] += wt[k];
        for (let c = 0; c < 2; c++) acc[p * 2 + c] += wt[k] * piece[k * 2 + c] * 20;
      }
  }
  const { flow } = await estimateFlow(model, frames, [H, W], { overlap: 6, device: 'cpu' });
  model.dispose();
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < flow.length; i++) {
    const want = acc[i] / count[i >> 1];
    worst = Math.max(worst, Math.abs(flow[i] - want));
    scale = Math.max(scale, Math.abs(want));
  }
  t.true(worst <= 1e-5 * Math.max(1, scale), `max |diff| ${worst} (flow up to ${scale})`);
});

test('window patches: HF layout [2, 27, h, w], (ky kx c) channels, [-1, 1], zeros outside the window', (t) => {
  const [H, W] = [5, 7];
  const frames = new Float32Array(2 * H * W * 3).map((_, i) => i % 256);
  const at = (f: number, y: number, x: number, c: number): number => (frames[((f * H + y) * W + x) * 3 + c] / 255) * 2 - 1;
  const [h, w] = [3, 4];
  const [y0, x0] = [1, 2];
  const p = windowPatches(frames, [H, W], [y0, x0], [h, w]);
  t.is(p.length, 2 * 27 * h * w);
  let bad = 0;
  for (let f = 0; f < 2; f++)
    for (let ky = 0; ky < 3; ky++)
      for (let kx = 0; kx < 3; kx++)
        for (let c = 0; c < 3; c++)
          for (let y = 0; y < h; y++)
            for (let x = 0; x < w; x++) {
              const sy = y + ky - 1;
              const sx = x + kx - 1;
              const want = sy < 0 || sy >= h || sx < 0 || sx >= w ? 0 : at(f, y0 + sy, x0 + sx, c);
              const got = p[(((f * 27 + (ky * 3 + kx) * 3 + c) * h + y) * w) + x];
              if (Math.abs(got - want) > 1e-7) bad++;
            }
  t.is(bad, 0);
});

test('flow colours: Middlebury wheel, white at rest, red to the right', (t) => {
  const wheel = makeColorWheel();
  t.is(wheel.length, 165);
  t.deepEqual([...wheel.subarray(0, 3)], [255, 0, 0]);
  t.deepEqual([...wheel.subarray(15 * 3, 15 * 3 + 3)], [255, 255, 0], 'yellow after 15');
  t.deepEqual([...wheel.subarray(21 * 3, 21 * 3 + 3)], [0, 255, 0], 'green after 15 + 6');
  t.deepEqual([...wheel.subarray(25 * 3, 25 * 3 + 3)], [0, 255, 255], 'cyan');
  t.deepEqual([...wheel.subarray(36 * 3, 36 * 3 + 3)], [0, 0, 255], 'blue');
  t.deepEqual([...wheel.subarray(49 * 3, 49 * 3 + 3)], [255, 0, 255], 'magenta');
  // [0 flow, right, left, down, up]
  const rgb = flowToColor(Float32Array.from([0, 0, 1, 0, -1, 0, 0, 1, 0, -1]), 1, 5);
  t.deepEqual([...rgb.subarray(0, 3)], [255, 255, 255]);
  const right = [...rgb.subarray(3, 6)];
  t.true(right[0] === 255 && right[1] === 0 && right[2] < 60, `right is red: ${right}`);
  const left = [...rgb.subarray(6, 9)];
  t.true(left[0] === 0 && left[1] > 200 && left[2] > 200, `left is cyan: ${left}`);
  const up = [...rgb.subarray(12, 15)];
  t.true(up[2] > 200 && up[1] < 60, `up is blue-violet: ${up}`);
  const dim = flowToColor(Float32Array.from([2, 0]), 1, 1, { maxMagnitude: 1 });
  t.is(dim[0], Math.floor(255 * 0.75), 'beyond maxMagnitude: 75%');
  t.throws(() => flowToColor(new Float32Array(3), 1, 2), { instanceOf: RangeError });
  t.throws(() => flowToColor(Float32Array.from([2, 0]), 1, 1, { maxMag: 1 } as never), {
    instanceOf: TypeError,
    message: /^flowToColor: argument 'opts' has unknown option 'maxMag' \(known: maxMagnitude\)$/,
  });
});

test('PNG: valid chunks and CRCs, pixels read back; .flo header', (t) => {
  t.is(crc32(Buffer.from('123456789')), 0xcbf43926, 'CRC-32 check value');
  const [h, w] = [3, 4];
  const rgb = Uint8Array.from({ length: h * w * 3 }, (_, i) => (i * 37) % 256);
  const png = encodePng(rgb, h, w);
  t.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let off = 8;
  const chunks: { type: string; data: Buffer }[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('ascii', off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    t.is(png.readUInt32BE(off + 8 + len), crc32(png.subarray(off + 4, off + 8 + len)), `${type} CRC`);
    chunks.push({ type, data });
    off += 12 + len;
  }
  t.deepEqual(
    chunks.map((c) => c.type),
    ['IHDR', 'IDAT', 'IEND'],
  );
  t.is(chunks[0].data.readUInt32BE(0), w);
  t.is(chunks[0].data.readUInt32BE(4), h);
  t.deepEqual([...chunks[0].data.subarray(8)], [8, 2, 0, 0, 0]);
  const raw = inflateSync(chunks[1].data);
  t.is(raw.length, h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    t.is(raw[y * (1 + 3 * w)], 0, 'filter none');
    t.deepEqual([...raw.subarray(y * (1 + 3 * w) + 1, (y + 1) * (1 + 3 * w))], [...rgb.subarray(y * 3 * w, (y + 1) * 3 * w)]);
  }
  const flo = encodeFlo(Float32Array.from([1.5, -2, 0.25, 8]), 1, 2);
  t.is(flo.toString('ascii', 0, 4), 'PIEH');
  t.is(flo.readInt32LE(4), 2);
  t.is(flo.readInt32LE(8), 1);
  t.deepEqual([0, 1, 2, 3].map((i) => flo.readFloatLE(12 + 4 * i)), [1.5, -2, 0.25, 8]);
});

test('bad arguments give clear errors', (t) => {
  t.throws(() => computeGridIndices([300, 400], WINDOW), { instanceOf: RangeError, message: /smaller than the window/ });
  t.throws(() => computeGridIndices([20, 20], [12, 16], 12), { instanceOf: RangeError, message: /overlap \(12\) must be less than the window/ });
  t.throws(() => computeGridIndices([20, 20], [12, 16], -1), { instanceOf: RangeError, message: /minOverlap/ });
  t.throws(() => computeGridIndices([0, 20], [12, 16]), { instanceOf: RangeError, message: /argument 'imageShape\[0\]' must be an integer >= 1, got number 0/ });
  t.throws(() => windowWeights([0, 3]), { instanceOf: RangeError });
  t.throws(() => stitchWindows([new Float32Array(4)], [[0, 0]], [2, 2], [2, 2]), { instanceOf: RangeError, message: /4 values, expected 2x2x2 = 8/ });
  t.throws(() => stitchWindows([new Float32Array(8)], [[1, 0]], [2, 2], [2, 2]), { instanceOf: RangeError, message: /outside/ });
  t.throws(() => stitchWindows([new Float32Array(8)], [[0, 0]], [2, 3], [2, 2]), { instanceOf: RangeError, message: /covered by no window/ });
  t.throws(() => stitchWindows([], [[0, 0]], [2, 2], [2, 2]), { instanceOf: RangeError, message: /0 pieces for 1 windows/ });
  t.throws(() => windowPatches(new Float32Array(5), [2, 2], [0, 0], [2, 2]), { instanceOf: RangeError, message: /expected 2x2x2x3/ });
});

const DEMO = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'demo-flow.js');

function demo(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DEMO, ...args], { env: { ...process.env, PERCEIVER_DEVICE: 'cpu' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

test.serial('demo-flow on the HF fixture: one-window frames give the model output x 20; tiled frames write a PNG and .flo', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'perceiver-flow-'));
  try {
    // Synthetic 12x16 frames: one window of the fixture's train_size.
    const r1 = await demo(['--model', caseDir('optical_flow'), '--size', '12x16', '--out', join(tmp, 'one'), '--flo']);
    t.is(r1.code, 0, r1.stderr);
    t.regex(r1.stdout, /1 window\(s\) at \(0,0\)/);
    const flo = readFileSync(join(tmp, 'one.flo'));
    t.is(flo.length, 12 + 12 * 16 * 2 * 4);
    const got = new Float32Array(flo.buffer.slice(flo.byteOffset + 12, flo.byteOffset + flo.length));
    t.true(got.every(Number.isFinite));

    // Frames from a file, one window: the stitched flow is exactly the model's output on
    // windowPatches times the colab's FLOW_SCALE_FACTOR 20.

    const [H, W] = [12, 16];
    const frames = Uint8Array.from({ length: 2 * H * W * 3 }, (_, i) => (i * 29 + 7) % 256);
    const ft = P.tensor(frames, [2, H, W, 3], { dtype: 'uint8' });
    await P.saveSafetensors(join(tmp, 'frames.safetensors'), { frames: ft });
    ft.dispose();
    const r2 = await demo(['--model', caseDir('optical_flow'), '--frames', join(tmp, 'frames.safetensors'), '--out', join(tmp, 'two'), '--flo']);
    t.is(r2.code, 0, r2.stderr);
    const flo2 = readFileSync(join(tmp, 'two.flo'));
    const viaDemo = new Float32Array(flo2.buffer.slice(flo2.byteOffset + 12, flo2.byteOffset + flo2.length));
    // On the CPU, as the demo child (PERCEIVER_DEVICE=cpu): the comparison is exact.
    const model = new PerceiverForOpticalFlow(caseConfig('optical_flow'), { device: 'cpu' });
    await loadCaseWeights('optical_flow', model);
    const input = P.tensor(windowPatches(frames, [H, W], [0, 0], [H, W]), [1, 2, 27, H, W], { device: 'cpu' });
    const { logits } = model.forward(input);
    const want = Array.from(await logits.data(), (v) => Math.fround(v * 20));
    logits.dispose();
    input.dispose();
    model.dispose();
    t.deepEqual(Array.from(viaDemo), want);

    // Larger frames: several windows, a valid PNG of the frame size.
    const r3 = await demo(['--model', caseDir('optical_flow'), '--size', '30x40', '--out', join(tmp, 'three')]);
    t.is(r3.code, 0, r3.stderr);
    t.regex(r3.stdout, /16 window\(s\)/);
    const png = readFileSync(join(tmp, 'three.png'));
    t.is(png.readUInt32BE(16), 40);
    t.is(png.readUInt32BE(20), 30);

    const bad = await demo(['--model', caseDir('optical_flow'), '--size', '8x40', '--out', join(tmp, 'bad')]);
    t.not(bad.code, 0);
    t.regex(bad.stderr, /smaller than the model's window/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('tiling and flow pictures check their arguments: type, name, expected and what came', (t) => {
  const cases: [() => unknown, RegExp][] = [
    [() => computeGridIndices(undefined as never), /^computeGridIndices: argument 'imageShape' must be \[H, W\] \(2 integers >= 1\), got undefined/],
    [() => computeGridIndices([20, 30], [12, 16], NaN), /^computeGridIndices: argument 'minOverlap' must be an integer >= 0, got number NaN/],
    [() => windowWeights([1.5, 2]), /^windowWeights: argument 'patchSize\[0\]' must be an integer >= 1, got number 1.5/],
    [() => stitchWindows('x' as never, [[0, 0]], [2, 2], [2, 2]), /^stitchWindows: argument 'pieces' must be an array of per-window flows, got 'x'/],
    [() => stitchWindows([new Float32Array(8)], [5 as never], [2, 2], [2, 2]), /^stitchWindows: argument 'indices\[0\]' must be \[y, x\] \(2 integers >= 0\), got number 5/],
    [() => stitchWindows([null as never], [[0, 0]], [2, 2], [2, 2]), /^stitchWindows: argument 'pieces\[0\]' must be window 0's flow/],
    [() => windowPatches(null as never, [2, 2], [0, 0], [2, 2]), /^windowPatches: argument 'frames' must be the two frames/],
    [() => windowPatches(new Float32Array(24), [2, 2], ['a', 0] as never, [2, 2]), /^windowPatches: argument 'origin\[0\]' must be an integer >= 0, got 'a'/],
    [() => flowToColor(null as never, 2, 3), /^flowToColor: argument 'flow' must be an array or typed array of \[H, W, 2\] values, got null/],
    [() => flowToColor(new Float32Array(12), 2, 3, null as never), /^flowToColor: argument 'opts' must be an object, got null/],
    [() => flowToColor(new Float32Array(12), 2, 3, { maxMagnitude: 'x' as never }), /^flowToColor: argument 'opts.maxMagnitude' must be a finite number, got 'x'/],
    [() => encodeFlo(new Float32Array(12), 'x' as never, 3), /^encodeFlo: argument 'height' must be an integer >= 1, got 'x'/],
    [() => encodeFlo(undefined as never, 2, 3), /^encodeFlo: argument 'flow' must be an array or typed array/],
    [() => encodePng([0, 0, 0] as never, 1, 1), /^encodePng: argument 'rgb' must be a Uint8Array of \[H, W, 3\] bytes, got array of length 3/],
    [() => encodePng(new Uint8Array(9), 1.5, 2), /^encodePng: argument 'height' must be an integer >= 1, got number 1.5/],
    [() => crc32(undefined as never), /^crc32: argument 'buf' must be a Uint8Array \(or Buffer\), got undefined/],
  ];
  for (const [call, message] of cases) t.throws(call, { message }, String(message));
});
