/** CUDA reductions, softmax and normalisation against the CPU backend (skipped without a GPU). */
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { FLOATS, checkOp, cudaSkip, randomCpu, randomInts } from './helpers.js';

const skip = cudaSkip;

// Short rows take the warp-per-row kernels, long rows the block-per-row ones (cols > 256),
// and the last shape the 1024-thread blocks (cols > 8192).
const SHAPES: readonly number[][] = [[7, 5, 3], [3, 1001], [2, 9000], [1, 1]];

test('sum, mean, max, min, prod over odd dims, forward and backward, every float dtype', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const shape of SHAPES) {
        const x = randomCpu(shape, dtype);
        const last = shape.length - 1;
        checkOp(`sum last ${dtype} ${shape}`, [x], (v) => ops.sum(v, last));
        checkOp(`sum all ${dtype} ${shape}`, [x], (v) => ops.sum(v));
        checkOp(`mean first keepdim ${dtype} ${shape}`, [x], (v) => ops.mean(v, 0, true));
        checkOp(`max last ${dtype} ${shape}`, [x], (v) => ops.max(v, last));
        checkOp(`min first ${dtype} ${shape}`, [x], (v) => ops.min(v, 0));
        checkOp(`variance ${dtype} ${shape}`, [x], (v) => ops.variance(v, last, false, 0));
      }
      // prod of values near 1 stays representable for long rows.
      const p = randomCpu([5, 40], dtype, (v) => 1 + 0.05 * v);
      checkOp(`prod ${dtype}`, [p], (v) => ops.prod(v, 1));
      checkOp(`sum over dims 0 and 2 ${dtype}`, [randomCpu([6, 4, 33], dtype)], (v) => ops.sum(v, [0, 2]));
    });
  }
});

test('argmax and argmin (ties to the first index, NaN wins) and integer / bool sums', { skip }, () => {
  for (const dtype of ['float32', 'bfloat16', 'int32'] as const) {
    const x = randomInts([9, 300], -4, 4, dtype);
    checkOp(`argmax ${dtype}`, [x], (v) => ops.argmax(v, 1), { rtol: 0, grad: false });
    checkOp(`argmin ${dtype}`, [x], (v) => ops.argmin(v, 0), { rtol: 0, grad: false });
    checkOp(`argmax short rows ${dtype}`, [x], (v) => ops.argmax(ops.reshape(v, [-1, 12]), 1), { rtol: 0, grad: false });
  }
  const nan = Tensor.fromHost(new Float32Array([1, NaN, 3, NaN, 2, 5, -1, 0]), [2, 4], 'float32');
  checkOp('argmax with NaN', [nan], (v) => ops.argmax(v, 1), { rtol: 0, grad: false });
  checkOp('max with NaN', [nan], (v) => ops.max(v, 1), { grad: false });
  for (const dtype of ['int32', 'int64', 'bool'] as const) {
    const x = randomInts([5, 700], dtype === 'bool' ? 0 : -100, dtype === 'bool' ? 2 : 100, dtype);
    checkOp(`sum ${dtype}`, [x], (v) => ops.sum(v, 1), { rtol: 0 });
    if (dtype !== 'bool') checkOp(`max ${dtype}`, [x], (v) => ops.max(v, 0), { rtol: 0 });
  }
});

test('softmax and log-softmax along any dim, forward and backward, every float dtype', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const shape of [[6, 3, 17], [4, 1500], [2, 9001]]) {
        const x = randomCpu(shape, dtype, (v) => 3 * v);
        checkOp(`softmax last ${dtype} ${shape}`, [x], (v) => ops.softmax(v, -1));
        checkOp(`logSoftmax last ${dtype} ${shape}`, [x], (v) => ops.logSoftmax(v, -1));
        checkOp(`softmax dim 0 ${dtype} ${shape}`, [x], (v) => ops.softmax(v, 0));
      }
    });
  }
});

test('softmax of a fully masked row is zeros (log: -inf), not NaN', { skip }, () => {
  const x = Tensor.fromHost(new Float32Array([-Infinity, -Infinity, -Infinity, 1, 2, 3]), [2, 3], 'float32');
  checkOp('masked softmax', [x], (v) => ops.softmax(v, -1), { grad: false });
  checkOp('masked logSoftmax', [x], (v) => ops.logSoftmax(v, -1), { grad: false });
  const big = Tensor.fromHost(new Float32Array(600).fill(-Infinity), [2, 300], 'float32');
  checkOp('masked softmax, block rows', [big], (v) => ops.softmax(v, -1), { grad: false });
});

test('layerNorm, rmsNorm and groupNorm with affine parameters, forward and backward, every float dtype', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const cols of [24, 1152]) {
        const x = randomCpu([5, 3, cols], dtype, (v) => 2 * v + 0.5);
        const w = randomCpu([cols], dtype, (v) => 1 + 0.1 * v);
        const b = randomCpu([cols], dtype);
        checkOp(`layerNorm ${dtype} ${cols}`, [x, w, b], (v, ww, bb) => ops.layerNorm(v, [cols], ww, bb, 1e-5));
        checkOp(`layerNorm no affine ${dtype} ${cols}`, [x], (v) => ops.layerNorm(v, [cols]));
        checkOp(`rmsNorm ${dtype} ${cols}`, [x, w], (v, ww) => ops.rmsNorm(v, [cols], ww, 1e-6));
      }
      const img = randomCpu([2, 12, 5, 7], dtype);
      const gw = randomCpu([12], dtype);
      const gb = randomCpu([12], dtype);
      checkOp(`groupNorm ${dtype}`, [img, gw, gb], (v, ww, bb) => ops.groupNorm(v, 4, ww, bb));
    });
  }
});
