/**
 * Image-quality proxy scores and `scoreManifest`: the metrics against closed-form values, the
 * ordering they give, a manifest scored in place with every other field and line kept, bad
 * images and lines reported (not a crash), the atomic write, and the trainer's minScore filter
 * picking exactly the rows scored high enough.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { colorfulness, laplacianVariance, rmsContrast, scoreImage, scoringSize } from '../../src/data/score.js';
import { scoreManifest, summarizeScores } from '../../src/data/score-manifest.js';
import { JsonlDataset } from '../../src/data/jsonl-dataset.js';
import { DataError } from '../../src/data/errors.js';
import { openData } from '../../src/train/data.js';
import { patternPng, solidImage, tempDir, type Colour } from './fixtures.js';

function raw(width: number, height: number, pixel: (x: number, y: number) => Colour): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out.set(pixel(x, y), (y * width + x) * 3);
  return out;
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;
const RED: Colour = [255, 0, 0];
const BLUE: Colour = [0, 0, 255];
const GREY: Colour = [128, 128, 128];
const checker = (x: number, y: number): Colour => ((x + y) % 2 === 0 ? [255, 255, 255] : [0, 0, 0]);

// Uniform red: rg = 255, yb = 127.5 everywhere, so σ = 0 and M = 0.3·|(255, 127.5)|.
const RED_COLOURFULNESS = 0.3 * Math.hypot(255, 127.5);
// Half red, half blue: rg ∈ {255, 0}, yb ∈ {127.5, -255}: μ = (127.5, -63.75), σ = (127.5, 191.25).
const HALVES_COLOURFULNESS = Math.hypot(127.5, 191.25) + 0.3 * Math.hypot(127.5, 63.75);

test('the metrics match their closed forms on simple images', () => {
  const grey = raw(6, 6, () => GREY);
  assert.equal(colorfulness(grey, 6, 6), 0);
  assert.equal(rmsContrast(grey, 6, 6), 0);
  assert.equal(laplacianVariance(grey, 6, 6), 0);
  assert.ok(Math.abs(colorfulness(raw(6, 6, () => RED), 6, 6) - RED_COLOURFULNESS) < 1e-9);
  assert.ok(Math.abs(colorfulness(raw(8, 4, (x) => (x < 4 ? RED : BLUE)), 8, 4) - HALVES_COLOURFULNESS) < 1e-9);
  // Black and white: luma 0 or 255, so the standard deviation is 127.5 and every interior
  // Laplacian is ±4·255 (its four neighbours are the other colour), mean 0 over a 4x4 interior.
  const board = raw(6, 6, checker);
  assert.ok(Math.abs(rmsContrast(board, 6, 6) - 127.5) < 1e-9);
  assert.ok(Math.abs(laplacianVariance(board, 6, 6) - 1020 ** 2) < 1e-6);
  // A linear ramp has contrast but no Laplacian: blur-like, sharpness 0.
  const ramp = raw(8, 8, (x) => [x * 30, x * 30, x * 30]);
  assert.ok(rmsContrast(ramp, 8, 8) > 60);
  assert.ok(Math.abs(laplacianVariance(ramp, 8, 8)) < 1e-9);
  assert.equal(laplacianVariance(raw(2, 5, checker), 2, 5), 0);
  assert.throws(() => colorfulness(new Uint8Array(10), 2, 2), /expected 2x2x3 = 12 RGB bytes, got 10/);
});

test('scoreImage decodes as training does: transparency on white, large images reduced', async () => {
  assert.equal(await scoreImage(await solidImage(5, 5, GREY), 'grey.png', 'colorfulness'), 0);
  assert.equal(await scoreImage(await solidImage(5, 5, RED), 'red.png', 'colorfulness'), round3(RED_COLOURFULNESS));
  // A fully transparent red image is white where the model sees it: not colourful at all.
  const clear = await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
  assert.equal(await scoreImage(clear, 'clear.png', 'colorfulness'), 0);
  assert.deepEqual(scoringSize({ format: 'png', width: 600, height: 300 }, 256), { width: 256, height: 128 });
  assert.deepEqual(scoringSize({ format: 'png', width: 20, height: 30 }, 256), { width: 20, height: 30 });
  // Same pixels, same score: at 512 px the checkerboard is reduced to 256 (a grey blur) unless allowed.
  const big = await patternPng(512, 512, checker);
  assert.ok((await scoreImage(big, 'big.png', 'contrast', 512)) > 127);
  assert.ok((await scoreImage(big, 'big.png', 'contrast')) < 127);
  await assert.rejects(scoreImage(Buffer.from('not an image'), 'bad.png', 'contrast'), /bad\.png: corrupt-image|bad\.png: unsupported-format/);
});

/** A manifest over grey, red, red+blue and bad images, with fields and lines scoring must keep. */
async function makeManifest(dir: string): Promise<{ path: string; lines: string[] }> {
  fs.mkdirSync(join(dir, 'images'), { recursive: true });
  fs.writeFileSync(join(dir, 'images', 'grey.png'), await solidImage(6, 6, GREY));
  fs.writeFileSync(join(dir, 'images', 'red.png'), await solidImage(6, 6, RED));
  fs.writeFileSync(join(dir, 'images', 'halves.png'), await patternPng(8, 4, (x) => (x < 4 ? RED : BLUE)));
  fs.writeFileSync(join(dir, 'images', 'corrupt.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5]));
  const lines = [
    JSON.stringify({ image: 'images/grey.png', caption: 'a grey square', score: 99, split: 'train', note: { keep: ['me'] } }),
    JSON.stringify({ image: 'images/red.png', captions: ['a red square', 'red'], split: 'train' }),
    JSON.stringify({ image: 'images/halves.png', caption: 'red and blue halves', split: 'test' }),
    '',
    'this line is not JSON',
    JSON.stringify({ caption: 'a row without an image' }),
    JSON.stringify({ image: 'images/missing.png', caption: 'gone', score: 50 }),
    JSON.stringify({ image: 'images/corrupt.png', caption: 'broken', score: 70 }),
  ];
  const path = join(dir, 'manifest.jsonl');
  fs.writeFileSync(path, `${lines.join('\n')}\n`);
  return { path, lines };
}

test('scoring a manifest in place: expected ordering, everything else kept, bad rows reported', async () => {
  const dir = tempDir('score');
  const { path, lines } = await makeManifest(dir);
  const result = await scoreManifest({ input: dir, metric: 'colorfulness' });
  assert.equal(result.out, path);
  assert.deepEqual([result.rows, result.scored], [7, 3]);
  const out = fs.readFileSync(path, 'utf8').split('\n');
  assert.equal(out.length, lines.length + 1);
  assert.equal(out.at(-1), '');
  // Lines that are not rows with an image are copied byte for byte.
  for (const i of [3, 4, 5]) assert.equal(out[i], lines[i]);
  const rows = out.slice(0, -1).map((l, i) => ([3, 4, 5].includes(i) ? null : JSON.parse(l) as Record<string, unknown>));
  const scores = rows.map((r) => (r ? r['score'] : undefined));
  assert.deepEqual(scores, [0, round3(RED_COLOURFULNESS), round3(HALVES_COLOURFULNESS), undefined, undefined, undefined, undefined, undefined]);
  assert.ok((scores[0] as number) < (scores[1] as number) && (scores[1] as number) < (scores[2] as number), 'grey < red < red and blue');
  // Every other field is kept, in order; the score of an unreadable image is removed.
  for (const i of [0, 1, 2, 6, 7]) {
    const before = JSON.parse(lines[i]!) as Record<string, unknown>;
    const { score: _s, ...kept } = before;
    const { score: _t, ...after } = rows[i]!;
    assert.deepEqual(after, kept, `row ${i + 1}`);
    assert.deepEqual(Object.keys(after), Object.keys(kept), `row ${i + 1} key order`);
  }
  assert.equal(Object.keys(rows[0]!).indexOf('score'), 2, 'an existing score is replaced where it was');
  // libvips calls a truncated PNG corrupt or unsupported depending on its version.
  const skipped = result.skipped.list().map((e) => [e.reason === 'unsupported-format' ? 'corrupt-image' : e.reason, e.file.replace(`${dir}/`, '')]);
  assert.deepEqual(skipped.sort(), [
    ['bad-manifest-line', 'manifest.jsonl:5'],
    ['bad-manifest-line', 'manifest.jsonl:6'],
    ['corrupt-image', 'images/corrupt.png'],
    ['missing-image', 'images/missing.png'],
  ]);
  assert.match(result.skipped.summary(), /missing-image: .*missing\.png: the file does not exist \(row .*manifest\.jsonl:7; its score was removed\)/);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['images', 'manifest.jsonl'], 'no temporary file is left');
  assert.deepEqual(result.summary, summarizeScores(scores.filter((s): s is number => typeof s === 'number')));
  assert.deepEqual([result.summary!.min, result.summary!.median, result.summary!.max], [0, round3(RED_COLOURFULNESS), round3(HALVES_COLOURFULNESS)]);

  // Scoring again gives the same bytes: deterministic, and idempotent on its own output.
  const first = fs.readFileSync(path);
  await scoreManifest({ input: path, metric: 'colorfulness' });
  assert.ok(fs.readFileSync(path).equals(first));
});

test('data.minScore keeps exactly the rows scored at least that (unscored rows left out)', async () => {
  const dir = tempDir('score-filter');
  const { path } = await makeManifest(dir);
  await scoreManifest({ input: path, metric: 'colorfulness' });
  const curated = await openData({ kind: 'jsonl', path, split: null, minScore: 50, resolution: 8, buckets: false, shuffle: false });
  assert.match(curated.source.description, /score >= 50 \(2 rows\)/);
  const captions: string[] = [];
  for await (const c of curated.captions()) captions.push(c);
  assert.deepEqual(captions, ['a red square', 'red', 'red and blue halves']);
  const all = await openData({ kind: 'jsonl', path, split: null, minScore: 0, resolution: 8, buckets: false, shuffle: false });
  assert.match(all.source.description, /score >= 0 \(3 rows\)/, 'rows whose image was unreadable have no score and are left out');
  await assert.rejects(openData({ kind: 'jsonl', path, split: null, minScore: 500, resolution: 8, buckets: false, shuffle: false }), /minScore 500 leaves no rows/);
});

test('writing elsewhere keeps image paths resolvable and the input untouched', async () => {
  const dir = tempDir('score-out');
  const { path } = await makeManifest(join(dir, 'in'));
  const before = fs.readFileSync(path);
  const out = join(dir, 'elsewhere', 'deeper', 'scored.jsonl');
  const result = await scoreManifest({ input: path, metric: 'contrast', out });
  assert.equal(result.scored, 3);
  assert.ok(fs.readFileSync(path).equals(before));
  const scored = await JsonlDataset.open(out);
  assert.equal(scored.size, 5);
  const row = await scored.rowAt(1);
  assert.equal(row.score, 0);
  const loaded = await scored.recordAt(1).load();
  assert.ok(loaded.image.length > 0, 'the rewritten relative path reaches the image');
});

test('a failure before the rename leaves the manifest as it was, with no temporary file', async () => {
  const dir = tempDir('score-atomic');
  const { path } = await makeManifest(dir);
  const before = fs.readFileSync(path);
  let temporary = '';
  await assert.rejects(scoreManifest({
    input: dir, metric: 'sharpness',
    beforeRename: (t) => {
      temporary = t;
      assert.ok(fs.statSync(t).size > 0, 'the new manifest was written in full before the rename');
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    },
  }), (error: unknown) => error instanceof DataError && /cannot write .*manifest\.jsonl: ENOSPC.*\(the disk is full\); the manifest is unchanged/.test(error.message));
  assert.ok(temporary.length > 0);
  assert.ok(fs.readFileSync(path).equals(before));
  assert.ok(!fs.existsSync(temporary));
  await assert.rejects(scoreManifest({ input: join(dir, 'nowhere'), metric: 'contrast' }), /cannot read --in .*nowhere: ENOENT/);
  await assert.rejects(scoreManifest({ input: dir, metric: 'contrast', maxSide: 0 }), /--max-side must be an integer >= 1, got 0/);
});
