import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { DType } from '../../src/tensor/dtype.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../../src/tensor/half.js';
import {
  MAX_HEADER_BYTES,
  readSafetensors,
  SafetensorsError,
  SafetensorsFile,
  ShardedSafetensors,
  shardIndexName,
  writeSafetensors,
  writeSafetensorsSync,
  writeShardedSafetensors,
  writeShardedSafetensorsSync,
  type RawTensor,
} from '../../src/io/safetensors/index.js';

const dir = fs.mkdtempSync(join(os.tmpdir(), 'dimba-safetensors-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
function tempPath(stem: string, ext = '.safetensors'): string {
  fileCounter += 1;
  return join(dir, `${stem}-${fileCounter}${ext}`);
}

type Typed = Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;

function raw(dtype: DType, shape: number[], values: Typed): RawTensor {
  return { dtype, shape, data: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)) };
}

/** One tensor of every dtype, covering scalars, zero-size and multi-dimensional shapes. */
function sampleTensors(): Map<string, RawTensor> {
  return new Map<string, RawTensor>([
    ['layers.0.weight', raw('float32', [2, 3], new Float32Array([1, -2.5, 1 / 3, -0, Infinity, NaN]))],
    ['scale', raw('float64', [], new Float64Array([Math.PI]))],
    ['bf', raw('bfloat16', [2, 2], Uint16Array.from([1, -1, 0.5, 3e38], f32ToBf16Bits))],
    ['half', raw('float16', [4], Uint16Array.from([65504, -0, 2 ** -24, 1 / 3], f32ToF16Bits))],
    ['empty', raw('float16', [0], new Uint16Array(0))],
    ['empty3d', raw('int32', [2, 0, 3], new Int32Array(0))],
    ['ids', raw('int32', [3, 1], new Int32Array([-2147483648, 0, 2147483647]))],
    ['steps', raw('int64', [3], new BigInt64Array([2n ** 40n + 7n, -5n, -(2n ** 62n)]))],
    ['mask', raw('bool', [5], new Uint8Array([1, 0, 0, 1, 1]))],
    ['0', raw('bool', [], new Uint8Array([1]))],
  ]);
}

function assertSameTensor(actual: RawTensor, expected: RawTensor, name: string): void {
  assert.equal(actual.dtype, expected.dtype, `${name}: dtype`);
  assert.deepEqual(actual.shape, expected.shape, `${name}: shape`);
  assert.deepEqual([...actual.data], [...expected.data], `${name}: bytes`);
  assert.equal(actual.data.byteOffset, 0, `${name}: data should own its buffer`);
}

/** Parses the header of a file on disk independently of the reader under test. */
function rawHeader(path: string): { length: number; json: Record<string, { data_offsets: number[]; dtype: string }> } {
  const bytes = fs.readFileSync(path);
  const length = Number(bytes.readBigUInt64LE(0));
  return { length, json: JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) };
}

test('round trip of every dtype, sync and async, including scalars and zero-size tensors', async () => {
  const tensors = sampleTensors();
  const metadata = { format: 'pt', note: 'ünïcode ✓' };
  const syncPath = tempPath('all');
  const asyncPath = tempPath('all');
  writeSafetensorsSync(syncPath, tensors, metadata);
  await writeSafetensors(asyncPath, Object.fromEntries(tensors), metadata);
  assert.deepEqual(fs.readFileSync(syncPath), fs.readFileSync(asyncPath), 'sync and async writers agree');

  const file = await SafetensorsFile.open(asyncPath);
  try {
    assert.deepEqual(file.names().sort(), [...tensors.keys()].sort());
    assert.deepEqual(file.metadata, metadata);
    for (const [name, expected] of tensors) {
      assertSameTensor(file.read(name), expected, name);
      assertSameTensor(await file.readAsync(name), expected, name);
      assert.deepEqual(file.info(name), { dtype: expected.dtype, shape: expected.shape, byteLength: expected.data.length });
    }
  } finally {
    file.close();
  }

  const all = readSafetensors(syncPath);
  assert.equal(all.size, tensors.size);
  for (const [name, expected] of tensors) assertSameTensor(all.get(name)!, expected, name);
});

