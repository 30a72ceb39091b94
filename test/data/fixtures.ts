/** Small images and archives made on the fly for the data tests. */
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import tar from 'tar-stream';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(join(os.tmpdir(), `dimba-data-${prefix}-`));
}

export type Colour = [number, number, number];

/** A solid image in `format` (PNG/JPEG/WebP/GIF from sharp). */
export async function solidImage(width: number, height: number, colour: Colour, format: 'png' | 'jpeg' | 'webp' | 'gif' = 'png'): Promise<Buffer> {
  const [r, g, b] = colour;
  return sharp({ create: { width, height, channels: 3, background: { r, g, b } } })
    .toFormat(format)
    .toBuffer();
}

/** An RGB image from a function of (x, y), as PNG. */
export async function patternPng(width: number, height: number, pixel: (x: number, y: number) => Colour): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), (y * width + x) * 3);
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

export function svg(width: number, height: number, body: string): Buffer {
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${body}</svg>`);
}

/** A minimal Windows bitmap header: a real format that sharp cannot read. */
export function bmpBytes(): Buffer {
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'latin1');
  header.writeUInt32LE(54 + 4, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(1, 18);
  header.writeInt32LE(1, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  return Buffer.concat([header, Buffer.from([0, 0, 255, 0])]);
}

/** Writes a tar file with the given members (name → bytes), in order. */
export async function writeTar(path: string, members: readonly (readonly [string, Uint8Array | string])[]): Promise<void> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack) {
      if (!Buffer.isBuffer(chunk)) throw new TypeError(`writeTar: tar-stream gave ${typeof chunk}`);
      chunks.push(chunk);
    }
  })();
  for (const [name, body] of members) {
    await new Promise<void>((resolve, reject) => {
      pack.entry({ name }, typeof body === 'string' ? body : Buffer.from(body), (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  fs.writeFileSync(path, Buffer.concat(chunks));
}

/** Mean of each channel of a CHW float image region, mapped back to 0..255. */
export function meanRgb(chw: Float32Array, height: number, width: number): Colour {
  const plane = height * width;
  const out: Colour = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let sum = 0;
    for (let i = 0; i < plane; i++) sum += chw[c * plane + i]!;
    out[c] = Math.round(((sum / plane) + 1) * 127.5);
  }
  return out;
}
