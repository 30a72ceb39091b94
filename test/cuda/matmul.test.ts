/** CUDA matmul (cuBLAS) against the CPU backend, forward and backward (skipped without a GPU). */
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { FLOATS, checkOp, cudaSkip, randomCpu } from './helpers.js';

const skip = cudaSkip;

test('2-D, batched, broadcast and transposed matmuls in every float dtype, forward and backward', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      const a = randomCpu([37, 53], dtype);
      const b = randomCpu([53, 29], dtype);
      checkOp(`2-D ${dtype}`, [a, b], (x, y) => ops.matmul(x, y));
      checkOp(`a^T b^T ${dtype}`, [a, b], (x, y) => ops.matmul(ops.transpose(y, 0, 1), ops.transpose(x, 0, 1)));
      const ba = randomCpu([3, 4, 11, 19], dtype);
      const bb = randomCpu([4, 19, 7], dtype);
      checkOp(`batched broadcast ${dtype}`, [ba, bb], (x, y) => ops.matmul(x, y));
      checkOp(`batched transposed ${dtype}`, [ba, ba], (x, y) => ops.matmul(x, ops.transpose(y, -1, -2)));
      const w = randomCpu([23, 19], dtype);
      const bias = randomCpu([23], dtype);
      checkOp(`linear ${dtype}`, [ba, w, bias], (x, ww, bb2) => ops.linear(x, ww, bb2));
      const v = randomCpu([19], dtype);
      checkOp(`matrix-vector ${dtype}`, [ba, v], (x, y) => ops.matmul(x, y));
      checkOp(`vector-vector ${dtype}`, [v, v], (x, y) => ops.matmul(x, y));
    });
  }
});

test('attention composed from matmul and softmax matches the CPU, with a key-padding mask', { skip }, () => {
  const q = randomCpu([2, 3, 9, 8]);
  const k = randomCpu([2, 3, 11, 8]);
  const v = randomCpu([2, 3, 11, 5]);
  const keep = ops.lt(ops.arange(0, 11), ops.tensor([[8], [11]], { dtype: 'int32' }));
  checkOp('attention', [q, k, v, keep], (x, y, z, m) => ops.scaledDotProductAttention(x, y, z, { keyPadding: m }));
});

test('empty inner dimension gives zeros', { skip }, () => {
  checkOp('k = 0', [randomCpu([4, 0]), randomCpu([0, 5])], (x, y) => ops.matmul(x, y));
});