test('writer aligns the data section and every tensor to its item size, without gaps', () => {
  const path = tempPath('aligned');
  writeSafetensorsSync(path, sampleTensors());
  const { length, json } = rawHeader(path);
  assert.equal((8 + length) % 8, 0, 'data section starts 8-byte aligned');
  const itemBytes: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, BOOL: 1 };
  const spans = Object.values(json).map((e) => ({ begin: e.data_offsets[0], end: e.data_offsets[1], size: itemBytes[e.dtype] }));
  for (const span of spans) assert.equal(span.begin % span.size, 0, `offset ${span.begin} aligned to ${span.size}`);
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const span of spans) {
    assert.equal(span.begin, cursor, 'no gap before this tensor');
    cursor = span.end;
  }
  assert.equal(cursor, fs.statSync(path).size - 8 - length, 'data section ends with the last tensor');
});

test('bytes on disk match a hand-computed layout', () => {
  const path = tempPath('layout');
  writeSafetensorsSync(path, { w: raw('float32', [2], new Float32Array([1, -2])) }, { format: 'pt' });
  // 85 bytes of JSON, padded with 3 spaces to 88 so the data starts at 8 + 88 = 96.
  const json = '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const expected = [
    88, 0, 0, 0, 0, 0, 0, 0,
    ...Buffer.from(json + '   ', 'utf8'),
    0x00, 0x00, 0x80, 0x3f, // 1.0f
    0x00, 0x00, 0x00, 0xc0, // -2.0f
  ];
  assert.equal(expected.length, 104);
  assert.deepEqual([...fs.readFileSync(path)], expected);
});

test('header keys are sorted by name while data is ordered by item size', () => {
  const path = tempPath('order');
  writeSafetensorsSync(path, { a: raw('float16', [1], new Uint16Array([0x3c00])), z: raw('int64', [], new BigInt64Array([-1n])) });
  const json = '{"a":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"z":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}';
  const bytes = fs.readFileSync(path);
  assert.equal(bytes.readBigUInt64LE(0), 112n, '107 bytes of JSON padded to 112');
  assert.equal(bytes.subarray(8, 120).toString('utf8'), json + ' '.repeat(5));
  assert.deepEqual([...bytes.subarray(120)], [255, 255, 255, 255, 255, 255, 255, 255, 0x00, 0x3c]);
});

test('writing replaces an existing file and leaves no temporary files', async () => {
  const path = tempPath('replace');
  fs.writeFileSync(path, 'old contents');
  await writeSafetensors(path, { x: raw('int32', [1], new Int32Array([42])) });
  assert.deepEqual([...readSafetensors(path).get('x')!.data], [42, 0, 0, 0]);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
});

test('writer rejects inconsistent tensors before creating any file', async () => {
  const path = tempPath('bad-write');
  const wrongSize = { x: { dtype: 'float32' as const, shape: [3], data: new Uint8Array(8) } };
  assert.throws(() => writeSafetensorsSync(path, wrongSize), (e: unknown) => isError(e, path, /8 bytes .* needs 12/));
  await assert.rejects(writeSafetensors(path, wrongSize), (e: unknown) => isError(e, path, /needs 12/));
  const reserved = { __metadata__: raw('bool', [], new Uint8Array(1)) };
  assert.throws(() => writeSafetensorsSync(path, reserved), (e: unknown) => isError(e, path, /reserved/));
  const badShape = { x: { dtype: 'bool' as const, shape: [-1], data: new Uint8Array(0) } };
  assert.throws(() => writeSafetensorsSync(path, badShape), (e: unknown) => isError(e, path, /shape/));
  assert.equal(fs.existsSync(path), false);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
});

// ---- hostile files ------------------------------------------------------------------------

function isError(e: unknown, path: string, word: RegExp): boolean {
  assert.ok(e instanceof SafetensorsError, `expected a SafetensorsError, got ${String(e)}`);
  assert.ok(e.message.includes(path), `message should name ${path}: ${e.message}`);
  assert.match(e.message, word);
  return true;
}

/** A file with the given header (JSON text or raw bytes) and data section. */
function hostileFile(header: string | Uint8Array, data: Uint8Array | number = 0, declaredLength?: bigint): string {
  const headerBytes = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declaredLength ?? BigInt(headerBytes.length));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const path = tempPath('hostile');
  fs.writeFileSync(path, Buffer.concat([prefix, headerBytes, body]));
  return path;
}

const entry = (dtype: string, shape: unknown, offsets: unknown): string =>
  JSON.stringify({ dtype, shape, data_offsets: offsets });

interface HostileCase {
  name: string;
  make: () => string;
  word: RegExp;
}

