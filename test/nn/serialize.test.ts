import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Tensor, nn, tensor, Generator, randn } from '../../src/index.js';
import { SafetensorsFile } from '../../src/io/safetensors/index.js';

const { Module, Linear, LayerNorm, ModuleList, Conv2d } = nn;

const dir = fs.mkdtempSync(join(os.tmpdir(), 'dimba-nn-serialize-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

class Tiny extends Module {
  embed: nn.Conv2d;
  layers: nn.ModuleList<nn.Linear>;
  norm: nn.LayerNorm;
  table: Tensor;
  count: Tensor;
  constructor(seed: number) {
    super();
    const generator = new Generator(seed);
    this.embed = this.registerModule('x_embedder', new Conv2d(3, 8, 2, { stride: 2, generator }));
    this.layers = this.registerModule('layers', new ModuleList([new Linear(8, 16, { generator }), new Linear(16, 8, { generator })]));
    this.norm = this.registerModule('norm', new LayerNorm(8));
    this.table = this.registerBuffer('table', randn([4, 8], { dtype: 'bfloat16', generator }));
    this.count = this.registerBuffer('count', tensor([seed, -seed], { dtype: 'int64' }));
  }
}

/** Raw bits of every entry, so equality is exact (NaN-safe, half types compared as stored). */
function bits(sd: ReadonlyMap<string, Tensor>): Map<string, { dtype: string; shape: number[]; bytes: number[] }> {
  return new Map([...sd].map(([k, t]) => {
    const host = t.toHost();
    return [k, { dtype: t.dtype, shape: [...t.shape], bytes: [...new Uint8Array(host.buffer, host.byteOffset, host.byteLength)] }];
  }));
}

test('stateDict round trip through a safetensors file is bit-exact, loading into a differently initialised model', async () => {
  const src = new Tiny(1);
  const path = join(dir, 'tiny.safetensors');
  const saved = await nn.saveStateDict(path, src, { step: '12' });
  assert.deepEqual(saved, { path, files: [path] });
  const file = SafetensorsFile.openSync(path);
  assert.deepEqual(file.metadata, { format: 'pt', step: '12' });
  file.close();

  const loaded = await nn.loadStateDictFile(path);
  assert.deepEqual(new Set(loaded.keys()), new Set(src.stateDict().keys()));
  const dst = new Tiny(2);
  assert.notDeepEqual(bits(dst.stateDict()), bits(src.stateDict()));
  dst.loadStateDict(loaded);
  assert.deepEqual(bits(dst.stateDict()), bits(src.stateDict()));
  assert.equal(dst.table.dtype, 'bfloat16');
  assert.deepEqual(dst.count.toArray(), [1, -1]);
});

test('sharded save writes several shards and an index that loads back identically (sync API)', () => {
  const src = new Tiny(3);
  const saved = nn.saveStateDictSync(join(dir, 'model.safetensors'), src, {}, { maxShardBytes: 600 });
  assert.equal(saved.path, join(dir, 'model.safetensors.index.json'));
  assert.ok(saved.files.length > 2, `expected several shards, got ${saved.files.join(', ')}`);
  for (const f of saved.files) assert.ok(fs.existsSync(f), f);
  assert.match(saved.files[0]!, /model-00001-of-000\d\d\.safetensors$/);
  const loaded = nn.loadStateDictFileSync(saved.path);
  assert.deepEqual(bits(loaded), bits(src.stateDict()));
  const dst = new Tiny(4);
  dst.loadStateDict(loaded);
  assert.deepEqual(bits(dst.stateDict()), bits(src.stateDict()));
});

test('dtype options: save as bfloat16, load cast to float64; integer tensors untouched', async () => {
  const src = new Tiny(5);
  const path = join(dir, 'bf16.safetensors');
  nn.saveStateDictSync(path, src, {}, { dtype: 'bfloat16' });
  const file = SafetensorsFile.openSync(path);
  assert.equal(file.info('layers.0.weight').dtype, 'bfloat16');
  assert.equal(file.info('count').dtype, 'int64');
  file.close();
  const loaded = await nn.loadStateDictFile(path, { dtype: 'float64' });
  assert.equal(loaded.get('layers.0.weight')!.dtype, 'float64');
  assert.equal(loaded.get('count')!.dtype, 'int64');
  const w = src.layers.get(0).weight.toArray();
  const back = loaded.get('layers.0.weight')!.toArray();
  back.forEach((v, i) => assert.ok(Math.abs(v - w[i]!) <= Math.abs(w[i]!) / 128, `bf16 rounding too large at ${i}`));
});

test('a plain name → tensor map saves too, and RawTensor conversion handles unaligned bytes', () => {
  const path = join(dir, 'map.safetensors');
  const map = new Map([['a', tensor([[1.5, -2], [3, 4]])], ['b', tensor([1, 0, 1], { dtype: 'bool' })]]);
  nn.saveStateDictSync(path, map);
  const loaded = nn.loadStateDictFileSync(path);
  assert.deepEqual(loaded.get('a')!.toArray(), [1.5, -2, 3, 4]);
  assert.deepEqual(loaded.get('b')!.toArray(), [1, 0, 1]);
  const raw = nn.toRawTensor(tensor([1, 2, 3], { dtype: 'float32' }));
  const shifted = new Uint8Array(raw.data.byteLength + 1);
  shifted.set(raw.data, 1);
  const back = nn.fromRawTensor({ ...raw, data: shifted.subarray(1) });
  assert.deepEqual(back.toArray(), [1, 2, 3]);
});
