import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { viewStrides, broadcastShapes } from '../../src/tensor/shape.js';

const range = (...shape: number[]) => T.arange(shape.reduce((a, b) => a * b, 1)).reshape(...shape);

describe('views share storage and have PyTorch semantics', () => {
  test('reshape of a contiguous tensor is a view; of a transposed one, a copy', () => {
    const x = range(2, 3);
    const v = x.reshape(3, 2);
    assert.equal(v.storage, x.storage);
    const t = x.T;
    assert.equal(t.storage, x.storage);
    assert.deepEqual(t.strides, [1, 3]);
    assert.deepEqual(t.toArray(), [0, 3, 1, 4, 2, 5]);
    const r = t.reshape(6);
    assert.notEqual(r.storage, x.storage);
    assert.deepEqual(r.toArray(), [0, 3, 1, 4, 2, 5]);
    assert.throws(() => t.view(6), /incompatible with the layout/);
  });

  test('viewStrides merges contiguous runs and rejects impossible views', () => {
    assert.deepEqual(viewStrides([2, 3, 4], [12, 4, 1], [6, 4]), [4, 1]);
    assert.deepEqual(viewStrides([2, 3, 4], [12, 4, 1], [2, 12]), [12, 1]);
    // [4, 3] transposed to [3, 4]: splitting the leading dim is fine, merging is not.
    assert.deepEqual(viewStrides([3, 4], [1, 3], [3, 2, 2]), [1, 6, 3]);
    assert.equal(viewStrides([3, 4], [1, 3], [12]), null);
    // Size-1 dims can be inserted anywhere.
    assert.deepEqual(viewStrides([2, 3], [3, 1], [2, 1, 3]), [3, 3, 1]);
  });

  test('narrow, select, expand, flip, permute read the right elements', () => {
    const x = range(3, 4);
    assert.deepEqual(T.narrow(x, 1, 1, 2).toArray(), [1, 2, 5, 6, 9, 10]);
    assert.deepEqual(T.select(x, 0, 2).toArray(), [8, 9, 10, 11]);
    assert.deepEqual(T.narrow(x, 0, -1, 1).toArray(), [8, 9, 10, 11]);
    assert.deepEqual(T.expand(T.tensor([1, 2]).reshape(2, 1), [2, 3]).toArray(), [1, 1, 1, 2, 2, 2]);
    assert.deepEqual(T.flip(x, [1]).toArray().slice(0, 4), [3, 2, 1, 0]);
    assert.deepEqual(T.flip(x, [0, 1]).toArray().slice(0, 4), [11, 10, 9, 8]);
    assert.deepEqual(T.permute(range(2, 3, 2), [2, 0, 1]).toArray(), [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11]);
    assert.deepEqual(T.squeeze(range(1, 3, 1)).shape, [3]);
    assert.deepEqual(T.unsqueeze(range(3), -1).shape, [3, 1]);
  });

  test('flip of a narrow of a transpose composes', () => {
    const x = range(4, 5);
    const v = T.flip(T.narrow(x.T, 0, 1, 3), [1]);
    assert.deepEqual(v.shape, [3, 4]);
    assert.deepEqual(v.toArray(), [16, 11, 6, 1, 17, 12, 7, 2, 18, 13, 8, 3]);
  });

  test('cat, stack, split, chunk', () => {
    const a = range(2, 2);
    const b = T.add(range(2, 1), 10);
    assert.deepEqual(T.cat([a, b], 1).toArray(), [0, 1, 10, 2, 3, 11]);
    assert.deepEqual(T.stack([a, a], 0).shape, [2, 2, 2]);
    assert.deepEqual(T.split(range(5), 2).map((t) => t.toArray()), [[0, 1], [2, 3], [4]]);
    assert.deepEqual(T.chunk(range(6), 3).map((t) => t.numel), [2, 2, 2]);
    assert.throws(() => T.cat([a, range(3, 3)], 1), /incompatible/);
  });

  test('writes through a view land in the base storage', () => {
    const x = T.zeros([2, 3]);
    const col = T.narrow(x, 1, 2, 1);
    x.backend.kernels.copy(T.tensor([[7], [8]]), col);
    assert.deepEqual(x.toArray(), [0, 0, 7, 0, 0, 8]);
  });
});

