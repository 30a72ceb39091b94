import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DataError } from '../../src/data/errors.js';
import { FolderDataset } from '../../src/data/folder-dataset.js';
import { JsonlDataset } from '../../src/data/jsonl-dataset.js';
import type { EpochRequest, SampleSource } from '../../src/data/source.js';
import { TarShardDataset } from '../../src/data/tar-dataset.js';
import { solidImage, tempDir, writeTar } from './fixtures.js';

const root = tempDir('sources');
after(() => fs.rmSync(root, { recursive: true, force: true }));

const plain = (over: Partial<EpochRequest> = {}): EpochRequest => ({ seed: 0, epoch: 0, shuffle: false, from: 0, extra: [], ...over });

async function keysOf(source: SampleSource, request: EpochRequest): Promise<string[]> {
  const out: string[] = [];
  for await (const item of source.items(request)) out.push('record' in item ? item.record.key : `skip:${item.skip.file}`);
  return out;
}

test('FolderDataset: nested folders, sorted keys, captions read lazily', async () => {
  const dir = join(root, 'folder');
  fs.mkdirSync(join(dir, 'sub'), { recursive: true });
  const png = await solidImage(4, 4, [1, 2, 3]);
  for (const name of ['b', 'a', 'sub/c']) {
    fs.writeFileSync(join(dir, `${name}.png`), png);
    fs.writeFileSync(join(dir, `${name}.txt`), `  caption of\n${name}  `);
  }
  fs.writeFileSync(join(dir, '.DS_Store'), 'ignored');
  const ds = await FolderDataset.open(dir);
  assert.equal(ds.size, 3);
  assert.deepEqual(ds.indexSkips, []);
  assert.deepEqual(await keysOf(ds, plain()), ['a.png', 'b.png', 'sub/c.png']);
  const loaded = await ds.recordAt(2).load();
  assert.deepEqual(loaded.captions, ['caption of sub/c']);
  assert.deepEqual([...loaded.image.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  const flat = await FolderDataset.open(dir, { recursive: false });
  assert.equal(flat.size, 2);
  await assert.rejects(FolderDataset.open(join(dir, 'nope')), (e: unknown) => e instanceof DataError && /cannot open folder .*nope/.test(e.message));
});

test('indexed sources: shuffled order, resume from an ordinal with extra ordinals first', async () => {
  const dir = join(root, 'many');
  fs.mkdirSync(dir);
  const png = await solidImage(4, 4, [1, 2, 3]);
  for (let i = 0; i < 20; i++) {
    fs.writeFileSync(join(dir, `${String(i).padStart(2, '0')}.png`), png);
    fs.writeFileSync(join(dir, `${String(i).padStart(2, '0')}.txt`), `n${i}`);
  }
  const ds = await FolderDataset.open(dir);
  const full = await keysOf(ds, plain({ shuffle: true, seed: 5, epoch: 2 }));
  assert.equal(new Set(full).size, 20);
  assert.notDeepEqual(full, [...full].sort());
  const resumed = await keysOf(ds, plain({ shuffle: true, seed: 5, epoch: 2, from: 12, extra: [3, 7] }));
  assert.deepEqual(resumed, [full[3], full[7], ...full.slice(12)]);
});

test('JsonlDataset: captions arrays, score, split and minScore filters, CRLF and blank lines', async () => {
  const dir = join(root, 'jsonl');
  fs.mkdirSync(join(dir, 'img'), { recursive: true });
  fs.writeFileSync(join(dir, 'img', 'x.png'), await solidImage(4, 4, [9, 9, 9]));
  const rows = [
    { image: 'img/x.png', caption: 'one', score: 5, split: 'train' },
    { image: 'img/x.png', caption: ['two', 'deux', 'two'], split: 'train' },
    { image: 'img/x.png', caption: 'three', captions: ['trois'], score: 1, split: 'train' },
    { image: join(dir, 'img', 'x.png'), caption: 'four', split: 'test' },
  ];
  const manifest = join(dir, 'm.jsonl');
  fs.writeFileSync(manifest, rows.map((r) => JSON.stringify(r)).join('\r\n\r\n') + '\r\n');
  const all = await JsonlDataset.open(manifest);
  assert.equal(all.size, 4);
  assert.deepEqual(all.indexSkips, []);
  assert.deepEqual((await all.rowAt(1)).captions, ['two', 'deux']);
  assert.deepEqual((await all.rowAt(2)).captions, ['three', 'trois']);
  assert.deepEqual(await keysOf(all, plain()), [1, 3, 5, 7].map((n) => `${manifest}:${n}`));
  const first = await all.recordAt(0).load();
  assert.equal(first.score, 5);
  assert.deepEqual(first.captions, ['one']);
  assert.equal((await all.recordAt(3).load()).image.length, fs.statSync(join(dir, 'img', 'x.png')).size);

  const train = await JsonlDataset.open(manifest, { split: 'train', minScore: 2 });
  assert.equal(train.size, 2);
  assert.deepEqual(train.filtered, { otherSplit: 1, belowMinScore: 1 });
  assert.deepEqual((await train.rowAt(1)).captions, ['two', 'deux']);
  await assert.rejects(JsonlDataset.open(join(dir, 'missing.jsonl')), /cannot read manifest .*missing\.jsonl/);
});

test('JsonlDataset: a manifest larger than one read chunk is indexed by byte offsets', async () => {
  const dir = join(root, 'big');
  fs.mkdirSync(dir);
  const lines: string[] = [];
  for (let i = 0; i < 30000; i++) lines.push(JSON.stringify({ image: `img/${i}.png`, caption: `caption number ${i} ${'é'.repeat(i % 7)}` }));
  const manifest = join(dir, 'big.jsonl');
  fs.writeFileSync(manifest, lines.join('\n')); // > 1 MiB, no trailing newline
  assert.ok(fs.statSync(manifest).size > 1 << 20);
  const ds = await JsonlDataset.open(manifest);
  assert.equal(ds.size, 30000);
  for (const i of [0, 1, 12345, 29999]) {
    assert.deepEqual((await ds.rowAt(i)).captions, [`caption number ${i} ${'é'.repeat(i % 7)}`.trim()]);
  }
});

test('TarShardDataset: WebDataset grouping, json captions and scores, gzipped shards', async () => {
  const dir = join(root, 'tar');
  fs.mkdirSync(dir);
  const png = await solidImage(4, 4, [7, 7, 7]);
  await writeTar(join(dir, 'shard-000.tar'), [
    ['a/0001.png', png], ['a/0001.txt', 'first'], ['a/0001.json', JSON.stringify({ score: 0.5 })],
    ['a/0002.jpg', await solidImage(4, 4, [7, 7, 7], 'jpeg')], ['a/0002.json', JSON.stringify({ caption: 'second', score: 2 })],
    ['0003.seg.png', png], ['0003.png', png], ['0003.txt', 'third'],
  ]);
  const second = join(root, 'shard-001.tar');
  await writeTar(second, [['0004.webp', await solidImage(4, 4, [1, 1, 1], 'webp')], ['0004.caption', 'fourth']]);
  fs.writeFileSync(join(dir, 'shard-001.tar.gz'), gzipSync(fs.readFileSync(second)));
  fs.writeFileSync(join(dir, 'notes.md'), 'not a shard');

  const ds = await TarShardDataset.open(dir);
  assert.equal(ds.shards.length, 2);
  const items = [];
  for await (const item of ds.items(plain())) if ('record' in item) items.push(item.record);
  assert.deepEqual(items.map((r) => r.key.slice(dir.length + 1)), ['shard-000.tar:a/0001', 'shard-000.tar:a/0002', 'shard-000.tar:0003', 'shard-001.tar.gz:0004']);
  const loaded = await Promise.all(items.map((r) => r.load()));
  assert.deepEqual(loaded.map((l) => l.captions[0]), ['first', 'second', 'third', 'fourth']);
  assert.deepEqual(loaded.map((l) => l.score), [0.5, 2, undefined, undefined]);
  assert.deepEqual([...loaded[2]!.image], [...png]);
  await assert.rejects(TarShardDataset.open(join(root, 'jsonl')), /no shards given \(no \.tar files in/);
});

test('TarShardDataset: shuffling is fixed by (seed, epoch); replay honours from and extra', async () => {
  const dir = join(root, 'tar-shuffle');
  fs.mkdirSync(dir);
  const png = await solidImage(4, 4, [7, 7, 7]);
  for (let s = 0; s < 3; s++) {
    const members: [string, Uint8Array | string][] = [];
    for (let i = 0; i < 10; i++) members.push([`s${s}_${i}.png`, png], [`s${s}_${i}.txt`, `caption ${s} ${i}`]);
    await writeTar(join(dir, `shard-${s}.tar`), members);
  }
  const ds = await TarShardDataset.open(dir, { shuffleBuffer: 8 });
  const request = plain({ shuffle: true, seed: 3, epoch: 1 });
  const a = await keysOf(ds, request);
  assert.equal(new Set(a).size, 30);
  assert.deepEqual(await keysOf(ds, request), a);
  assert.notDeepEqual(await keysOf(ds, { ...request, epoch: 2 }), a);
  assert.notDeepEqual(a, await keysOf(ds, plain()));
  assert.deepEqual(await keysOf(ds, { ...request, from: 20, extra: [2, 19] }), [a[2], a[19], ...a.slice(20)]);
});
