// The training report picture: loss and test-accuracy curves over steps, and a grid of
// test images with their predicted labels (green when right, red when wrong), drawn
// into an RGB raster with a 3x5 digit font and written as PNG. No plotting library:
// the picture is simple and the project ships no canvas.
import { encodePng } from '../flow-vis.js';

const FONT: Record<string, string[]> = {
  '0': ['111', '101', '101', '101', '111'],
  '1': ['010', '110', '010', '010', '111'],
  '2': ['111', '001', '111', '100', '111'],
  '3': ['111', '001', '111', '001', '111'],
  '4': ['101', '101', '111', '001', '001'],
  '5': ['111', '100', '111', '001', '111'],
  '6': ['111', '100', '111', '101', '111'],
  '7': ['111', '001', '010', '010', '010'],
  '8': ['111', '101', '111', '101', '111'],
  '9': ['111', '101', '111', '001', '111'],
  '.': ['000', '000', '000', '000', '010'],
  '%': ['101', '001', '010', '100', '101'],
  ' ': ['000', '000', '000', '000', '000'],
};

type RGB = [number, number, number];

class Canvas {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }
  set(x: number, y: number, c: RGB): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (Math.floor(y) * this.width + Math.floor(x)) * 3;
    this.data[i] = c[0];
    this.data[i + 1] = c[1];
    this.data[i + 2] = c[2];
  }
  rect(x0: number, y0: number, w: number, h: number, c: RGB): void {
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) this.set(x, y, c);
  }
  line(x0: number, y0: number, x1: number, y1: number, c: RGB): void {
    const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    for (let i = 0; i <= n; i++) {
      const x = x0 + ((x1 - x0) * i) / n;
      const y = y0 + ((y1 - y0) * i) / n;
      this.set(x, y, c);
      this.set(x, y + 1, c);
    }
  }
  text(s: string, x: number, y: number, scale: number, c: RGB): void {
    for (const ch of s) {
      const g = FONT[ch] ?? FONT[' '];
      g.forEach((row, r) => [...row].forEach((bit, k) => bit === '1' && this.rect(x + k * scale, y + r * scale, scale, scale, c)));
      x += 4 * scale;
    }
  }
}

/** A line plot of (x, y) points into a box of the canvas, axes in grey, min/max labels. */
function plot(cv: Canvas, x0: number, y0: number, w: number, h: number, pts: [number, number][], c: RGB, yRange?: [number, number]): void {
  cv.line(x0, y0 + h, x0 + w, y0 + h, [160, 160, 160]);
  cv.line(x0, y0, x0, y0 + h, [160, 160, 160]);
  if (pts.length === 0) return;
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [xmin, xmax] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const [ymin, ymax] = yRange ?? [Math.min(...ys), Math.max(...ys) + 1e-9];
  const px = (x: number) => x0 + ((x - xmin) / (xmax - xmin)) * w;
  const py = (y: number) => y0 + h - ((Math.min(Math.max(y, ymin), ymax) - ymin) / (ymax - ymin)) * h;
  for (let i = 1; i < pts.length; i++) cv.line(px(pts[i - 1][0]), py(pts[i - 1][1]), px(pts[i][0]), py(pts[i][1]), c);
  if (pts.length === 1) cv.rect(px(pts[0][0]) - 2, py(pts[0][1]) - 2, 5, 5, c);
  cv.text(ymax.toFixed(2), x0 + 4, y0 + 2, 2, [90, 90, 90]);
  cv.text(ymin.toFixed(2), x0 + 4, y0 + h - 12, 2, [90, 90, 90]);
}

export interface ReportInput {
  losses: { step: number; loss: number }[];
  accuracy: { step: number; top1: number }[];
  /** Grey images in [0, 1], each h x w, with true and predicted labels. */
  samples: { pixels: Float32Array; height: number; width: number; label: number; predicted: number }[];
}

/** The report as PNG bytes: loss (blue) and test accuracy (green, in %) above, digits below. */
export function trainingReportPng(r: ReportInput): Buffer {
  const cols = 8;
  const cell = 64;
  const rows = Math.ceil(r.samples.length / cols);
  const W = cols * cell + 40;
  const H = 200 + 30 + rows * (cell + 16) + 20;
  const cv = new Canvas(W, H);
  plot(cv, 20, 20, W / 2 - 40, 170, r.losses.map((p) => [p.step, p.loss]), [40, 90, 200]);
  const acc = r.accuracy.map((p) => [p.step, 100 * p.top1] as [number, number]);
  plot(cv, W / 2 + 10, 20, W / 2 - 40, 170, acc, [30, 150, 60], acc.length ? [Math.min(...acc.map((a) => a[1]), 90), 100] : undefined);
  if (acc.length) cv.text(`${acc[acc.length - 1][1].toFixed(2)}%`, W - 110, 196, 2, [30, 150, 60]);
  r.samples.forEach((s, i) => {
    const ox = 20 + (i % cols) * cell;
    const oy = 230 + Math.floor(i / cols) * (cell + 16);
    const k = Math.floor((cell - 8) / Math.max(s.height, s.width));
    for (let y = 0; y < s.height; y++)
      for (let x = 0; x < s.width; x++) {
        const v = 255 - Math.round(255 * Math.min(1, Math.max(0, s.pixels[y * s.width + x])));
        cv.rect(ox + x * k, oy + y * k, k, k, [v, v, v]);
      }
    cv.text(String(s.predicted), ox + 2, oy + s.height * k + 3, 2, s.predicted === s.label ? [30, 150, 60] : [210, 40, 40]);
  });
  return encodePng(cv.data, H, W);
}
