import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ASPECT_RATIO_1024, ASPECT_RATIO_256, ASPECT_RATIO_512, aspectRatioTable, closestBucket } from '../../src/data/buckets.js';
import { DataError } from '../../src/data/errors.js';

const find = (table: typeof ASPECT_RATIO_1024, ratio: number) => table.find((b) => b.ratio === ratio);

test('PixArt tables: 40 bins at 1024, 512 and 256, matching PixArt-alpha entries', () => {
  for (const table of [ASPECT_RATIO_1024, ASPECT_RATIO_512, ASPECT_RATIO_256]) assert.equal(table.length, 40);
  assert.deepEqual(find(ASPECT_RATIO_1024, 0.25), { ratio: 0.25, height: 512, width: 2048 });
  assert.deepEqual(find(ASPECT_RATIO_1024, 1.0), { ratio: 1.0, height: 1024, width: 1024 });
  assert.deepEqual(find(ASPECT_RATIO_1024, 2.89), { ratio: 2.89, height: 1664, width: 576 });
  assert.deepEqual(find(ASPECT_RATIO_512, 0.57), { ratio: 0.57, height: 384, width: 672 });
  assert.deepEqual(find(ASPECT_RATIO_512, 4.0), { ratio: 4.0, height: 1024, width: 256 });
  assert.deepEqual(find(ASPECT_RATIO_256, 0.26), { ratio: 0.26, height: 128, width: 496 });
  assert.deepEqual(find(ASPECT_RATIO_256, 3.62), { ratio: 3.62, height: 464, width: 128 });
  for (const b of ASPECT_RATIO_256) {
    assert.ok(b.height % 16 === 0 && b.width % 16 === 0, `${b.height}x${b.width}`);
    // each bin holds about base² pixels
    assert.ok(Math.abs((b.height * b.width) / 256 ** 2 - 1) < 0.1, `${b.ratio}: ${b.height}x${b.width}`);
  }
});

test('closestBucket picks the label nearest height/width', () => {
  assert.deepEqual(closestBucket(ASPECT_RATIO_1024, 1000, 1000), { ratio: 1, height: 1024, width: 1024 });
  assert.equal(closestBucket(ASPECT_RATIO_1024, 768, 1344).ratio, 0.57);
  assert.equal(closestBucket(ASPECT_RATIO_512, 2000, 1000).ratio, 2.0);
  assert.equal(closestBucket(ASPECT_RATIO_256, 10, 1000).ratio, 0.25); // beyond the table: the extreme bin
  assert.equal(closestBucket(ASPECT_RATIO_256, 1000, 10).ratio, 4.0);
  assert.throws(() => closestBucket(ASPECT_RATIO_256, 0, 10), DataError);
});

test('aspectRatioTable at other bases: multiples of the stride, no duplicate sizes', () => {
  const table = aspectRatioTable(64, 8);
  const sizes = new Set(table.map((b) => `${b.height}x${b.width}`));
  assert.equal(sizes.size, table.length);
  assert.ok(table.length < 40 && table.length > 10, `${table.length} bins`);
  for (const b of table) assert.ok(b.height % 8 === 0 && b.width % 8 === 0);
  assert.deepEqual(find(table, 1.0), { ratio: 1, height: 64, width: 64 });
  assert.throws(() => aspectRatioTable(0), /base must be a positive integer, got 0/);
  assert.throws(() => aspectRatioTable(64, 1.5), /multiple must be a positive integer/);
});
