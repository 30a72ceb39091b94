/**
 * Model output → PNG files: tensors [B, 3, H, W] in [-1, 1] to 8-bit RGB, single images or a
 * grid, with text chunks (png-text.ts) carrying what made them.
 */
import { chwToRgb } from '../data/pixels.js';
import { loadSharp } from '../data/sharp.js';
import type { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import { addPngText, PngError } from './png-text.js';

export interface RgbImage {
  pixels: Uint8Array;
  height: number;
  width: number;
}

/** Each image of a batch [B, 3, H, W] (values in [-1, 1], clamped) as HWC bytes. */
export function batchToRgb(images: Tensor): RgbImage[] {
  if (images.ndim !== 4 || images.shape[1] !== 3) throw new PngError(`batchToRgb: images must be [B, 3, H, W], got ${formatShape(images.shape)}`);
  const [b, , height, width] = images.shape as [number, number, number, number];
  const host = Float32Array.from(images.toFloat64Array());
  const per = 3 * height * width;
  return Array.from({ length: b }, (_, i) => ({ pixels: chwToRgb(host.subarray(i * per, (i + 1) * per), height, width), height, width }));
}

/** Tiles images of one size row by row, `columns` wide, with a `gap`-pixel white border. */
export function gridOf(images: readonly RgbImage[], columns = Math.ceil(Math.sqrt(images.length)), gap = 2): RgbImage {
  if (images.length === 0) throw new PngError('gridOf: no images');
  const { height, width } = images[0]!;
  if (images.some((im) => im.height !== height || im.width !== width)) throw new PngError('gridOf: images differ in size');
  const cols = Math.min(columns, images.length);
  const rows = Math.ceil(images.length / cols);
  const gw = cols * width + (cols + 1) * gap;
  const gh = rows * height + (rows + 1) * gap;
  const out = new Uint8Array(gw * gh * 3).fill(255);
  images.forEach((im, i) => {
    const x0 = gap + (i % cols) * (width + gap);
    const y0 = gap + Math.floor(i / cols) * (height + gap);
    for (let y = 0; y < height; y++) out.set(im.pixels.subarray(y * width * 3, (y + 1) * width * 3), ((y0 + y) * gw + x0) * 3);
  });
  return { pixels: out, height: gh, width: gw };
}

/** PNG bytes of an image, upscaled by an integer `scale` (nearest neighbour, for tiny samples), with text chunks. */
export async function encodePng(image: RgbImage, text: Readonly<Record<string, string>> = {}, scale = 1): Promise<Uint8Array> {
  const sharp = await loadSharp();
  let pipeline = sharp(Buffer.from(image.pixels.buffer, image.pixels.byteOffset, image.pixels.byteLength), {
    raw: { width: image.width, height: image.height, channels: 3 },
  });
  if (scale > 1) pipeline = pipeline.resize(image.width * scale, image.height * scale, { kernel: 'nearest' });
  const png = await pipeline.png().toBuffer();
  return addPngText(new Uint8Array(png.buffer, png.byteOffset, png.byteLength), text);
}