const hostileCases: HostileCase[] = [
  { name: 'empty file', make: () => hostileFileRaw(new Uint8Array(0)), word: /0 bytes, too short/ },
  { name: 'file shorter than 8 bytes', make: () => hostileFileRaw(new Uint8Array(5)), word: /too short/ },
  { name: 'header length beyond the file', make: () => hostileFile('{}', 0, 100n), word: /header length 100 is larger than/ },
  { name: 'header length 2^60', make: () => hostileFile('{}', 0, 2n ** 60n), word: /header length 1152921504606846976 is larger/ },
  { name: 'header length 2^64-1', make: () => hostileFile('{}', 0, 2n ** 64n - 1n), word: /larger than/ },
  { name: 'header not UTF-8', make: () => hostileFile(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), word: /UTF-8/ },
  { name: 'header not JSON', make: () => hostileFile('{"a":'), word: /not valid JSON/ },
  { name: 'empty header', make: () => hostileFile(''), word: /not valid JSON/ },
  { name: 'header an array', make: () => hostileFile('[1,2]'), word: /must be an object/ },
  { name: 'header null', make: () => hostileFile('null'), word: /must be an object/ },
  { name: 'entry not an object', make: () => hostileFile('{"a":3}'), word: /tensor 'a': entry must be an object/ },
  { name: 'missing dtype', make: () => hostileFile('{"a":{"shape":[1],"data_offsets":[0,4]}}', 4), word: /'a': missing or non-string dtype/ },
  { name: 'dtype not a string', make: () => hostileFile('{"a":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}', 4), word: /non-string dtype/ },
  { name: 'unknown dtype', make: () => hostileFile(`{"a":${entry('F12', [1], [0, 4])}}`, 4), word: /unknown dtype 'F12' for tensor 'a'/ },
  { name: 'unsupported dtype U8', make: () => hostileFile(`{"a":${entry('U8', [4], [0, 4])}}`, 4), word: /unsupported dtype U8 for tensor 'a'/ },
  { name: 'unsupported dtype F8_E4M3', make: () => hostileFile(`{"q":${entry('F8_E4M3', [4], [0, 4])}}`, 4), word: /unsupported dtype F8_E4M3 for tensor 'q'/ },
  { name: 'missing shape', make: () => hostileFile('{"a":{"dtype":"F32","data_offsets":[0,4]}}', 4), word: /'a': shape must be/ },
  { name: 'negative dim', make: () => hostileFile(`{"a":${entry('F32', [-1], [0, 4])}}`, 4), word: /shape must be .* non-negative integers/ },
  { name: 'fractional dim', make: () => hostileFile(`{"a":${entry('F32', [1.5], [0, 4])}}`, 4), word: /shape must be/ },
  { name: 'dim as a string', make: () => hostileFile(`{"a":${entry('F32', ['1'], [0, 4])}}`, 4), word: /shape must be/ },
  { name: 'missing data_offsets', make: () => hostileFile('{"a":{"dtype":"F32","shape":[1]}}', 4), word: /data_offsets must be two/ },
  { name: 'three data_offsets', make: () => hostileFile(`{"a":${entry('F32', [1], [0, 4, 8])}}`, 8), word: /data_offsets must be two/ },
  { name: 'negative offset', make: () => hostileFile(`{"a":${entry('F32', [1], [-4, 0])}}`, 4), word: /data_offsets must be two non-negative/ },
  { name: 'offsets as strings', make: () => hostileFile(`{"a":${entry('F32', [1], ['0', '4'])}}`, 4), word: /data_offsets must be/ },
  { name: 'begin after end', make: () => hostileFile(`{"a":${entry('F32', [0], [4, 0])}}`, 4), word: /begin 4 is after end 0/ },
  { name: 'end beyond the data', make: () => hostileFile(`{"a":${entry('F32', [2], [0, 8])}}`, 4), word: /end 8 is beyond the data section of 4 bytes/ },
  { name: 'byte length not numel*itemsize', make: () => hostileFile(`{"a":${entry('F32', [2], [0, 4])}}`, 4), word: /span 4 bytes but shape \[2\] of F32 needs 8/ },
  {
    name: 'overlapping tensors',
    make: () => hostileFile(`{"a":${entry('F32', [2], [0, 8])},"b":${entry('F32', [1], [4, 8])}}`, 8),
    word: /'a' \[0, 8\) and 'b' \[4, 8\) overlap/,
  },
  { name: 'metadata not an object', make: () => hostileFile('{"__metadata__":[1]}'), word: /__metadata__ must be an object/ },
  { name: 'metadata value not a string', make: () => hostileFile('{"__metadata__":{"epoch":3}}'), word: /__metadata__ value for 'epoch' must be a string/ },
  {
    name: 'truncated file',
    make: () => {
      const path = tempPath('truncated');
      writeSafetensorsSync(path, sampleTensors());
      fs.truncateSync(path, fs.statSync(path).size - 3);
      return path;
    },
    word: /truncated/,
  },
];

