/**
 * Decoding with sharp: any supported input → RGB bytes (HWC, uint8) at a requested size,
 * resized to cover it and center-cropped (as PixArt's Resize + CenterCrop does). libvips runs
 * each image on the libuv threadpool, so awaiting several decodes at once decodes in parallel
 * off the main thread.
 *
 * Transparent pixels are composited onto a background (white by default): emoji and icons are
 * drawn on transparency, and the models take RGB.
 */
import { SkipError, messageOf } from './errors.js';
import { loadSharp } from './sharp.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'svg';
export const SUPPORTED_FORMATS: readonly ImageFormat[] = ['png', 'jpeg', 'webp', 'svg'];

/**
 * Pixels an input may declare before it is refused as a decompression bomb (a small file that
 * expands to gigabytes). 8192² RGBA is 256 MiB per image in flight.
 */
export const DEFAULT_MAX_PIXELS = 8192 * 8192;

/** SVG sizes are in CSS pixels at 96 dpi in librsvg terms, but sharp's default density is 72. */
const SVG_BASE_DENSITY = 72;

export interface RGB {
  r: number;
  g: number;
  b: number;
}

export interface DecodeOptions {
  /** Inputs whose width × height exceeds this are skipped (reason 'too-many-pixels'). */
  maxPixels?: number;
  /** Formats accepted; others are skipped as 'unsupported-format'. */
  formats?: readonly string[];
  /** Colour under transparent pixels (0..255 per channel). */
  background?: RGB;
}

/** Size of the input as it will be displayed (after its EXIF orientation). */
export interface ImageInfo {
  format: string;
  width: number;
  height: number;
}

export interface DecodedImage {
  /** height × width × 3 bytes, row-major RGB. */
  pixels: Uint8Array;
  width: number;
  height: number;
  source: ImageInfo;
}

export interface TargetSize {
  width: number;
  height: number;
}

const WHITE: RGB = { r: 255, g: 255, b: 255 };

/**
 * Decodes `bytes` and returns RGB at the size `chooseSize` picks from the input's own size
 * (fixed for square training, or the nearest aspect-ratio bucket). Every failure is a
 * SkipError naming `file`.
 */
export async function decodeImage(
  bytes: Uint8Array,
  file: string,
  chooseSize: (info: ImageInfo) => TargetSize,
  options: DecodeOptions = {},
): Promise<DecodedImage> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const formats = options.formats ?? SUPPORTED_FORMATS;
  if (bytes.byteLength === 0) throw new SkipError('empty-file', file, 'the file has zero bytes');
  const sharp = await loadSharp();
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  let info: ImageInfo;
  try {
    // The header alone is read here (no pixels), so the size check below can name the size.
    const meta = await sharp(input, { limitInputPixels: false }).metadata();
    info = { format: meta.format, width: meta.autoOrient.width, height: meta.autoOrient.height };
  } catch (cause) {
    throw classify(cause, file);
  }
  if (!formats.includes(info.format)) {
    throw new SkipError('unsupported-format', file, `format '${info.format}' is not one of ${formats.join(', ')}`);
  }
  if (!(info.width > 0 && info.height > 0)) throw new SkipError('corrupt-image', file, `size ${info.width}x${info.height}`);
  if (info.width * info.height > maxPixels) {
    throw new SkipError('too-many-pixels', file, `${info.width}x${info.height} exceeds the limit of ${maxPixels} pixels`);
  }

  const target = chooseSize(info);
  // Vector input is rendered at the density that makes it just cover the target, so it is
  // rasterised once at the right scale instead of at 72 dpi and then upsampled.
  const density = info.format === 'svg' ? svgDensity(info, target) : undefined;
  const background = options.background ?? WHITE;
  try {
    const { data, info: out } = await sharp(input, { limitInputPixels: maxPixels, failOn: 'error', autoOrient: true, density })
      .flatten({ background })
      .resize(target.width, target.height, { fit: 'cover', position: 'centre' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (out.channels !== 3 || out.width !== target.width || out.height !== target.height) {
      throw new SkipError('corrupt-image', file, `decoded to ${out.width}x${out.height}x${out.channels}, expected ${target.width}x${target.height}x3`);
    }
    return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: out.width, height: out.height, source: info };
  } catch (cause) {
    throw classify(cause, file);
  }
}

/** Dimensions only (header parse, no pixel decode). */
export async function probeImage(bytes: Uint8Array, file: string): Promise<ImageInfo> {
  if (bytes.byteLength === 0) throw new SkipError('empty-file', file, 'the file has zero bytes');
  const sharp = await loadSharp();
  try {
    const meta = await sharp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { limitInputPixels: false }).metadata();
    return { format: meta.format, width: meta.autoOrient.width, height: meta.autoOrient.height };
  } catch (cause) {
    throw classify(cause, file);
  }
}

function svgDensity(info: ImageInfo, target: TargetSize): number {
  const scale = Math.max(target.width / info.width, target.height / info.height);
  return Math.min(100000, Math.max(1, Math.ceil(SVG_BASE_DENSITY * scale)));
}

/** Maps libvips' messages onto skip reasons (they are the only signal sharp gives). */
function classify(cause: unknown, file: string): SkipError {
  if (cause instanceof SkipError) return cause;
  const message = messageOf(cause).split('\n')[0] ?? '';
  if (/pixel limit/i.test(message)) return new SkipError('too-many-pixels', file, message, { cause });
  if (/unsupported image format/i.test(message)) return new SkipError('unsupported-format', file, message, { cause });
  if (/buffer is empty/i.test(message)) return new SkipError('empty-file', file, message, { cause });
  return new SkipError('corrupt-image', file, message, { cause });
}
