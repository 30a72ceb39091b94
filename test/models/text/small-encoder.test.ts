/**
 * SmallTextEncoder: shapes and masks, null captions, padding invariance, deterministic init,
 * gradients into every parameter, a float64 gradient check of one layer, checkpoint metadata.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as T from '../../../src/index.js';
import { saveStateDictSync, loadStateDictFileSync } from '../../../src/nn/index.js';
import { SafetensorsFile } from '../../../src/io/safetensors/index.js';
import {
  SmallTextEncoder, ByteTokenizer, buildWordVocabulary, TextEncoderLayer, TextEncoderConfigError, textEncoderMetadata,
  smallTextEncoderFromMetadata, captionInputs, type TextEncoder,
} from '../../../src/models/text/index.js';
import { gradcheck, rand64 } from '../../helpers/gradcheck.js';

const CONFIG = { width: 32, depth: 2, numHeads: 4, mlpRatio: 2, maxTokens: 12, channels: 24 };
const CAPTIONS = ['a red cat', 'a blue dog on a mat', 'the sun'];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Row b, positions [0, n) of features [B, L, C] as a flat array. */
function rows(features: T.Tensor, b: number, n: number): number[] {
  return T.narrow(T.select(features, 0, b), 0, 0, n).toArray();
}

describe('SmallTextEncoder', () => {
  const words = buildWordVocabulary(CAPTIONS);

  test('implements TextEncoder: shapes, channels, maxTokens, mask', () => {
    const enc: TextEncoder = new SmallTextEncoder(words, CONFIG);
    assert.equal(enc.channels, 24);
    assert.equal(enc.maxTokens, 12);
    const out = enc.encode(CAPTIONS);
    assert.deepEqual(out.features.shape, [3, 12, 24]);
    assert.equal(out.features.dtype, 'float32');
    assert.deepEqual(out.mask.shape, [3, 12]);
    assert.equal(out.mask.dtype, 'bool');
    const lengths = CAPTIONS.map((c) => words.encode(c, 12).ids.length);
    assert.deepEqual(lengths, [5, 8, 4]);
    const m = out.mask.toArray();
    lengths.forEach((n, b) => assert.deepEqual(m.slice(b * 12, (b + 1) * 12), Array.from({ length: 12 }, (_, i) => (i < n ? 1 : 0))));
    // Padding positions carry zeros; real tokens are layer-normed (unit scale) then projected.
    assert.ok(rows(out.features, 0, 12).slice(5 * 24).every((v) => v === 0));
    assert.ok(rows(out.features, 0, 5).some((v) => Math.abs(v) > 1e-3));
    assert.deepEqual(out.isNull, [false, false, false]);
    assert.deepEqual(enc.encode(CAPTIONS, { padding: 'longest' }).features.shape, [3, 8, 24]);
  });

  test('empty captions are null: isNull, zero features, all-true mask, forceDropCaption', () => {
    const enc = new SmallTextEncoder(new ByteTokenizer(), CONFIG);
    const out = enc.encode(['a cat', '', '  \n '], { padding: 'longest' });
    assert.deepEqual(out.isNull, [false, true, true]);
    assert.deepEqual(out.features.shape, [3, 12, 24]);
    assert.deepEqual(out.mask.toArray().slice(12), Array<number>(24).fill(1));
    assert.ok(rows(out.features, 1, 12).every((v) => v === 0));
    const inputs = captionInputs(out);
    assert.deepEqual(inputs.forceDropCaption?.toArray(), [0, 1, 1]);
    assert.equal(captionInputs(enc.encode(['a cat'])).forceDropCaption, undefined);
  });

  test('padding invariance: real-token features do not change with more padding', () => {
    const enc = new SmallTextEncoder(words, CONFIG);
    const short = enc.encode(CAPTIONS, { padding: 'longest' });
    const long = enc.encode(CAPTIONS, { padding: 'max' });
    const alone = enc.encode([CAPTIONS[2]!], { padding: 'longest' });
    assert.deepEqual(short.features.shape, [3, 8, 24]);
    for (const [b, n] of [[0, 5], [1, 8], [2, 4]] as const) {
      const d = maxAbsDiff(rows(short.features, b, n), rows(long.features, b, n));
      assert.ok(d < 1e-5, `caption ${b}: max abs diff ${d}`);
    }
    assert.ok(maxAbsDiff(rows(alone.features, 0, 4), rows(long.features, 2, 4)) < 1e-5);
    // The mask matters: without it the pads would change the real tokens.
    const real = words.encode(CAPTIONS[2]!, 12).ids;
    const ids = T.tensor([...real, ...Array<number>(12 - real.length).fill(words.padId)], { dtype: 'int32', shape: [1, 12] });
    const noMask = enc.forward(ids, T.ones([1, 12], { dtype: 'bool' }));
    assert.ok(maxAbsDiff(rows(noMask, 0, 4), rows(long.features, 2, 4)) > 1e-3);
  });

  test('seeded initialisation is deterministic; different seeds differ', () => {
    const a = new SmallTextEncoder(words, CONFIG, { seed: 3 });
    const b = new SmallTextEncoder(words, CONFIG, { seed: 3 });
    const c = new SmallTextEncoder(words, CONFIG, { seed: 4 });
    for (const [name, t] of a.stateDict()) assert.deepEqual(t.toArray(), b.stateDict().get(name)!.toArray(), name);
    assert.deepEqual(a.encode(CAPTIONS).features.toArray(), b.encode(CAPTIONS).features.toArray());
    assert.notDeepEqual(a.stateDict().get('token_embedding.weight')!.toArray(), c.stateDict().get('token_embedding.weight')!.toArray());
  });

  test('parameter names; projection only when channels differ from width', () => {
    const enc = new SmallTextEncoder(words, CONFIG);
    const names = enc.namedParameters().map(([n]) => n);
    assert.deepEqual(names.filter((n) => !n.startsWith('layers.1.')), [
      // A module's own parameters come before its children's, as in PyTorch.
      'pos_embedding', 'token_embedding.weight',
      'layers.0.norm1.weight', 'layers.0.norm1.bias', 'layers.0.attn.qkv.weight', 'layers.0.attn.qkv.bias',
      'layers.0.attn.proj.weight', 'layers.0.attn.proj.bias', 'layers.0.norm2.weight', 'layers.0.norm2.bias',
      'layers.0.mlp.fc1.weight', 'layers.0.mlp.fc1.bias', 'layers.0.mlp.fc2.weight', 'layers.0.mlp.fc2.bias',
      'final_norm.weight', 'final_norm.bias', 'proj.weight', 'proj.bias',
    ]);
    assert.deepEqual(enc.stateDict().get('token_embedding.weight')!.shape, [words.vocabSize, 32]);
    assert.equal(new SmallTextEncoder(words, { ...CONFIG, channels: 32 }).proj, null);
  });

  test('gradients reach every encoder parameter', () => {
    const enc = new SmallTextEncoder(words, CONFIG);
    const out = enc.encode(CAPTIONS);
    T.backward(T.sum(T.mul(out.features, T.randn(out.features.shape, { generator: new T.Generator(5) }))));
    for (const [name, p] of enc.namedParameters()) {
      assert.ok(p.grad, `${name} has no gradient`);
      const g = p.grad.toArray();
      assert.ok(g.every(Number.isFinite), `${name} gradient is not finite`);
      assert.ok(g.some((v) => v !== 0), `${name} gradient is zero`);
    }
    // Padding rows of the positional table get no gradient (nothing reads them at real tokens).
    const pos = enc.posEmbedding.grad!.toArray();
    assert.ok(pos.slice(8 * 32).every((v) => v === 0));
  });

  test('float64 gradient check of one layer with padded keys', () => {
    const layer = new TextEncoderLayer(8, 2, 16, { dtype: 'float64', generator: new T.Generator(1) });
    const mask = T.tensor([[true, true, true, false], [true, true, false, false]]);
    gradcheck('TextEncoderLayer', (x) => layer.forward(x, mask), [rand64([2, 4, 8], 2)]);
  });

  test('config errors name the field', () => {
    assert.throws(() => new SmallTextEncoder(words, { ...CONFIG, width: 30 }), (e: Error) => e instanceof TextEncoderConfigError && /config.width 30 .*numHeads 4/.test(e.message));
    assert.throws(() => new SmallTextEncoder(words, { ...CONFIG, maxTokens: 1 }), /config.maxTokens must be an integer >= 2/);
    assert.throws(() => new SmallTextEncoder(words, CONFIG).encode([]), /at least one caption/);
  });

  test('saved with a checkpoint: metadata + state dict rebuild the same encoder', () => {
    const enc = new SmallTextEncoder(words, CONFIG, { seed: 9 });
    const path = join(mkdtempSync(join(tmpdir(), 'dimba-text-')), 'text.safetensors');
    saveStateDictSync(path, enc, { ...textEncoderMetadata(enc), step: '10' });
    const file = SafetensorsFile.openSync(path);
    const metadata = { ...file.metadata };
    file.close();
    const loaded = smallTextEncoderFromMetadata(metadata, { seed: 1 });
    assert.deepEqual(loaded.config, enc.config);
    loaded.loadStateDict(loadStateDictFileSync(path));
    const captions = [...CAPTIONS, 'an unseen caption'];
    assert.deepEqual(loaded.encode(captions).features.toArray(), enc.encode(captions).features.toArray());
    assert.throws(() => smallTextEncoderFromMetadata({}), /no 'dimba.text_encoder' entry/);
  });
});
