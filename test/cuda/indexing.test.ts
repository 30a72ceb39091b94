/** CUDA index_select / embedding / gather and their scatter-add gradients against the CPU (skipped without a GPU). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { DTYPES } from '../../src/tensor/dtype.js';
import { FLOATS, checkOp, cudaSkip, randomCpu, randomInts, realCuda } from './helpers.js';

const skip = cudaSkip;

test('indexSelect along each dim with repeated and negative indices, every dtype, int32 and int64 indices', { skip }, async (t) => {
  for (const dtype of DTYPES) {
    await t.test(dtype, () => {
      const x = dtype === 'bool' ? randomInts([6, 5, 7], 0, 2, 'bool')
        : dtype.startsWith('int') ? randomInts([6, 5, 7], -99, 99, dtype) : randomCpu([6, 5, 7], dtype);
      for (const indexType of ['int32', 'int64'] as const) {
        for (let dim = 0; dim < 3; dim++) {
          const size = x.shape[dim]!;
          // Repeats make the backward's index_add accumulate; negatives count from the end.
          const index = Tensor.fromHost(new Float64Array([size - 1, 0, -1, 1, 1, -size]), [6], 'float64').cast(indexType);
          checkOp(`indexSelect ${dtype} dim ${dim} ${indexType}`, [x, index], (v, i) => ops.indexSelect(v, dim, i),
            { rtol: 0, gradRtol: dtype === 'bfloat16' ? 2e-2 : undefined });
        }
      }
    });
  }
});

test('embedding lookups and their gradient (index_add) for every float dtype', { skip }, () => {
  for (const dtype of FLOATS) {
    const weight = randomCpu([50, 33], dtype);
    const ids = randomInts([4, 9], 0, 50, 'int64');
    checkOp(`embedding ${dtype}`, [weight, ids], (w, i) => ops.embedding(i, w));
  }
});

test('gather along each dim, forward and backward (scatter_add), float and int dtypes', { skip }, () => {
  for (const dtype of [...FLOATS, 'int32', 'int64'] as const) {
    const x = dtype.startsWith('int') ? randomInts([4, 6, 5], -9, 9, dtype) : randomCpu([4, 6, 5], dtype);
    for (let dim = 0; dim < 3; dim++) {
      const shape = [...x.shape];
      shape[dim] = 3;
      const index = randomInts(shape, -x.shape[dim]!, x.shape[dim]!, dim === 1 ? 'int32' : 'int64');
      checkOp(`gather ${dtype} dim ${dim}`, [x, index], (v, i) => ops.gather(v, dim, i), { rtol: 0 });
    }
  }
});

test('an out-of-range index raises a RangeError naming the op at the next synchronisation', { skip: skip || (!realCuda && 'needs a real GPU') }, () => {
  const x = randomCpu([4, 3]).to('cuda');
  const bad = Tensor.fromHost(new Int32Array([0, 7]), [2], 'int32').to('cuda');
  assert.throws(() => {
    const y = ops.indexSelect(x, 0, bad);
    y.toHost();
  }, (e: unknown) => e instanceof RangeError && /indexSelect: index 7 is out of range for size 4/.test(e.message));
  // The error is reported once; later work is unaffected.
  assert.deepEqual(ops.indexSelect(x, 0, Tensor.fromHost(new Int32Array([3]), [1], 'int32').to('cuda')).toArray().length, 3);
});
