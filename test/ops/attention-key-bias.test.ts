/**
 * The `keyBias` option of scaledDotProductAttention (key padding already in additive form, made
 * once by keyPaddingBias) on the CPU's composed path: the same values and gradients as
 * `keyPadding`, including a batch row with no real key (zero output, no NaN), finite-difference
 * gradients in q, k, v (and in a finite bias, which the composed path differentiates), and clear
 * errors for a bias of the wrong shape, dtype or device, or given together with keyPadding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

function randn(shape: number[], seed: number, dtype: T.DType = 'float64'): T.Tensor {
  return T.randn(shape, { dtype, generator: new T.Generator(seed) });
}

/** Row 0: a caption of 3 real tokens then padding; row 1: no real token at all. */
const keyPadding = T.tensor([[true, true, true, false, false], [false, false, false, false, false]]);

function run(qkv: T.Tensor[], w: T.Tensor, options: T.AttentionOptions): { out: T.Tensor; grads: T.Tensor[] } {
  const leaves = qkv.map((t) => t.detach().requiresGrad_(true));
  const out = T.scaledDotProductAttention(leaves[0]!, leaves[1]!, leaves[2]!, options);
  T.sum(T.mul(T.cast(out, 'float64'), w)).backward();
  return { out, grads: leaves.map((t) => t.grad!) };
}

test('keyPaddingBias: 0 for real tokens, -inf for padding, in the dtype asked for, from bool or numeric masks', () => {
  const b = T.keyPaddingBias(keyPadding, 'float32');
  assert.equal(b.dtype, 'float32');
  assert.deepEqual([...b.shape], [2, 5]);
  assert.deepEqual(b.toArray(), [0, 0, 0, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity]);
  const numeric = T.tensor([[1, 0, 2], [0, 0, 1]], { dtype: 'int32' });
  assert.deepEqual(T.keyPaddingBias(numeric, 'bfloat16').toArray(), [0, -Infinity, 0, -Infinity, -Infinity, 0]);
  assert.equal(T.keyPaddingBias(numeric, 'bfloat16').dtype, 'bfloat16');
  assert.throws(() => T.keyPaddingBias(T.tensor([true, false]), 'float32'), /keyPadding must be \[batch, keys\], got \[2\]/);
  assert.throws(() => T.keyPaddingBias(keyPadding, 'int32'), /bias dtype must be floating, got int32/);
});

for (const dtype of ['float64', 'float32', 'bfloat16'] as const) {
  test(`${dtype}: keyBias gives exactly keyPadding's output and gradients, a row without real keys 0`, () => {
    const qkv = [randn([2, 3, 4, 6], 1, dtype), randn([2, 3, 5, 6], 2, dtype), randn([2, 3, 5, 7], 3, dtype)];
    const w = randn([2, 3, 4, 7], 4);
    const a = run(qkv, w, { keyPadding, scale: 0.6 });
    const b = run(qkv, w, { keyBias: T.keyPaddingBias(keyPadding, dtype), scale: 0.6 });
    assert.deepEqual(b.out.toArray(), a.out.toArray(), 'output');
    b.grads.forEach((g, i) => assert.deepEqual(g.toArray(), a.grads[i]!.toArray(), `grad ${'qkv'[i]}`));
    const row1 = T.narrow(b.out, 0, 1, 1).toFloat64Array();
    assert.ok(row1.every((x) => x === 0), 'the batch row whose keys are all padding attends to nothing: 0');
    assert.ok(b.out.toFloat64Array().some((x) => x !== 0), 'the other row attends to its real keys');
    for (const g of b.grads) assert.ok(g.toFloat64Array().every(Number.isFinite), 'gradients are finite');
  });
}