function hostileFileRaw(bytes: Uint8Array): string {
  const path = tempPath('hostile');
  fs.writeFileSync(path, bytes);
  return path;
}

for (const c of hostileCases) {
  test(`rejects a hostile file: ${c.name}`, async () => {
    const path = c.make();
    assert.throws(() => SafetensorsFile.openSync(path), (e: unknown) => isError(e, path, c.word));
    await assert.rejects(SafetensorsFile.open(path), (e: unknown) => isError(e, path, c.word));
  });
}

test('a header length above the cap is rejected even when the file is that large', () => {
  // A sparse file: the length fits in the file, so only the cap can reject it.
  const path = tempPath('huge-header');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES + 1));
  fs.writeFileSync(path, prefix);
  fs.truncateSync(path, MAX_HEADER_BYTES + 64);
  assert.throws(() => SafetensorsFile.openSync(path), (e: unknown) => isError(e, path, /exceeds the 100000000-byte limit/));
});

test('a missing file is a SafetensorsError naming the path', () => {
  const path = join(dir, 'does-not-exist.safetensors');
  assert.throws(() => SafetensorsFile.openSync(path), (e: unknown) => isError(e, path, /cannot open: ENOENT/));
});

test('valid oddities: padding, gaps, zero-size tensors inside others, empty header', () => {
  const header = `{"a":${entry('F32', [1], [0, 4])},"b":${entry('I32', [1], [8, 12])},"e":${entry('F64', [0, 7], [2, 2])}}   `;
  const data = new Uint8Array([0, 0, 0x80, 0x3f, 9, 9, 9, 9, 7, 0, 0, 0, 1, 2, 3]);
  const path = hostileFile(header, data);
  const tensors = readSafetensors(path);
  assert.deepEqual([...tensors.get('a')!.data], [0, 0, 0x80, 0x3f]);
  assert.deepEqual([...tensors.get('b')!.data], [7, 0, 0, 0]);
  assert.deepEqual(tensors.get('e')!.shape, [0, 7]);
  assert.equal(tensors.get('e')!.data.length, 0);
  assert.equal(readSafetensors(hostileFile('{}')).size, 0);
  const nullMetadata = SafetensorsFile.openSync(hostileFile('{"__metadata__":null}'));
  assert.deepEqual(nullMetadata.metadata, {});
  nullMetadata.close();
});

test('reading one tensor touches only its own bytes', async () => {
  const path = tempPath('partial');
  const a = raw('float32', [4], new Float32Array([1, 2, 3, 4]));
  const b = raw('float32', [1024], new Float32Array(1024).fill(5));
  writeSafetensorsSync(path, { a, b });
  const { length, json } = rawHeader(path);
  const [bBegin, bEnd] = json['b'].data_offsets;
  const [aBegin] = json['a'].data_offsets;
  assert.ok(aBegin < bBegin, 'a is laid out before b (same item size, name order)');

  // Garbage in b's bytes does not disturb a.
  const fd = fs.openSync(path, 'r+');
  fs.writeSync(fd, new Uint8Array(bEnd - bBegin).fill(0xaa), 0, bEnd - bBegin, 8 + length + bBegin);
  fs.closeSync(fd);
  const file = SafetensorsFile.openSync(path);
  try {
    assertSameTensor(file.read('a'), a, 'a');
    assert.ok(file.read('b').data.every((byte) => byte === 0xaa));
    // Cut b off the end of the file after opening: a still reads, b reports the truncation.
    fs.truncateSync(path, 8 + length + bBegin + 10);
    assertSameTensor(file.read('a'), a, 'a');
    assertSameTensor(await file.readAsync('a'), a, 'a');
    assert.throws(() => file.read('b'), (e: unknown) => isError(e, path, /ends early while reading tensor 'b': got 10 of 4096/));
    await assert.rejects(file.readAsync('b'), (e: unknown) => isError(e, path, /ends early/));
  } finally {
    file.close();
  }
});

