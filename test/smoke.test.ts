import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, matmul, sum, softmax, randn, Tensor } from '../src/index.js';

test('smoke', () => {
  const a = tensor([[1, 2], [3, 4]], { requiresGrad: true });
  const b = tensor([[5, 6], [7, 8]]);
  const c = matmul(a, b);
  assert.deepEqual(c.toArray(), [19, 22, 43, 50]);
  const l = sum(softmax(c, -1));
  l.backward();
  assert.ok(a.grad instanceof Tensor);
  console.log(a.grad!.toArray(), randn([4]).toArray(), a.T.contiguous().toArray());
});
