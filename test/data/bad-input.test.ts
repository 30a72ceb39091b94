/**
 * Every kind of bad input is skipped, counted and reported with its file name, and the good
 * samples beside it still arrive: one test per kind, each a small folder made here.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import type { SkipReason } from '../../src/data/errors.js';
import { FolderDataset } from '../../src/data/folder-dataset.js';
import { JsonlDataset } from '../../src/data/jsonl-dataset.js';
import { DataLoader } from '../../src/data/loader.js';
import type { SampleSource } from '../../src/data/source.js';
import { TarShardDataset } from '../../src/data/tar-dataset.js';
import { bmpBytes, solidImage, tempDir, writeTar } from './fixtures.js';

const root = tempDir('bad');
after(() => fs.rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A folder holding `good.png` + caption plus the given files. */
async function folderWith(files: Record<string, Uint8Array | string>): Promise<string> {
  const dir = join(root, `case-${++counter}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(join(dir, 'good.png'), await solidImage(8, 8, [10, 200, 10]));
  fs.writeFileSync(join(dir, 'good.txt'), 'a green square');
  for (const [name, body] of Object.entries(files)) fs.writeFileSync(join(dir, name), body);
  return dir;
}

interface Outcome {
  keys: string[];
  loader: DataLoader;
  logged: string[];
}

async function loadAll(source: SampleSource, maxPixels?: number): Promise<Outcome> {
  const logged: string[] = [];
  const loader = new DataLoader({
    source,
    batchSize: 2,
    resolution: { size: 8 },
    shuffle: false,
    log: (m) => logged.push(m),
    ...(maxPixels === undefined ? {} : { decode: { maxPixels } }),
  });
  const keys: string[] = [];
  for await (const batch of loader.epoch()) keys.push(...batch.keys);
  return { keys, loader, logged };
}

/** Asserts exactly one skip, of `reason`, naming a file that ends with `file`, also in the printed summary. */
function assertSkipped(outcome: Outcome, reason: SkipReason, file: string, goodKeys: string[] = ['good.png']): void {
  assert.deepEqual(outcome.keys, goodKeys);
  const skips = outcome.loader.report.list();
  assert.equal(skips.length, 1, `skips: ${JSON.stringify(skips)}`);
  assert.equal(skips[0]!.reason, reason, skips[0]!.detail);
  assert.ok(skips[0]!.file.endsWith(file), `${skips[0]!.file} should end with ${file}`);
  assert.deepEqual(outcome.loader.report.counts(), { [reason]: 1 });
  const printed = outcome.logged.join('\n');
  assert.ok(printed.includes(file) && printed.includes(reason), `printed summary: ${printed}`);
}

test('corrupt image: random bytes behind a PNG signature', async () => {
  const bytes = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(200, 7)]);
  const dir = await folderWith({ 'broken.png': bytes, 'broken.txt': 'x' });
  assertSkipped(await loadAll(await FolderDataset.open(dir)), 'corrupt-image', 'broken.png');
});

test('truncated PNG', async () => {
  const png = await solidImage(32, 32, [1, 2, 3]);
  const dir = await folderWith({ 'cut.png': png.subarray(0, Math.floor(png.length / 2)), 'cut.txt': 'x' });
  assertSkipped(await loadAll(await FolderDataset.open(dir)), 'corrupt-image', 'cut.png');
});

test('truncated JPEG', async () => {
  const jpeg = await solidImage(64, 64, [100, 50, 25], 'jpeg');
  const dir = await folderWith({ 'cut.jpg': jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'cut.txt': 'x' });
  assertSkipped(await loadAll(await FolderDataset.open(dir)), 'corrupt-image', 'cut.jpg');
});

test('zero-byte image file', async () => {
  const dir = await folderWith({ 'empty.png': new Uint8Array(0), 'empty.txt': 'x' });
  assertSkipped(await loadAll(await FolderDataset.open(dir)), 'empty-file', 'empty.png');
});

test('missing caption file', async () => {
  const dir = await folderWith({ 'alone.png': await solidImage(8, 8, [0, 0, 0]) });
  assertSkipped(await loadAll(await FolderDataset.open(dir)), 'missing-caption', 'alone.png');
});

test('empty caption file, and a caption of only whitespace', async () => {
  for (const caption of ['', ' \n\t ']) {
    const dir = await folderWith({ 'blank.png': await solidImage(8, 8, [0, 0, 0]), 'blank.txt': caption });
    assertSkipped(await loadAll(await FolderDataset.open(dir)), 'empty-caption', 'blank.txt');
  }
});

test('caption that is not UTF-8 (Latin-1 bytes)', async () => {
  const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x63, 0x61, 0x74]); // "café cat" in Latin-1
  const dir = await folderWith({ 'cafe.png': await solidImage(8, 8, [0, 0, 0]), 'cafe.txt': latin1 });
  const outcome = await loadAll(await FolderDataset.open(dir));
  assertSkipped(outcome, 'non-utf8-text', 'cafe.txt');
  assert.match(outcome.loader.report.list()[0]!.detail, /invalid byte 0xe9 at offset 3/);
});

test('image over the pixel limit (decompression bomb)', async () => {
  // 4000x4000 of one colour compresses to a few kB but decodes to 48 MB.
  const bomb = await solidImage(4000, 4000, [9, 9, 9]);
  assert.ok(bomb.length < 200_000);
  const dir = await folderWith({ 'bomb.png': bomb, 'bomb.txt': 'x' });
  const outcome = await loadAll(await FolderDataset.open(dir), 1_000_000);
  assertSkipped(outcome, 'too-many-pixels', 'bomb.png');
  assert.match(outcome.loader.report.list()[0]!.detail, /4000x4000 exceeds the limit of 1000000 pixels/);
});

test('unsupported formats: BMP (undecodable) and GIF (not accepted)', async () => {
  const dir = await folderWith({ 'old.bmp': bmpBytes(), 'old.txt': 'x' });
  assertSkipped(await loadAll(await FolderDataset.open(dir)), 'unsupported-format', 'old.bmp');
  const gifDir = await folderWith({ 'anim.gif': await solidImage(8, 8, [1, 1, 1], 'gif'), 'anim.txt': 'x' });
  const outcome = await loadAll(await FolderDataset.open(gifDir));
  assertSkipped(outcome, 'unsupported-format', 'anim.gif');
  assert.match(outcome.loader.report.list()[0]!.detail, /format 'gif' is not one of png, jpeg, webp, svg/);
});

test('caption without an image', async () => {
  const dir = await folderWith({ 'orphan.txt': 'nobody home' });
  assertSkipped(await loadAll(await FolderDataset.open(dir)), 'missing-image', 'orphan.txt');
});

test('unreadable shards: missing, not a tar, truncated — the good shard still loads', async () => {
  const dir = join(root, `case-${++counter}`);
  fs.mkdirSync(dir);
  const png = await solidImage(8, 8, [5, 5, 5]);
  await writeTar(join(dir, 'a-good.tar'), [['s1.png', png], ['s1.txt', 'one']]);
  fs.writeFileSync(join(dir, 'b-garbage.tar'), Buffer.alloc(3000, 0x41));
  await writeTar(join(dir, 'c-full.tar'), [['t1.png', png], ['t1.txt', 'first'], ['t2.png', await solidImage(64, 64, [1, 2, 3])], ['t2.txt', 'second']]);
  const full = fs.readFileSync(join(dir, 'c-full.tar'));
  // 512-byte blocks: t1.png header+data, t1.txt header+data, t2.png header+data, then t2.txt's header, cut.
  fs.writeFileSync(join(dir, 'c-truncated.tar'), full.subarray(0, 6 * 512 + 100));
  fs.rmSync(join(dir, 'c-full.tar'));
  const shards = ['a-good.tar', 'b-garbage.tar', 'c-truncated.tar', 'd-missing.tar'].map((f) => join(dir, f));
  const outcome = await loadAll(await TarShardDataset.open(shards));
  assert.deepEqual(outcome.keys, [`${shards[0]}:s1`, `${shards[2]}:t1`]);
  const skips = outcome.loader.report.list();
  assert.deepEqual(skips.map((s) => [s.reason, s.file]), [
    ['unreadable-shard', shards[1]],
    ['unreadable-shard', shards[2]],
    ['unreadable-shard', shards[3]],
  ]);
  assert.match(skips[1]!.detail, /after 1 complete samples; the sample 't2' being read is lost/);
  assert.match(skips[2]!.detail, /ENOENT/);
  const printed = outcome.logged.join('\n');
  for (const s of shards.slice(1)) assert.ok(printed.includes(s));
});

test('bad manifest lines: invalid JSON, no image, no caption, empty caption, bad score, non-UTF-8, missing image file', async () => {
  const dir = join(root, `case-${++counter}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(join(dir, 'ok.png'), await solidImage(8, 8, [0, 0, 0]));
  const lines: (string | Buffer)[] = [
    JSON.stringify({ image: 'ok.png', caption: 'fine' }),
    '{"image": "ok.png", "caption": ',
    JSON.stringify({ caption: 'no image' }),
    JSON.stringify({ image: 'ok.png' }),
    JSON.stringify({ image: 'ok.png', caption: '   ' }),
    JSON.stringify({ image: 'ok.png', caption: 'x', score: 'high' }),
    Buffer.from([0x7b, 0x22, 0x69, 0xff, 0x22, 0x7d]),
    JSON.stringify({ image: 'gone.png', caption: 'vanished' }),
  ];
  const manifest = join(dir, 'data.jsonl');
  fs.writeFileSync(manifest, Buffer.concat(lines.map((l) => Buffer.concat([Buffer.from(l), Buffer.from('\n')]))));
  const outcome = await loadAll(await JsonlDataset.open(manifest));
  assert.deepEqual(outcome.keys, [`${manifest}:1`]);
  const got = outcome.loader.report.list().map((s) => [s.reason, s.file]);
  assert.deepEqual(got, [
    ['bad-manifest-line', `${manifest}:2`],
    ['missing-image', `${manifest}:3`],
    ['missing-caption', `${manifest}:4`],
    ['empty-caption', `${manifest}:5`],
    ['bad-manifest-line', `${manifest}:6`],
    ['non-utf8-text', `${manifest}:7`],
    ['missing-image', join(dir, 'gone.png')],
  ]);
});

