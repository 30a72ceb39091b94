import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import { EncoderCache, EncoderCacheWriter } from '../../src/data/encoder-cache.js';
import { DataError } from '../../src/data/errors.js';
import { ShardedSafetensors } from '../../src/io/safetensors/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tempDir } from './fixtures.js';

const root = tempDir('cache');
after(() => fs.rmSync(root, { recursive: true, force: true }));

const latent = (i: number): Tensor => Tensor.fromHost(Float32Array.from({ length: 16 }, (_, j) => i + j / 16), [4, 2, 2], 'float32');
const text = (i: number): Tensor => Tensor.fromHost(Uint16Array.from({ length: 6 }, (_, j) => 0x3c00 + i + j), [3, 2], 'float16');

test('encoder outputs round-trip through safetensors shards, read back one by one or stacked', async () => {
  const dir = join(root, 'a');
  const writer = new EncoderCacheWriter(dir, { maxShardBytes: 100 });
  for (let i = 0; i < 5; i++) await writer.add(`images/${i}.png`, { latent: latent(i), text_embedding: text(i) });
  const indexPath = await writer.finish();
  const shardFiles = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  assert.ok(shardFiles.length >= 5, `${shardFiles.length} shards for 5 x 76 bytes at 100 bytes a shard`);

  // The index is a standard Hugging Face one.
  const store = await ShardedSafetensors.open(indexPath);
  assert.equal(store.names().length, 10);
  assert.deepEqual(store.info('latent/images/3.png'), { dtype: 'float32', shape: [4, 2, 2], byteLength: 64 });
  store.close();

  const cache = await EncoderCache.open(dir);
  assert.deepEqual(cache.keys('latent').sort(), [0, 1, 2, 3, 4].map((i) => `images/${i}.png`));
  assert.ok(cache.has('images/2.png', 'text_embedding'));
  assert.ok(!cache.has('images/9.png', 'latent'));
  const one = await cache.get('images/3.png', 'latent');
  assert.deepEqual(one.shape, [4, 2, 2]);
  assert.deepEqual([...(one.toHost() as Float32Array)], [...(latent(3).toHost() as Float32Array)]);
  const stacked = await cache.batch(['images/4.png', 'images/1.png'], 'text_embedding');
  assert.equal(stacked.dtype, 'float16');
  assert.deepEqual(stacked.shape, [2, 3, 2]);
  assert.deepEqual([...(stacked.toHost() as Uint16Array)], [...(text(4).toHost() as Uint16Array), ...(text(1).toHost() as Uint16Array)]);
  await assert.rejects(cache.get('images/9.png', 'latent'), /no 'latent' cached for sample 'images\/9\.png'/);
  cache.close();
});

test('encoder cache refuses bad use with errors naming the problem', async () => {
  const dir = join(root, 'b');
  const writer = new EncoderCacheWriter(dir);
  await writer.add('k', { latent: latent(0) });
  await assert.rejects(writer.add('k', { latent: latent(1) }), /'latent\/k' was already added/);
  await assert.rejects(writer.add('j', { 'bad field': latent(1) }), (e: unknown) => e instanceof DataError && /field 'bad field'/.test(e.message));
  await writer.add('other', { latent: Tensor.fromHost(new Float32Array(4), [4], 'float32') });
  await writer.finish();
  await assert.rejects(writer.add('late', { latent: latent(2) }), /already finished/);
  const cache = await EncoderCache.open(dir);
  await assert.rejects(cache.batch(['k', 'other'], 'latent'), /'latent' of 'other' is float32\[4\], but of 'k' float32\[4, 2, 2\]/);
  cache.close();
  assert.throws(() => new EncoderCacheWriter(join(root, 'c'), { maxShardBytes: 0 }), /maxShardBytes must be a positive integer, got 0/);
});
