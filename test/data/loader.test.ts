import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import { aspectRatioTable } from '../../src/data/buckets.js';
import { DataError } from '../../src/data/errors.js';
import { FolderDataset } from '../../src/data/folder-dataset.js';
import { JsonlDataset } from '../../src/data/jsonl-dataset.js';
import { DataLoader, type Batch, type DataLoaderOptions, type LoaderState } from '../../src/data/loader.js';
import type { SampleSource } from '../../src/data/source.js';
import { TarShardDataset } from '../../src/data/tar-dataset.js';
import { meanRgb, solidImage, tempDir, writeTar } from './fixtures.js';

const root = tempDir('loader');
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** Image i is a solid colour that encodes i, so a batch's pixels identify its samples. */
const colourOf = (i: number): [number, number, number] => [(i * 37) % 256, (i * 11) % 256, 200];
const SHAPES: [number, number][] = [[12, 12], [12, 24], [24, 12]]; // square, wide, tall

let folder: string;
let bucketFolder: string;
let shards: string;

before(async () => {
  folder = join(root, 'square');
  bucketFolder = join(root, 'buckets');
  shards = join(root, 'shards');
  for (const d of [folder, bucketFolder, shards]) fs.mkdirSync(d);
  const tarMembers: [string, Uint8Array | string][][] = [[], []];
  for (let i = 0; i < 13; i++) {
    const name = `img${String(i).padStart(2, '0')}`;
    const png = await solidImage(10, 10, colourOf(i));
    fs.writeFileSync(join(folder, `${name}.png`), png);
    fs.writeFileSync(join(folder, `${name}.txt`), `caption ${i}`);
    const [w, h] = SHAPES[i % 3]!;
    fs.writeFileSync(join(bucketFolder, `${name}.png`), await solidImage(w, h, colourOf(i)));
    fs.writeFileSync(join(bucketFolder, `${name}.txt`), `caption ${i}`);
    tarMembers[i % 2]!.push([`${name}.png`, png], [`${name}.txt`, `caption ${i}`]);
  }
  await writeTar(join(shards, 'a.tar'), tarMembers[0]!);
  await writeTar(join(shards, 'b.tar'), tarMembers[1]!);
});

interface Seen {
  keys: string[];
  captions: string[];
  shape: number[];
  colours: string[];
  epoch: number;
}

function describe(batch: Batch): Seen {
  const data = batch.images.toHost() as Float32Array;
  const per = 3 * batch.height * batch.width;
  const colours = batch.keys.map((_, i) => meanRgb(data.subarray(i * per, (i + 1) * per), batch.height, batch.width).join(','));
  return { keys: batch.keys, captions: batch.captions, shape: [...batch.images.shape], colours, epoch: batch.epoch };
}

async function take(loader: DataLoader, epochs: number, limit = Infinity): Promise<{ seen: Seen[]; states: LoaderState[] }> {
  const seen: Seen[] = [];
  const states: LoaderState[] = [];
  if (limit === 0) return { seen, states };
  for await (const batch of loader.batches(epochs)) {
    seen.push(describe(batch));
    states.push(JSON.parse(JSON.stringify(batch.state)) as LoaderState);
    if (seen.length >= limit) break;
  }
  return { seen, states };
}

const quiet = { log: null } as const;

test('batches are float32 [B, 3, H, W] in [-1, 1] with the right captions and pixels', async () => {
  const loader = new DataLoader({ source: await FolderDataset.open(folder), batchSize: 4, resolution: { size: 8 }, seed: 1, ...quiet });
  const { seen } = await take(loader, 1);
  assert.deepEqual(seen.map((s) => s.shape), [[4, 3, 8, 8], [4, 3, 8, 8], [4, 3, 8, 8], [1, 3, 8, 8]]);
  const keys = seen.flatMap((s) => s.keys);
  assert.deepEqual([...keys].sort(), Array.from({ length: 13 }, (_, i) => `img${String(i).padStart(2, '0')}.png`));
  for (const s of seen) {
    s.keys.forEach((key, j) => {
      const i = Number(key.slice(3, 5));
      assert.equal(s.captions[j], `caption ${i}`);
      assert.equal(s.colours[j], colourOf(i).join(','));
    });
  }
  assert.equal(loader.state.epoch, 1);
  assert.equal(loader.report.total, 0);
});

test('shuffle: fixed by seed and epoch, different across epochs and seeds', async () => {
  const order = async (seed: number, epochs: number): Promise<string[][]> => {
    const loader = new DataLoader({ source: await FolderDataset.open(folder), batchSize: 13, resolution: { size: 4 }, seed, ...quiet });
    return (await take(loader, epochs)).seen.map((s) => s.keys);
  };
  const a = await order(3, 2);
  assert.deepEqual(await order(3, 2), a);
  assert.notDeepEqual(a[0], a[1]);
  assert.notDeepEqual((await order(4, 1))[0], a[0]);
  const unshuffled = new DataLoader({ source: await FolderDataset.open(folder), batchSize: 13, resolution: { size: 4 }, shuffle: false, ...quiet });
  assert.deepEqual((await take(unshuffled, 1)).seen[0]!.keys, Array.from({ length: 13 }, (_, i) => `img${String(i).padStart(2, '0')}.png`));
});

/**
 * For every cut point: run to the cut, save the state as JSON, build a fresh loader from it and
 * run on; the batches must equal the uninterrupted run's, pixels and captions included.
 */
