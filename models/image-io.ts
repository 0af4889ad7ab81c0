// Image files to and from 8-bit RGB arrays, through sharp (libvips, prebuilt per
// platform: no install script, no compiler). What HF's load_image gives a Perceiver
// image processor, PIL's Image.open + exif_transpose + convert('RGB'):
//   - EXIF orientation applied (a phone photo comes out upright);
//   - grey -> R = G = B; alpha dropped, not composited (PIL's convert('RGB'));
//   - 16-bit RGB(A) reduced to its high byte (PIL's too);
//   - only the first frame / page of an animated or multi-page file.
// Not PIL's, on purpose: embedded ICC profiles and CMYK are converted to sRGB by
// libvips' colour management, where PIL keeps an ICC-tagged file's raw values and
// converts CMYK naively (a Display P3 PNG or JPEG differs from PIL by up to 66 levels,
// 6-7 on average; a PIL-written CMYK JPEG by up to 134); 16-bit grey keeps its high
// byte, where PIL's convert('RGB') clips it at 255; BMP is not read (libvips has no
// BMP loader). PNG, JPEG, GIF, WebP and TIFF without a profile decode as PIL does.
// Every failure names the file.
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { loadSharp } from './sharp.js';
import { atomicTarget, removeDeadWritersTemps, systemReason, tempBeside } from '../lib/io/atomic.js';
import type { RgbImage } from './image-processor.js';

export interface DecodedImage extends RgbImage {
  /** The container format sharp detected: 'png', 'jpeg', 'webp', ... */
  format: string;
  /** Channels and colour space stored in the file (before the conversion to RGB). */
  sourceChannels: number;
  sourceSpace: string;
  /** 'uchar' (8-bit), 'ushort' (16-bit), ... */
  sourceDepth: string;
  /** The EXIF orientation that was applied (1 = none). */
  orientation: number;
}

function describe(src: string | Uint8Array): string {
  return typeof src === 'string' ? `'${src}'` : `(${src.byteLength}-byte buffer)`;
}

/** Decodes a PNG, JPEG, WebP, GIF, TIFF, AVIF... file (or its bytes) to upright 8-bit RGB [H, W, 3]. */
export async function decodeImage(src: string | Uint8Array): Promise<DecodedImage> {
  if (typeof src === 'string') {
    if (src === '') throw new TypeError(`decodeImage: argument 'src' must be a file path or bytes, got ''`);
    if (!existsSync(src)) throw new Error(`image ${describe(src)} does not exist`);
    if (!statSync(src).isFile()) throw new Error(`image ${describe(src)} is not a file`);
    // Else sharp reports an unreadable file as an unsupported format.
    try {
      accessSync(src, constants.R_OK);
    } catch (err) {
      throw new Error(`cannot read image ${describe(src)}: ${systemReason(err)}`);
    }
  } else if (!(src instanceof Uint8Array)) throw new TypeError(`decodeImage: argument 'src' must be a file path or a Uint8Array, got ${src === null ? 'null' : typeof src}`);
  const sharp = await loadSharp();
  try {
    // failOn 'error': a truncated or corrupt file is an error, not a half-grey picture.
    const input = sharp(src, { failOn: 'error', limitInputPixels: 2 ** 28 });
    const meta = await input.metadata();
    const { data, info } = await input
      .autoOrient()
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after the conversion to sRGB, got ${info.channels}`);
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      height: info.height,
      width: info.width,
      format: meta.format ?? 'unknown',
      sourceChannels: meta.channels ?? 0,
      sourceSpace: meta.space ?? 'unknown',
      sourceDepth: meta.depth ?? 'unknown',
      orientation: meta.orientation ?? 1,
    };
  } catch (err) {
    const msg = err instanceof Error ? err.message.trim().split('\n')[0] : String(err);
    throw new Error(`cannot decode image ${describe(src)}: ${msg}`);
  }
}

function checkRgb(what: string, rgb: Uint8Array, height: number, width: number): void {
  if (!(rgb instanceof Uint8Array)) throw new TypeError(`${what}: rgb must be a Uint8Array`);
  if (!Number.isSafeInteger(height) || height < 1 || !Number.isSafeInteger(width) || width < 1)
    throw new RangeError(`${what}: height and width must be positive integers, got ${String(height)}x${String(width)}`);
  if (rgb.length !== height * width * 3) throw new RangeError(`${what}: ${rgb.length} bytes, expected ${height}x${width}x3`);
}

/** 8-bit RGB [H, W, 3] -> PNG bytes. */
export async function encodePngRgb(rgb: Uint8Array, height: number, width: number): Promise<Buffer> {
  checkRgb('encodePngRgb', rgb, height, width);
  const sharp = await loadSharp();
  return sharp(rgb, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Writes bytes to path through a temporary file in the same folder and a rename, so a failure never leaves a half-written file. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new TypeError(`writeFileAtomic: argument 'path' must be a file path, got ${JSON.stringify(path)}`);
  const target = atomicTarget(path);
  removeDeadWritersTemps(target);
  const tmp = tempBeside(target);
  try {
    await writeFile(tmp, bytes, { flag: 'wx' });
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new Error(`cannot write '${path}': ${systemReason(err)}`);
  }
}