test('tar samples: corrupt image, missing caption, non-UTF-8 caption, unsupported member', async () => {
  const dir = join(root, `case-${++counter}`);
  fs.mkdirSync(dir);
  const png = await solidImage(8, 8, [5, 5, 5]);
  const shard = join(dir, 'shard.tar');
  await writeTar(shard, [
    ['ok.png', png], ['ok.txt', 'fine'],
    ['bad.png', Buffer.from('garbage')], ['bad.txt', 'x'],
    ['nocap.png', png], ['nocap.cls', '3'],
    ['latin.png', png], ['latin.txt', Buffer.from([0xe9])],
    ['pic.bmp', bmpBytes()], ['pic.txt', 'x'],
  ]);
  const outcome = await loadAll(await TarShardDataset.open([shard]));
  assert.deepEqual(outcome.keys, [`${shard}:ok`]);
  assert.deepEqual(outcome.loader.report.list().map((s) => [s.reason, s.file]), [
    ['unsupported-format', `${shard}:bad.png`],
    ['missing-caption', `${shard}:nocap`],
    ['non-utf8-text', `${shard}:latin.txt`],
    ['unsupported-format', `${shard}:pic.bmp|txt`],
  ]);
});

test('the same bad file met again next epoch is counted once, with its occurrences', async () => {
  const dir = await folderWith({ 'cut.png': (await solidImage(32, 32, [1, 2, 3])).subarray(0, 40), 'cut.txt': 'x' });
  const logged: string[] = [];
  const loader = new DataLoader({ source: await FolderDataset.open(dir), batchSize: 1, resolution: { size: 8 }, log: (m) => logged.push(m) });
  let batches = 0;
  for await (const _ of loader.batches(3)) batches += 1;
  assert.equal(batches, 3);
  assert.equal(loader.report.total, 1);
  assert.equal(loader.report.list()[0]!.occurrences, 3);
  assert.equal(logged.length, 1, 'the summary names a bad file only in the epoch it first appears');
  assert.match(loader.summary(), /x3/);
});