async function checkResume(open: () => Promise<SampleSource>, options: Omit<DataLoaderOptions, 'source'>, epochs: number): Promise<number> {
  const full = (await take(new DataLoader({ source: await open(), ...options }), epochs)).seen;
  assert.ok(full.length > 3);
  for (let cut = 1; cut < full.length; cut++) {
    const first = new DataLoader({ source: await open(), ...options });
    const head = await take(first, epochs, cut);
    const state = head.states[head.states.length - 1]!;
    const remainingEpochs = epochs - state.epoch;
    const resumed = new DataLoader({ source: await open(), ...options, resume: state });
    const tail = await take(resumed, remainingEpochs);
    assert.deepEqual([...head.seen, ...tail.seen], full, `resumed after batch ${cut} (state ${JSON.stringify(state)})`);
  }
  return full.length;
}

test('resume: a resumed loader yields exactly the uninterrupted sequence (fixed size, across epochs)', async () => {
  const batches = await checkResume(() => FolderDataset.open(folder), { batchSize: 3, resolution: { size: 6 }, seed: 9, ...quiet }, 2);
  assert.equal(batches, 10);
});

test('resume with aspect-ratio buckets: partly-filled buckets are restored', async () => {
  const buckets = aspectRatioTable(16);
  const options = { batchSize: 3, resolution: { buckets }, seed: 2, ...quiet };
  const loader = new DataLoader({ source: await FolderDataset.open(bucketFolder), ...options });
  const { seen, states } = await take(loader, 1);
  const shapes = new Set(seen.map((s) => `${s.shape[2]}x${s.shape[3]}`));
  // h/w 0.5 and 2.0 land in the bins nearest in a 16-px table (16x24 labelled 0.6, 24x16 labelled 1.67).
  assert.deepEqual([...shapes].sort(), ['16x16', '16x24', '24x16']);
  assert.ok(states.some((s) => s.pending.length > 0), 'some cut points hold pending samples');
  for (const s of seen) {
    s.keys.forEach((key, j) => assert.equal(s.colours[j], colourOf(Number(key.slice(3, 5))).join(',')));
  }
  await checkResume(() => FolderDataset.open(bucketFolder), options, 2);
});

test('resume over tar shards (replayed stream) and over a JSONL manifest', async () => {
  await checkResume(() => TarShardDataset.open(shards, { shuffleBuffer: 4 }), { batchSize: 4, resolution: { size: 4 }, seed: 5, ...quiet }, 2);
  const manifest = join(root, 'm.jsonl');
  const rows = Array.from({ length: 13 }, (_, i) => JSON.stringify({ image: join(folder, `img${String(i).padStart(2, '0')}.png`), caption: [`a${i}`, `b${i}`, `c${i}`] }));
  fs.writeFileSync(manifest, rows.join('\n'));
  await checkResume(() => JsonlDataset.open(manifest), { batchSize: 5, resolution: { size: 4 }, seed: 5, ...quiet }, 2);
});

test('caption variants: one picked per epoch, deterministically', async () => {
  const manifest = join(root, 'variants.jsonl');
  fs.writeFileSync(manifest, JSON.stringify({ image: join(folder, 'img00.png'), captions: ['red', 'crimson', 'scarlet', 'ruby'] }));
  const picks = async (): Promise<string[]> => {
    const loader = new DataLoader({ source: await JsonlDataset.open(manifest), batchSize: 1, resolution: { size: 4 }, seed: 1, ...quiet });
    return (await take(loader, 12)).seen.map((s) => s.captions[0]!);
  };
  const a = await picks();
  assert.deepEqual(await picks(), a);
  assert.ok(new Set(a).size >= 3, `variants used: ${a.join(', ')}`);
});

test('resume state is checked against the loader', async () => {
  const source = await FolderDataset.open(folder);
  const loader = new DataLoader({ source, batchSize: 2, resolution: { size: 4 }, seed: 1, ...quiet });
  const state = (await take(loader, 1, 1)).states[0]!;
  assert.throws(() => new DataLoader({ source, batchSize: 2, resolution: { size: 4 }, seed: 2, resume: state }), /resume\.seed is 1, expected 2/);
  assert.throws(() => new DataLoader({ source, batchSize: 2, resolution: { size: 4 }, seed: 1, resume: { ...state, pending: [99] } }), /resume\.pending/);
  assert.throws(() => new DataLoader({ source, batchSize: 2, resolution: { size: 4 }, seed: 1, resume: { ...state, source: 'other' } }), /resume\.source/);
  assert.throws(() => new DataLoader({ source, batchSize: 0, resolution: { size: 4 } }), /batchSize must be a positive integer, got 0/);
  assert.throws(() => new DataLoader({ source, batchSize: 1, resolution: { size: -4 } }), /resolution\.size must be a positive integer, got -4/);
});

test('a dataset with no usable sample stops batches() with the report instead of looping', async () => {
  const dir = join(root, 'hopeless');
  fs.mkdirSync(dir);
  fs.writeFileSync(join(dir, 'a.png'), Buffer.from('nope'));
  fs.writeFileSync(join(dir, 'a.txt'), 'x');
  const loader = new DataLoader({ source: await FolderDataset.open(dir), batchSize: 1, resolution: { size: 4 }, ...quiet });
  await assert.rejects(take(loader, Infinity), (e: unknown) => e instanceof DataError && /gave no usable samples/.test(e.message) && e.message.includes('a.png'));
});

test('errors that are not bad input propagate', async () => {
  const source: SampleSource = {
    description: 'broken',
    indexSkips: [],
    async *items() {
      yield { ordinal: 0, record: { key: 'k', file: 'f', load: () => Promise.reject(new RangeError('a bug, not bad data')) } };
    },
  };
  const loader = new DataLoader({ source, batchSize: 1, resolution: { size: 4 }, ...quiet });
  await assert.rejects(take(loader, 1), /a bug, not bad data/);
});
