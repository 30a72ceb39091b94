/**
 * CUDA reductions over leading and middle dims (reduceColumns: reduce.cu's reduce_cols_* read x in
 * place) against the CPU backend, forward and backward, plus run-to-run bit identity of the
 * chunked two-pass sums. Skipped without a GPU (test/cuda/reduce-emu.test.ts runs the same
 * kernels under host emulation).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { getBackend } from '../../src/backends/registry.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { FLOATS, checkOp, cudaSkip, randomCpu, randomInts } from './helpers.js';

const skip = cudaSkip;

/** Counts reduceColumns calls on the CUDA backend while fn runs. */
function columnCalls(fn: () => void): number {
  const kernels = getBackend('cuda').kernels as { reduceColumns: (...args: never[]) => void };
  const original = kernels.reduceColumns;
  let calls = 0;
  kernels.reduceColumns = (...args: never[]) => { calls++; original(...args); };
  try { fn(); } finally { kernels.reduceColumns = original; }
  return calls;
}

// [shape, dims]: a bias gradient (chunked, vector loads); a gate gradient over L;
// odd sizes (scalar loads, one chunk); two middle dims; a 3-wide inner part; many outer entries.
const CASES: readonly [number[], number[]][] = [
  [[2048, 1152], [0]], [[8, 256, 1152], [1]], [[4, 7, 33], [1]], [[3, 5, 6, 7], [1, 2]], [[1000, 3], [0]], [[600, 9, 64], [1]],
];

test('sum, mean, max, min over leading / middle dims take the column kernels and match the CPU', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const [shape, dims] of CASES) {
        const x = randomCpu(shape, dtype);
        const calls = columnCalls(() => {
          checkOp(`sum ${dtype} [${shape}] dims [${dims}]`, [x], (v) => ops.sum(v, dims));
          checkOp(`mean keepdim ${dtype} [${shape}] dims [${dims}]`, [x], (v) => ops.mean(v, dims, true));
          checkOp(`max ${dtype} [${shape}] dims [${dims}]`, [x], (v) => ops.max(v, dims));
          checkOp(`min ${dtype} [${shape}] dims [${dims}]`, [x], (v) => ops.min(v, dims));
        });
        assert.ok(calls >= 4, `${dtype} [${shape}]: column kernel taken ${calls} times (CPU and CUDA passes both count on the fake)`);
      }
      const p = randomCpu([300, 40], dtype, (v) => 1 + 0.01 * v);
      checkOp(`prod dim 0 ${dtype}`, [p], (v) => ops.prod(v, 0));
    });
  }
});

test('strided views: a channel slice, a flipped reduced dim, a broadcast gate', { skip }, () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const x = randomCpu([6, 130, 80], dtype);
    checkOp(`narrow inner ${dtype}`, [x], (v) => ops.sum(ops.narrow(v, 2, 8, 64), 1));
    checkOp(`narrow inner odd ${dtype}`, [x], (v) => ops.sum(ops.narrow(v, 2, 1, 63), [0, 1]));
    checkOp(`flip ${dtype}`, [x], (v) => ops.sum(ops.flip(v, [1]), 1));
    // gate [B, 1, C] times y [B, L, C]: the gate's gradient sums over L through a stride-0 expand.
    const gate = randomCpu([6, 1, 80], dtype);
    checkOp(`gate gradient ${dtype}`, [gate, x], (g, y) => ops.mul(ops.expand(g, [6, 130, 80]), y));
  }
});

test('argmax / argmin over dim 0 (ties to the first index, NaN wins) and exact integer sums', { skip }, () => {
  for (const dtype of ['float32', 'bfloat16', 'int32', 'int64'] as const) {
    const x = randomInts([700, 48], -3, 3, dtype);
    checkOp(`argmax dim 0 ${dtype}`, [x], (v) => ops.argmax(v, 0), { rtol: 0, grad: false });
    checkOp(`argmin middle ${dtype}`, [x], (v) => ops.argmin(ops.reshape(v, [7, 100, 48]), 1), { rtol: 0, grad: false });
    checkOp(`max dim 0 ${dtype}`, [x], (v) => ops.max(v, 0), { rtol: 0, grad: false });
  }
  const values = new Float32Array(600 * 8).map((_, i) => (i % 7) - 3);
  values[5 * 8 + 2] = NaN;
  values[400 * 8 + 2] = NaN;
  values[599 * 8 + 7] = NaN;
  const nan = Tensor.fromHost(values, [600, 8], 'float32');
  checkOp('argmax with NaN', [nan], (v) => ops.argmax(v, 0), { rtol: 0, grad: false });
  checkOp('max with NaN', [nan], (v) => ops.max(v, 0), { grad: false });
  for (const dtype of ['int32', 'int64', 'bool'] as const) {
    const x = randomInts([2000, 24], dtype === 'bool' ? 0 : -100, dtype === 'bool' ? 2 : 100, dtype);
    checkOp(`sum dim 0 ${dtype}`, [x], (v) => ops.sum(v, 0), { rtol: 0 });
  }
});

test('chunked column sums are bit-identical run to run', { skip }, () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const x = randomCpu([8192, 1152], dtype).to('cuda');
    const a = ops.sum(x, 0).toFloat64Array();
    for (let run = 0; run < 3; run++) {
      const b = ops.sum(x, 0).toFloat64Array();
      for (let i = 0; i < a.length; i++) assert.ok(Object.is(a[i], b[i]), `${dtype} run ${run}: element ${i} ${b[i]} vs ${a[i]}`);
    }
  }
});
