// Image files to 8-bit RGB through sharp, as HF's load_image hands images to its
// processors (PIL open + exif_transpose + convert('RGB')): grey expanded, alpha
// dropped, 16-bit to its high byte, CMYK to sRGB, EXIF orientation applied; corrupt
// files are errors naming the file; PNG output and atomic writes.
import test from 'ava';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeImage, encodePngRgb, writeFileAtomic } from '../models/image-io.js';

const tmp = mkdtempSync(join(tmpdir(), 'perceiver-image-io-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const W = 6;
const H = 4;
/** Smooth colours (so a JPEG at quality 100 stays within a few levels). */
const rgb = Buffer.alloc(W * H * 3);
for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) rgb[(y * W + x) * 3 + c] = 40 + 30 * x + 10 * y + 20 * c;
const raw = (buf: Buffer | Uint16Array, channels: 1 | 2 | 3 | 4) => sharp(buf, { raw: { width: W, height: H, channels } });
const maxDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test('an 8-bit RGB PNG decodes exactly, from a path or from bytes', async (t) => {
  const png = await raw(rgb, 3).png().toBuffer();
  const path = join(tmp, 'rgb.png');
  writeFileSync(path, png);
  for (const src of [path, png]) {
    const d = await decodeImage(src);
    t.deepEqual([d.height, d.width, d.format, d.sourceChannels, d.sourceDepth, d.orientation], [H, W, 'png', 3, 'uchar', 1]);
    t.deepEqual(Buffer.from(d.data), rgb);
  }
});

test('RGBA drops the alpha channel (no compositing, as PIL convert("RGB")); grey becomes R = G = B', async (t) => {
  const rgba = Buffer.alloc(W * H * 4);
  for (let p = 0; p < W * H; p++) {
    rgba.set(rgb.subarray(3 * p, 3 * p + 3), 4 * p);
    rgba[4 * p + 3] = p * 10;
  }
  const a = await decodeImage(await raw(rgba, 4).png().toBuffer());
  t.is(a.sourceChannels, 4);
  t.deepEqual(Buffer.from(a.data), rgb);
  const grey = Buffer.from(Array.from({ length: W * H }, (_, i) => i * 9));
  const g = await decodeImage(await raw(grey, 1).toColourspace('b-w').png().toBuffer());
  t.is(g.sourceChannels, 1);
  for (let p = 0; p < W * H; p++) t.deepEqual(Array.from(g.data.subarray(3 * p, 3 * p + 3)), [grey[p], grey[p], grey[p]]);
});

test('16-bit PNGs (RGB and grey) keep the high byte of each sample', async (t) => {
  const v16 = [0, 255, 256, 383, 384, 32767, 32768, 65535, 1000, 60000, 12345, 54321];
  const rgb16 = Uint16Array.from({ length: W * H * 3 }, (_, i) => v16[i % v16.length]);
  const d = await decodeImage(await raw(rgb16, 3).toColourspace('rgb16').png().toBuffer());
  t.is(d.sourceDepth, 'ushort');
  t.deepEqual(Array.from(d.data), Array.from(rgb16, (v) => v >> 8));
  const grey16 = Uint16Array.from({ length: W * H }, (_, i) => i * 2800);
  const g = await decodeImage(await raw(grey16, 1).toColourspace('grey16').png().toBuffer());
  t.deepEqual(Array.from(g.data.filter((_, i) => i % 3 === 0)), Array.from(grey16, (v) => v >> 8));
});

test('JPEG decodes close to the source; a CMYK JPEG is converted to sRGB', async (t) => {
  const jpeg = await decodeImage(await raw(rgb, 3).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer());
  t.is(jpeg.format, 'jpeg');
  t.true(maxDiff(jpeg.data, rgb) <= 4, `max |diff| ${maxDiff(jpeg.data, rgb)}`);
  const cmyk = await decodeImage(await raw(rgb, 3).toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer());
  t.deepEqual([cmyk.sourceChannels, cmyk.sourceSpace], [4, 'cmyk']);
  t.is(cmyk.data.length, W * H * 3);
  // Through two ICC conversions (sRGB -> CMYK -> sRGB) colours come back approximately.
  const mean = cmyk.data.reduce((s, v, i) => s + Math.abs(v - rgb[i]), 0) / rgb.length;
  t.true(mean < 20, `mean |diff| ${mean.toFixed(1)}`);
});

test('EXIF orientation is applied: orientation 6 (rotate 90° clockwise) swaps height and width', async (t) => {
  const jpeg = await raw(rgb, 3).withMetadata({ orientation: 6 }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer();
  const d = await decodeImage(jpeg);
  t.is(d.orientation, 6);
  t.deepEqual([d.height, d.width], [W, H]);
  // Rotated clockwise: output (y, x) is source (H - 1 - x, y).
  const rotated = new Uint8Array(W * H * 3);
  for (let y = 0; y < W; y++) for (let x = 0; x < H; x++) for (let c = 0; c < 3; c++) rotated[(y * H + x) * 3 + c] = rgb[((H - 1 - x) * W + y) * 3 + c];
  t.true(maxDiff(d.data, rotated) <= 4, `max |diff| ${maxDiff(d.data, rotated)}`);
});

test('missing, corrupt and truncated files fail with the file named', async (t) => {
  await t.throwsAsync(decodeImage(join(tmp, 'nope.png')), { message: /image '.*nope\.png' does not exist/ });
  await t.throwsAsync(decodeImage(tmp), { message: /is not a file/ });
  const junk = join(tmp, 'junk.jpg');
  writeFileSync(junk, 'this is not an image');
  await t.throwsAsync(decodeImage(junk), { message: /cannot decode image '.*junk\.jpg': .*unsupported image format/ });
  const jpeg = await raw(rgb, 3).jpeg().toBuffer();
  const cut = join(tmp, 'cut.jpg');
  writeFileSync(cut, jpeg.subarray(0, jpeg.length - 40));
  await t.throwsAsync(decodeImage(cut), { message: /cannot decode image '.*cut\.jpg': / });
  await t.throwsAsync(decodeImage(''), { message: /argument 'src' must be a file path or bytes/ });
  await t.throwsAsync(decodeImage(42 as unknown as string), { message: /argument 'src' must be a file path or a Uint8Array, got number/ });
});

test('encodePngRgb round-trips through decodeImage; writeFileAtomic leaves no temporary file', async (t) => {
  const png = await encodePngRgb(rgb, H, W);
  t.deepEqual(Buffer.from((await decodeImage(png)).data), rgb);
  const dir = mkdtempSync(join(tmp, 'atomic-'));
  await writeFileAtomic(join(dir, 'out.png'), png);
  t.deepEqual(readdirSync(dir), ['out.png']);
  await t.throwsAsync(writeFileAtomic(join(dir, 'missing', 'x.png'), png), { message: /output folder '.*missing' does not exist/ });
  // A link is followed (the file it names replaced, the link kept); a device is not replaced.
  writeFileSync(join(dir, 'real.png'), 'old');
  symlinkSync('real.png', join(dir, 'link.png'));
  await writeFileAtomic(join(dir, 'link.png'), png);
  t.true(lstatSync(join(dir, 'link.png')).isSymbolicLink());
  t.deepEqual(readFileSync(join(dir, 'real.png')), png);
  await t.throwsAsync(writeFileAtomic('/dev/null', png), { message: "'/dev/null' is a character device, not a regular file: refusing to replace it" });
  t.deepEqual(readdirSync(dir).sort(), ['link.png', 'out.png', 'real.png']);
  await t.throwsAsync(encodePngRgb(rgb, H, W + 1), { message: /encodePngRgb: 72 bytes, expected 4x7x3/ });
});
