/** PNG text chunks: CRC-32, writing tEXt/iTXt after IHDR, reading them back, images still decode. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { addPngText, crc32, readPngText } from '../../src/train/png-text.js';
import { encodePng, gridOf } from '../../src/train/images.js';

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('text chunks round-trip (Latin-1 as tEXt, other text as iTXt) and the PNG stays valid', async () => {
  const png = await sharp({ create: { width: 3, height: 2, channels: 3, background: { r: 9, g: 99, b: 199 } } }).png().toBuffer();
  const entries = { prompt: 'a red heart ❤️ 日本', seed: '42', note: 'café' };
  const out = addPngText(new Uint8Array(png), entries);
  assert.deepEqual(readPngText(out), entries);
  const text = new TextDecoder('latin1').decode(out);
  assert.ok(text.includes('tEXtseed'), 'ASCII goes in tEXt');
  assert.ok(text.includes('iTXtprompt'), 'non-Latin-1 goes in iTXt');
  const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [3, 2]);
  assert.deepEqual([...data.subarray(0, 3)], [9, 99, 199]);
  const corrupt = Uint8Array.from(out);
  corrupt[out.indexOf(0x74, 40) + 6]! ^= 1; // flip a bit inside a text chunk
  assert.throws(() => readPngText(corrupt), /bad CRC/);
});

test('grids tile images with a border; encodePng upscales and keeps the text', async () => {
  const red = { pixels: new Uint8Array(2 * 2 * 3).fill(0).map((_, i) => (i % 3 === 0 ? 255 : 0)), height: 2, width: 2 };
  const grid = gridOf([red, red, red], 2, 1);
  assert.deepEqual([grid.width, grid.height], [2 * 2 + 3, 2 * 2 + 3]);
  assert.deepEqual([...grid.pixels.subarray(0, 3)], [255, 255, 255]);
  const at = (1 * grid.width + 1) * 3;
  assert.deepEqual([...grid.pixels.subarray(at, at + 3)], [255, 0, 0]);
  const png = await encodePng(grid, { prompt: 'grid' }, 3);
  assert.equal((await sharp(png).metadata()).width, grid.width * 3);
  assert.equal(readPngText(png)['prompt'], 'grid');
});