describe('broadcasting', () => {
  test('shapes broadcast like NumPy and errors name the shapes', () => {
    assert.deepEqual(broadcastShapes('t', [2, 1, 4], [3, 1], [4]), [2, 3, 4]);
    assert.throws(() => broadcastShapes('add', [2, 3], [4]), /add: shapes \[2, 3\] and \[4\]/);
  });
  test('binary ops broadcast values correctly', () => {
    const x = range(2, 3);
    assert.deepEqual(T.add(x, T.tensor([10, 20, 30])).toArray(), [10, 21, 32, 13, 24, 35]);
    assert.deepEqual(T.mul(x, T.tensor([[1], [-1]])).toArray(), [0, 1, 2, -3, -4, -5]);
    assert.deepEqual(T.sub(5, T.tensor([1, 2])).toArray(), [4, 3]);
    assert.deepEqual(T.add(x.T, T.tensor([1, 2])).toArray(), [1, 5, 2, 6, 3, 7]);
  });
  test('dtype promotion: scalars keep the tensor dtype, mixed tensors promote', () => {
    const h = T.ones([2], { dtype: 'bfloat16' });
    assert.equal(T.mul(h, 3).dtype, 'bfloat16');
    assert.equal(T.add(h, T.ones([2])).dtype, 'float32');
    assert.equal(T.add(T.ones([2], { dtype: 'int32' }), 0.5).dtype, 'float32');
    assert.equal(T.div(T.ones([2], { dtype: 'int32' }), 2).dtype, 'float32');
    assert.equal(T.lt(h, 2).dtype, 'bool');
  });
});

describe('reductions and misc values', () => {
  test('sum/mean/max/argmax/var values', () => {
    const x = T.tensor([[1, 5, 3], [4, 2, 6]]);
    assert.deepEqual(T.sum(x, 0).toArray(), [5, 7, 9]);
    assert.deepEqual(T.mean(x, 1).toArray(), [3, 4]);
    assert.deepEqual(T.max(x, 1).toArray(), [5, 6]);
    assert.deepEqual(T.argmax(x, 1).toArray(), [1, 2]);
    assert.deepEqual(T.min(x).toArray(), [1]);
    assert.ok(Math.abs(T.variance(x, 1).toArray()[0]! - 4) < 1e-6);
    assert.ok(Number.isNaN(T.max(T.tensor([1, NaN, 3])).item()));
  });
  test('softmax of fully masked rows is zero, not NaN', () => {
    const s = T.softmax(T.tensor([[-Infinity, -Infinity], [0, 0]]), -1).toArray();
    assert.deepEqual(s, [0, 0, 0.5, 0.5]);
  });
  test('key-padded attention ignores padded keys', () => {
    const q = T.randn([1, 1, 2, 4], { generator: new T.Generator(1) });
    const k = T.randn([1, 1, 3, 4], { generator: new T.Generator(2) });
    const v = T.randn([1, 1, 3, 4], { generator: new T.Generator(3) });
    const padded = T.scaledDotProductAttention(q, k, v, { keyPadding: T.tensor([[true, true, false]]) });
    const cut = T.scaledDotProductAttention(q, T.narrow(k, 2, 0, 2), T.narrow(v, 2, 0, 2));
    padded.toArray().forEach((x, i) => assert.ok(Math.abs(x - cut.toArray()[i]!) < 1e-6));
    assert.throws(() => T.scaledDotProductAttention(q, k, v, { keyPadding: T.tensor([[true, false]]) }), /keyPadding must be/);
  });
  test('errors name the op and the shapes', () => {
    assert.throws(() => T.matmul(T.ones([2, 3]), T.ones([4, 2])), /matmul: inner dims differ: \[2, 3\] @ \[4, 2\]/);
    assert.throws(() => T.reshape(T.ones([6]), [4, -1]), /cannot infer/);
    assert.throws(() => T.sum(T.ones([2]), 3), /dim 3 is out of range/);
    assert.throws(() => T.embedding(T.tensor([5], { dtype: 'int32' }), T.ones([3, 2])), /index 5 is out of range for size 3/);
  });
});

test('split is one autograd node whose backward writes the pieces side by side', () => {
  const x = T.tensor([1, 2, 3, 4, 5, 6], { dtype: 'float64' }).reshape(2, 3);
  x.requiresGrad = true;
  const [a, b, c] = T.split(x, 1, 1);
  assert.equal(a!.gradFn, b!.gradFn);
  assert.equal(a!.gradFn?.name, 'split');
  // c takes no part: its gradient is zero; a and b get 2 and 3.
  T.sum(T.add(T.mul(a!, 2), T.mul(b!, 3))).backward();
  assert.deepEqual(Array.from(x.grad!.toFloat64Array()), [2, 3, 0, 2, 3, 0]);
  assert.equal(c!.gradFn, a!.gradFn);
});