test('unknown names and closed files give clear errors', () => {
  const path = tempPath('closed');
  writeSafetensorsSync(path, { a: raw('bool', [], new Uint8Array([1])) });
  const file = SafetensorsFile.openSync(path);
  assert.equal(file.has('a'), true);
  assert.throws(() => file.read('nope'), (e: unknown) => isError(e, path, /no tensor named 'nope'/));
  file.close();
  file.close();
  assert.throws(() => file.read('a'), (e: unknown) => isError(e, path, /already closed/));
});

// ---- sharded checkpoints ------------------------------------------------------------------

function shardDir(): string {
  return fs.mkdtempSync(join(dir, 'sharded-'));
}

test('sharded round trip packs greedily in order and writes a Hugging Face index', async () => {
  const out = shardDir();
  const tensors = new Map<string, RawTensor>([
    ['embed', raw('float32', [4], new Float32Array([1, 2, 3, 4]))], // 16 bytes
    ['norm', raw('bfloat16', [4], new Uint16Array([1, 2, 3, 4]))], // 8 bytes
    ['big', raw('float64', [5], new Float64Array([1, 2, 3, 4, 5]))], // 40 bytes, over the limit alone
    ['head', raw('int64', [2], new BigInt64Array([2n ** 40n + 7n, -3n]))], // 16 bytes
    ['flag', raw('bool', [], new Uint8Array([1]))], // 1 byte
    ['none', raw('int32', [0], new Int32Array(0))],
  ]);
  const result = await writeShardedSafetensors(out, 'model', tensors, { maxShardBytes: 24, metadata: { format: 'pt' } });
  assert.deepEqual(result.shardFiles, [
    'model-00001-of-00003.safetensors',
    'model-00002-of-00003.safetensors',
    'model-00003-of-00003.safetensors',
  ]);
  assert.equal(result.indexPath, join(out, 'model.safetensors.index.json'));
  assert.equal(result.totalSize, 81);
  const index: unknown = JSON.parse(fs.readFileSync(result.indexPath, 'utf8'));
  assert.deepEqual(index, {
    metadata: { total_size: 81 },
    weight_map: {
      big: 'model-00002-of-00003.safetensors',
      embed: 'model-00001-of-00003.safetensors',
      flag: 'model-00003-of-00003.safetensors',
      head: 'model-00003-of-00003.safetensors',
      none: 'model-00003-of-00003.safetensors',
      norm: 'model-00001-of-00003.safetensors',
    },
  });
  assert.deepEqual(readSafetensors(join(out, result.shardFiles[0])).size, 2, 'shards are ordinary files');

  for (const sharded of [await ShardedSafetensors.open(result.indexPath), ShardedSafetensors.openSync(result.indexPath)]) {
    try {
      assert.deepEqual(sharded.names().sort(), [...tensors.keys()].sort());
      assert.deepEqual(sharded.metadata, { total_size: 81 });
      for (const [name, expected] of tensors) {
        assertSameTensor(sharded.read(name), expected, name);
        assertSameTensor(await sharded.readAsync(name), expected, name);
        assert.equal(sharded.info(name).byteLength, expected.data.length);
      }
      assert.throws(() => sharded.read('missing'), (e: unknown) => isError(e, result.indexPath, /no tensor named 'missing'/));
    } finally {
      sharded.close();
    }
  }
});

test('sharded sync writer matches the async one and a single shard still gets an index', async () => {
  const a = shardDir();
  const b = shardDir();
  const tensors = { x: raw('float16', [2], new Uint16Array([1, 2])) };
  const asyncResult = await writeShardedSafetensors(a, 'dimba.safetensors', tensors, { maxShardBytes: 1 << 20 });
  const syncResult = writeShardedSafetensorsSync(b, 'dimba', tensors, { maxShardBytes: 1 << 20 });
  assert.deepEqual(asyncResult.shardFiles, ['dimba-00001-of-00001.safetensors']);
  assert.deepEqual(syncResult.shardFiles, asyncResult.shardFiles);
  assert.equal(shardIndexName('dimba'), 'dimba.safetensors.index.json');
  assert.deepEqual(fs.readFileSync(asyncResult.indexPath), fs.readFileSync(syncResult.indexPath));

  // A first tensor over the limit gets a shard of its own; no empty shard comes before it.
  const c = shardDir();
  const oversized = { big: raw('float64', [4], new Float64Array(4)), small: raw('bool', [1], new Uint8Array(1)) };
  const split = writeShardedSafetensorsSync(c, 'm', oversized, { maxShardBytes: 8 });
  assert.deepEqual(split.shardFiles, ['m-00001-of-00002.safetensors', 'm-00002-of-00002.safetensors']);
  assert.deepEqual(readSafetensors(join(c, split.shardFiles[0])).get('big')!.shape, [4]);
});

