import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeImage, probeImage } from '../../src/data/image-decode.js';
import { SkipError } from '../../src/data/errors.js';
import { chwToRgb, imageTensor, rgbToCHW } from '../../src/data/pixels.js';
import { meanRgb, patternPng, solidImage, svg } from './fixtures.js';

const square = (n: number) => () => ({ width: n, height: n });

function pixel(data: Uint8Array, width: number, x: number, y: number): number[] {
  const i = (y * width + x) * 3;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

test('decodes PNG, JPEG, WebP and SVG to RGB at the requested size', async () => {
  const inputs: [string, Buffer][] = [
    ['png', await solidImage(20, 12, [200, 30, 40], 'png')],
    ['jpeg', await solidImage(20, 12, [200, 30, 40], 'jpeg')],
    ['webp', await solidImage(20, 12, [200, 30, 40], 'webp')],
    ['svg', svg(20, 12, '<rect width="20" height="12" fill="rgb(200,30,40)"/>')],
  ];
  for (const [format, bytes] of inputs) {
    const out = await decodeImage(bytes, `x.${format}`, square(8));
    assert.equal(out.source.format, format);
    assert.deepEqual([out.source.width, out.source.height], [20, 12]);
    assert.equal(out.pixels.length, 8 * 8 * 3);
    const tolerance = format === 'png' || format === 'svg' ? 0 : 6; // lossy codecs shift colours a little
    for (const [got, want] of pixel(out.pixels, 8, 4, 4).map((v, c) => [v, [200, 30, 40][c]!])) {
      assert.ok(Math.abs(got! - want) <= tolerance, `${format}: ${got} vs ${want}`);
    }
  }
});

test('resize covers the target and crops the center', async () => {
  // 40x20: a red band on the left quarter, green middle half, blue right quarter.
  const png = await patternPng(40, 20, (x) => (x < 10 ? [255, 0, 0] : x < 30 ? [0, 255, 0] : [0, 0, 255]));
  const out = await decodeImage(png, 'bands.png', square(10));
  // Scaled to 20x10, the middle 10 columns are the green half.
  for (const x of [1, 5, 8]) assert.deepEqual(pixel(out.pixels, 10, x, 5), [0, 255, 0], `column ${x}`);
  const probe = await probeImage(png, 'bands.png');
  assert.deepEqual(probe, { format: 'png', width: 40, height: 20 });
});

test('transparent pixels are composited onto the background (white by default)', async () => {
  const transparent = svg(4, 4, '<rect width="2" height="4" fill="rgb(0,0,255)"/>');
  const white = await decodeImage(transparent, 't.svg', square(4));
  assert.deepEqual(pixel(white.pixels, 4, 3, 1), [255, 255, 255]);
  assert.deepEqual(pixel(white.pixels, 4, 0, 1), [0, 0, 255]);
  const black = await decodeImage(transparent, 't.svg', square(4), { background: { r: 0, g: 0, b: 0 } });
  assert.deepEqual(pixel(black.pixels, 4, 3, 1), [0, 0, 0]);
});

test('SVG is rasterised at the target scale, not upsampled from 72 dpi', async () => {
  const checker = svg(8, 8, '<rect width="4" height="8" fill="rgb(255,0,0)"/><rect x="4" width="4" height="8" fill="rgb(0,0,255)"/>');
  const out = await decodeImage(checker, 'c.svg', square(64));
  // A raster upsampled 8x would blur across the edge at x = 32; a vector render is crisp.
  assert.deepEqual(pixel(out.pixels, 64, 31, 10), [255, 0, 0]);
  assert.deepEqual(pixel(out.pixels, 64, 32, 10), [0, 0, 255]);
});

test('greyscale input becomes three equal channels', async () => {
  const grey = await patternPng(6, 6, () => [90, 90, 90]);
  const out = await decodeImage(grey, 'g.png', square(6));
  assert.deepEqual(pixel(out.pixels, 6, 2, 2), [90, 90, 90]);
});

test('rgbToCHW maps 0..255 to [-1, 1] in CHW order; imageTensor wraps it', async () => {
  const hwc = new Uint8Array([0, 255, 50, 255, 0, 100]); // 1x2 image
  const chw = rgbToCHW(hwc, 1, 2);
  assert.deepEqual([...chw].map((v) => Number(v.toFixed(4))), [-1, 1, 1, -1, -0.6078, -0.2157]);
  assert.deepEqual([...chwToRgb(chw, 1, 2)], [...hwc]);
  const t = imageTensor(hwc, 1, 2);
  assert.deepEqual(t.shape, [3, 1, 2]);
  assert.equal(t.dtype, 'float32');
  assert.deepEqual([...(t.toHost() as Float32Array)], [...chw]);
  assert.deepEqual(meanRgb(chw, 1, 2), [128, 128, 75]);
  assert.throws(() => rgbToCHW(hwc, 2, 2), /pixels has 6 bytes, expected 2x2x3 = 12/);
});

test('every decode failure is a SkipError naming the file', async () => {
  await assert.rejects(decodeImage(new Uint8Array(0), 'empty.png', square(4)), (e: unknown) => e instanceof SkipError && e.reason === 'empty-file' && e.file === 'empty.png');
  await assert.rejects(decodeImage(Buffer.from('not an image at all'), 'junk.png', square(4)), (e: unknown) => e instanceof SkipError && e.reason === 'unsupported-format');
});
