import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, zeros, arange, sum, mul } from '../../src/index.js';
import { assign_ } from '../../src/ops/inplace.js';

test('assign_ copies values in place, casting dtype and broadcasting the source', () => {
  const dst = zeros([2, 3], { dtype: 'float64' });
  const storage = dst.storage;
  assert.equal(assign_(dst, tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float32' })), dst);
  assert.equal(dst.storage, storage);
  assert.deepEqual(dst.toArray(), [1, 2, 3, 4, 5, 6]);
  assign_(dst, tensor([7, 8, 9]));
  assert.deepEqual(dst.toArray(), [7, 8, 9, 7, 8, 9]);
  assign_(dst, 2.5);
  assert.deepEqual(dst.toArray(), [2.5, 2.5, 2.5, 2.5, 2.5, 2.5]);
  const ints = zeros([2], { dtype: 'int64' });
  assign_(ints, tensor([3, -4]));
  assert.deepEqual(ints.toArray(), [3, -4]);
});

test('assign_ writes through strided views and handles source/destination overlap', () => {
  const base = arange(0, 4, 1, { dtype: 'float32' }).reshape(2, 2);
  assign_(base, base.T);
  assert.deepEqual(base.toArray(), [0, 2, 1, 3]);
  const big = zeros([3, 3]);
  assign_(big.narrow(1, 1, 2), tensor([[1, 2], [3, 4], [5, 6]]));
  assert.deepEqual(big.toArray(), [0, 1, 2, 0, 3, 4, 0, 5, 6]);
});

test('assign_ records nothing and rejects bad destinations and shapes', () => {
  const leaf = zeros([2], { requiresGrad: true });
  const y = mul(leaf, 2);
  assert.throws(() => assign_(y, 1), /intermediate result/);
  assign_(leaf, tensor([1, 2], { requiresGrad: true }));
  assert.ok(leaf.isLeaf);
  sum(mul(leaf, leaf)).backward();
  assert.deepEqual(leaf.grad!.toArray(), [2, 4]);
  assert.throws(() => assign_(zeros([2, 3]), zeros([3, 2])), /source \[3, 2\] does not broadcast to destination \[2, 3\]/);
  assert.throws(() => assign_(zeros([1]).expand(4), tensor([1, 2, 3, 4])), /stride 0/);
});