test('shards are opened lazily: a shard deleted after open only fails when it is needed', async () => {
  const out = shardDir();
  const tensors = { a: raw('int32', [1], new Int32Array([1])), b: raw('int32', [1], new Int32Array([2])) };
  const { indexPath, shardFiles } = await writeShardedSafetensors(out, 'model', tensors, { maxShardBytes: 4 });
  const sharded = ShardedSafetensors.openSync(indexPath);
  try {
    fs.rmSync(join(out, shardFiles[1]));
    assert.deepEqual([...sharded.read('a').data], [1, 0, 0, 0]);
    assert.throws(() => sharded.read('b'), (e: unknown) => e instanceof SafetensorsError && /ENOENT/.test(e.message));
  } finally {
    sharded.close();
  }
});

test('sharded errors: missing shard, tensor absent from its shard, bad index JSON, escaping paths', async () => {
  const out = shardDir();
  const tensors = { a: raw('int32', [1], new Int32Array([1])), b: raw('int32', [1], new Int32Array([2])) };
  const { indexPath, shardFiles } = await writeShardedSafetensors(out, 'model', tensors, { maxShardBytes: 4 });
  const writeIndex = (name: string, body: string): string => {
    const path = join(out, name);
    fs.writeFileSync(path, body);
    return path;
  };

  const missing = writeIndex('missing.index.json', JSON.stringify({ weight_map: { a: 'model-00009-of-00009.safetensors' } }));
  assert.throws(() => ShardedSafetensors.openSync(missing), (e: unknown) => isError(e, missing, /model-00009-of-00009.*does not exist/));
  await assert.rejects(ShardedSafetensors.open(missing), (e: unknown) => isError(e, missing, /missing shard/));

  const wrongShard = writeIndex('wrong.index.json', JSON.stringify({ weight_map: { a: shardFiles[0], b: shardFiles[0] } }));
  const sharded = await ShardedSafetensors.open(wrongShard);
  try {
    assert.throws(() => sharded.read('a'), (e: unknown) => isError(e, wrongShard, /tensor 'b' in model-00001-of-00002.safetensors, but that shard has no such tensor/));
    await assert.rejects(sharded.readAsync('b'), (e: unknown) => isError(e, wrongShard, /no such tensor/));
  } finally {
    sharded.close();
  }

  const cases: [string, string, RegExp][] = [
    ['badjson.index.json', '{"weight_map": {', /index is not valid JSON/],
    ['array.index.json', '[]', /must be an object/],
    ['nomap.index.json', '{"metadata": {}}', /no "weight_map" object/],
    ['badmeta.index.json', '{"metadata": 3, "weight_map": {}}', /"metadata" must be an object/],
    ['badvalue.index.json', '{"weight_map": {"a": 7}}', /entry for 'a' must be a shard file name/],
    ['escape.index.json', '{"weight_map": {"a": "../secret.safetensors"}}', /points outside the index directory/],
    ['absolute.index.json', '{"weight_map": {"a": "/etc/passwd"}}', /points outside the index directory/],
  ];
  for (const [name, body, word] of cases) {
    const path = writeIndex(name, body);
    assert.throws(() => ShardedSafetensors.openSync(path), (e: unknown) => isError(e, path, word), name);
    await assert.rejects(ShardedSafetensors.open(path), (e: unknown) => isError(e, path, word), name);
  }
  const absent = join(out, 'absent.index.json');
  assert.throws(() => ShardedSafetensors.openSync(absent), (e: unknown) => isError(e, absent, /ENOENT/));
  assert.equal(fs.existsSync(indexPath), true);
});

test('sharded writer validates its options before writing anything', async () => {
  const out = shardDir();
  const tensors = { a: raw('int32', [1], new Int32Array([1])) };
  await assert.rejects(writeShardedSafetensors(out, 'model', tensors, { maxShardBytes: 0 }), /maxShardBytes must be a positive integer/);
  await assert.rejects(writeShardedSafetensors(out, 'sub/model', tensors, { maxShardBytes: 8 }), /must be a plain file name/);
  const bad = { a: raw('int32', [1], new Int32Array([1])), b: { dtype: 'int32' as const, shape: [2], data: new Uint8Array(4) } };
  await assert.rejects(writeShardedSafetensors(out, 'model', bad, { maxShardBytes: 4 }), SafetensorsError);
  assert.deepEqual(fs.readdirSync(out), []);
});
