/**
 * CUDA residual add + RMSNorm (kernels/add-rms-norm.cu) against the CPU backend's kernels,
 * forward and backward: x float32/bfloat16/float16 on a float32 stream, with and without the
 * residual and the weight (float32 or x's dtype), widths for every K (37, 1000, 1152, 2049,
 * 8192), one row and many rows (the backward's blocks stride over rows and sum partials);
 * the composed fallback (float64, rows wider than the kernels take); deterministic weight
 * gradients. Geometry arithmetic runs on the CPU everywhere. Skipped without a GPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { getBackend } from '../../src/backends/registry.js';
import { addRmsNormGeometry, MAX_ADD_RMS_NORM_COLS } from '../../src/backends/cuda/kernels/add-rms-norm.js';
import { checkOp, cudaSkip, randomCpu, realCuda } from './helpers.js';

const skip = cudaSkip;

test('geometry: K and threads cover C, the backward grid is about one wave and never more blocks than rows', () => {
  for (const c of [1, 37, 1000, 1024, 1025, 1152, 2049, 4096, 8192]) {
    const g = addRmsNormGeometry(500, c, 132);
    assert.ok(g.k * g.threads >= c, `C ${c}: ${JSON.stringify(g)}`);
    assert.ok(g.threads <= 1024 && g.threads % 32 === 0);
    assert.ok(g.k === 1 || Math.ceil(c / (g.k / 2)) > 1024, `C ${c}: the smallest K that fits`);
  }
  assert.equal(addRmsNormGeometry(3, 1152, 132).backwardBlocks, 3);
  assert.equal(addRmsNormGeometry(100000, 1152, 132).backwardBlocks, 132 * 3);
  assert.throws(() => addRmsNormGeometry(4, MAX_ADD_RMS_NORM_COLS + 1, 132), /exceed/);
});

test('the CUDA backend registers the kernels (unless DIMBA_FUSED_ADD_RMSNORM=0)', { skip: skip || (realCuda ? false : 'needs a real GPU') }, () => {
  const fused = getBackend('cuda').fused;
  const want = process.env.DIMBA_FUSED_ADD_RMSNORM !== '0';
  for (const k of ['addRmsNorm', 'addRmsNormBackward', 'addRmsNormSupports'] as const) {
    assert.equal(typeof fused[k] === 'function', want, `${k} registered: ${typeof fused[k]}`);
  }
});

const both = (o: { residual: Tensor; normed: Tensor }) => [o.residual, o.normed];

test('addRmsNorm matches the CPU: dtypes, widths for every K, with and without residual and weight', { skip }, async (t) => {
  for (const dtype of ['bfloat16', 'float32', 'float16'] as const) {
    await t.test(dtype, () => {
      for (const [rows, c] of [[3 * 37, 1152], [1, 37], [67, 1000], [9, 2049], [4, 8192]] as const) {
        const r = randomCpu([rows, c], 'float32', (v) => 3 * v);
        const x = randomCpu([rows, c], dtype);
        const w = randomCpu([c], dtype, (v) => 1 + 0.2 * v);
        checkOp(`${dtype} ${rows}x${c}`, [r, x, w], (a, b, d) => both(T.addRmsNorm(a, b, d, 1e-5)));
        checkOp(`${dtype} ${rows}x${c} first block`, [x, w], (b, d) => both(T.addRmsNorm(null, b, d, 1e-5)));
      }
      const x = randomCpu([2, 17, 40], dtype);
      checkOp(`${dtype} no weight, 3-D`, [randomCpu([2, 17, 40], 'float32'), x], (a, b) => both(T.addRmsNorm(a, b, null)));
      checkOp(`${dtype} float32 weight`, [randomCpu([2, 17, 40], 'float32'), x, randomCpu([40], 'float32', (v) => 1 + v)],
        (a, b, d) => both(T.addRmsNorm(a, b, d)));
    });
  }
});

test('the Mamba blocks\' shape: many rows, so the backward sums partials of many blocks', { skip }, () => {
  const [rows, c] = [8 * 256, 1152];
  checkOp('bfloat16 2048x1152', [randomCpu([rows, c], 'float32', (v) => 4 * v), randomCpu([rows, c], 'bfloat16'),
    randomCpu([c], 'bfloat16', (v) => 1 + 0.1 * v)], (a, b, d) => both(T.addRmsNorm(a, b, d, 1e-5)));
});

test('composed on CUDA where the kernels do not take the call: float64, rows wider than 8192', { skip }, () => {
  checkOp('float64', [randomCpu([5, 24], 'float64'), randomCpu([5, 24], 'float64'), randomCpu([24], 'float64')],
    (a, b, d) => both(T.addRmsNorm(a, b, d)));
  checkOp('C 8200', [randomCpu([2, 8200], 'float32'), randomCpu([2, 8200], 'bfloat16'), randomCpu([8200], 'bfloat16')],
    (a, b, d) => both(T.addRmsNorm(a, b, d)));
});

test('the weight gradient is deterministic (partials summed in block order)', { skip: skip || (realCuda ? false : 'needs a real GPU') }, () => {
  const dtype: DType = 'bfloat16';
  const r = randomCpu([4096, 1152], 'float32').to('cuda');
  const x = randomCpu([4096, 1152], dtype).to('cuda');
  const g = randomCpu([4096, 1152], dtype).to('cuda');
  const grad = () => {
    const w = randomCpu([1152], dtype).to('cuda').requiresGrad_(true);
    T.sum(T.mul(T.addRmsNorm(r, x, w).normed, g)).backward();
    return w.grad!.to('cpu').toFloat64Array();
  };
  assert.deepEqual(grad(), grad());
});