test('a keyBias of another floating dtype is cast to q\'s, still matching keyPadding', () => {
  const qkv = [randn([2, 2, 3, 4], 5), randn([2, 2, 5, 4], 6), randn([2, 2, 5, 4], 7)];
  const w = randn([2, 2, 3, 4], 8);
  const a = run(qkv, w, { keyPadding });
  const b = run(qkv, w, { keyBias: T.keyPaddingBias(keyPadding, 'float32') });
  assert.equal(b.out.dtype, 'float64');
  assert.deepEqual(b.out.toArray(), a.out.toArray());
  b.grads.forEach((g, i) => assert.deepEqual(g.toArray(), a.grads[i]!.toArray(), `grad ${'qkv'[i]}`));
});

test('keyBias adds to a mask as keyPadding does', () => {
  const qkv = [randn([2, 2, 3, 4], 9), randn([2, 2, 5, 4], 10), randn([2, 2, 5, 4], 11)];
  const w = randn([2, 2, 3, 4], 12);
  const mask = T.tensor([[true, true, false, true, true], [true, false, true, true, true], [false, true, true, true, true]]);
  const partial = T.tensor([[true, false, true, true, false], [true, true, false, false, false]]);
  const a = run(qkv, w, { keyPadding: partial, mask });
  const b = run(qkv, w, { keyBias: T.keyPaddingBias(partial, 'float64'), mask });
  assert.deepEqual(b.out.toArray(), a.out.toArray());
  b.grads.forEach((g, i) => assert.deepEqual(g.toArray(), a.grads[i]!.toArray(), `grad ${'qkv'[i]}`));
});

test('gradients with a keyBias against finite differences (q, k, v; and a finite bias itself)', () => {
  const keyBias = T.keyPaddingBias(T.tensor([[true, true, false, false, true], [true, false, false, false, false]]), 'float64');
  gradcheck('sdpa keyBias', (q, k, v) => T.scaledDotProductAttention(q, k, v, { keyBias }),
    [rand64([2, 2, 3, 4], 13), rand64([2, 2, 5, 4], 14), rand64([2, 2, 5, 3], 15)]);
  // A bias that needs a gradient takes the composed path, where it is an ordinary addend.
  gradcheck('sdpa finite keyBias', (q, k, v, bias) => T.scaledDotProductAttention(q, k, v, { keyBias: bias }),
    [rand64([2, 2, 3, 4], 16), rand64([2, 2, 5, 4], 17), rand64([2, 2, 5, 3], 18), rand64([2, 5], 19)]);
});

test('a bad keyBias is an error naming what is wrong', () => {
  const [q, k, v] = [randn([2, 2, 3, 4], 20), randn([2, 2, 5, 4], 21), randn([2, 2, 5, 4], 22)];
  const sdpa = (options: T.AttentionOptions) => T.scaledDotProductAttention(q, k, v, options);
  assert.throws(() => sdpa({ keyBias: T.zeros([2, 4], { dtype: 'float64' }) }), /keyBias must be \[batch=2, keys=5\], got \[2, 4\]/);
  assert.throws(() => sdpa({ keyBias: T.zeros([1, 5], { dtype: 'float64' }) }), /keyBias must be \[batch=2, keys=5\], got \[1, 5\]/);
  assert.throws(() => sdpa({ keyBias: T.zeros([2, 1, 1, 5], { dtype: 'float64' }) }), /keyBias must be \[batch=2, keys=5\], got \[2, 1, 1, 5\]/);
  assert.throws(() => sdpa({ keyBias: keyPadding }), /keyBias must be a floating additive bias.*got dtype bool; pass a boolean mask as keyPadding/);
  assert.throws(() => sdpa({ keyBias: T.zeros([2, 5], { dtype: 'int32' }) }), /keyBias must be a floating additive bias.*got dtype int32/);
  assert.throws(() => sdpa({ keyBias: T.zeros([2, 5], { dtype: 'float64', device: 'meta' }) }), /keyBias is on meta.*q on cpu/);
  assert.throws(() => sdpa({ keyPadding, keyBias: T.keyPaddingBias(keyPadding, 'float64') }), /keyPadding and keyBias .* pass one/);
});
