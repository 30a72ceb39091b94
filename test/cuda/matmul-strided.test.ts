/**
 * CUDA matmul / linear on operands whose rows are strided (MatmulArgs.ldA / ldB) against the CPU
 * backend, forward and backward: the Mamba mixer's dt ([B, L, 72] of x_proj's [B, L, 104]
 * output) through dt_proj, batched products of padded buffers for every transpose pair, an odd
 * leading dimension at an unaligned start (cuBLASLt may decline it: GemmEx then serves), and the
 * integer kernel. Also: no copy of the buffer on the device, and the launcher's checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { MatmulArgs } from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';
import type { LtOperand } from '../../src/backends/cuda/blas-lt.js';
import { columnMajorProblem } from '../../src/backends/cuda/kernels/gemm.js';
import { FLOATS, checkOp, cudaSkip, randomCpu, randomInts } from './helpers.js';
import { routeOf, withRoute } from './gemm-route.js';
import { observeKernels } from '../helpers/observe-kernels.js';

const skip = cudaSkip;

type View = (t: Tensor) => Tensor;

/** dt = split(dbc, [R, N, N], 2)[0], as the mixer takes it. */
const dtOf = (dbc: Tensor, r = 72, n = 16) => ops.split(dbc, [r, n, n], 2)[0]!;

/** a [2, 5, 7] and b [2, 7, 4] (or stored transposed) read from wider buffers: rows and batch entries farther apart than dense. */
const A: View = (x) => ops.narrow(ops.narrow(x, 2, 1, 7), 1, 0, 5);
const B: View = (x) => ops.narrow(ops.narrow(x, 2, 2, 4), 1, 1, 7);
const AT: View = (x) => ops.transpose(ops.narrow(ops.narrow(x, 2, 0, 5), 1, 1, 7), 1, 2);
const BT: View = (x) => ops.transpose(ops.narrow(ops.narrow(x, 2, 3, 7), 1, 0, 4), 1, 2);
const PAIRS: [string, [number[], number[]], [View, View]][] = [
  ['NN', [[2, 6, 9], [2, 8, 6]], [A, B]],
  ['TN', [[2, 8, 8], [2, 8, 6]], [AT, B]],
  ['NT', [[2, 6, 9], [2, 5, 10]], [A, BT]],
  ['TT', [[2, 8, 8], [2, 5, 10]], [AT, BT]],
];

// ---- CPU: padded leading dimensions in the column-major problem handed to cuBLAS / cuBLASLt ----

test('padded leading dimensions map onto the column-major operands: every transpose pair reads the right elements', () => {
  const [m, n, k, batch] = [3, 5, 4, 2];
  /** Element (r, c) of op(o) in batch entry e, read column-major as cuBLAS does (layout rows x cols, ld). */
  const at = (data: Float64Array, o: LtOperand, e: number, r: number, c: number) => {
    const [row, col] = o.trans ? [c, r] : [r, c];
    assert.ok(row < o.rows && col < o.cols && o.ld >= o.rows, `(${row}, ${col}) outside ${o.rows} x ${o.cols} / ld ${o.ld}`);
    return data[e * o.stride + col * o.ld + row]!;
  };
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const ldA = (transA ? m : k) + 3;
      const ldB = (transB ? k : n) + 2;
      const strideA = (transA ? k : m) * ldA + 1;
      const strideB = (transB ? n : k) * ldB + 5;
      const A = Float64Array.from({ length: batch * strideA }, (_, i) => ((i * 7) % 11) - 5);
      const B = Float64Array.from({ length: batch * strideB }, (_, i) => ((i * 5) % 13) - 6);
      const p = columnMajorProblem({
        m, n, k, batch, transA, transB, abType: 'float32', cType: 'float32', beta: 0,
        a: { address: 0x1000, ld: ldA, stride: strideA }, b: { address: 0x2000, ld: ldB, stride: strideB }, c: { address: 0x3000, ld: n, stride: m * n },
      });
      for (let e = 0; e < batch; e++) {
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let want = 0;
            let got = 0;
            for (let q = 0; q < k; q++) {
              want += (transA ? A[e * strideA + q * ldA + i]! : A[e * strideA + i * ldA + q]!)
                * (transB ? B[e * strideB + j * ldB + q]! : B[e * strideB + q * ldB + j]!);
              // cuBLAS computes C^T = op(A') op(B') with A' our B, B' our A: element (j, i).
              got += at(B, p.a, e, j, q) * at(A, p.b, e, q, i);
            }
            assert.equal(got, want, `transA ${transA} transB ${transB} at ${e},${i},${j}`);
          }
        }
      }
    }
  }
});

// ---- GPU: against the CPU backend ----

function stridedCases(dtype: DType): void {
  checkOp(`${dtype} Mamba dt linear`, [randomCpu([2, 16, 104], dtype), randomCpu([64, 72], dtype)], (d, w) => ops.linear(dtOf(d!), w!));
  checkOp(`${dtype} Mamba dt linear + bias`, [randomCpu([2, 16, 104], dtype), randomCpu([64, 72], dtype), randomCpu([64], dtype)],
    (d, w, b) => ops.linear(dtOf(d!), w!, b!));
  for (const [name, [sa, sb], [va, vb]] of PAIRS) {
    checkOp(`${dtype} batched ${name}`, [randomCpu(sa, dtype), randomCpu(sb, dtype)], (x, y) => ops.matmul(va(x!), vb(y!)));
  }
  // ld 103 (odd, so rows are not 16-byte aligned) starting one element in: cuBLASLt may decline, GemmEx must not.
  checkOp(`${dtype} odd ld, unaligned start`, [randomCpu([2, 9, 103], dtype), randomCpu([48, 72], dtype)],
    (d, w) => ops.linear(ops.narrow(d!, 2, 1, 72), w!));
  // A transposed row view through a weight (the backward's dt^T g shape, forward).
  checkOp(`${dtype} transposed row view`, [randomCpu([2, 40, 104], dtype), randomCpu([2, 40, 24], dtype)],
    (d, g) => ops.matmul(ops.transpose(dtOf(d!), 1, 2), g!));
}

for (const use of ['half', 'all', 'off'] as const) {
  test(`strided rows, DIMBA_CUBLASLT=${use === 'half' ? '1' : use === 'all' ? 'all' : '0'}: each float dtype, forward and backward`, { skip }, async (t) => {
    for (const dtype of FLOATS) {
      await t.test(dtype, () => withRoute(use, routeOf(use, dtype), () => stridedCases(dtype)));
    }
  });
}

test('integer and bool products of padded buffers match the CPU exactly', { skip }, async (t) => {
  for (const dtype of ['int32', 'int64', 'bool'] as const) {
    await t.test(dtype, () => {
      withRoute('half', 'none', () => {
        const [lo, hi] = dtype === 'bool' ? [0, 2] : [-50, 50];
        for (const [name, [sa, sb], [va, vb]] of PAIRS) {
          checkOp(`${dtype} ${name}`, [randomInts(sa, lo, hi, dtype), randomInts(sb, lo, hi, dtype)], (x, y) => ops.matmul(va(x!), vb(y!)));
        }
        checkOp(`${dtype} folded rows`, [randomInts([2, 6, 13], lo, hi, dtype), randomInts([9, 5], lo, hi, dtype)],
          (x, w) => ops.matmul(ops.narrow(x!, 2, 2, 9), w!));
      });
    });
  }
});

test('the dt buffer is not copied on the device, forward or backward; the kernel gets ld 104', { skip }, () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const kernels = getBackend('cuda').kernels;
    const dbc = randomCpu([2, 16, 104], dtype).to('cuda').requiresGrad_();
    const w = randomCpu([64, 72], dtype).to('cuda').requiresGrad_();
    const fwd = observeKernels(kernels, dbc, () => ops.linear(dtOf(dbc), w));
    assert.equal(fwd.copies, 0, `${dtype}: forward copies the buffer`);
    assert.deepEqual(fwd.calls.map((c) => [c.batch, c.m, c.ldA, c.ldB]), [[1, 32, 104, 72]], `${dtype} forward`);
    const bwd = observeKernels(kernels, dbc, () => ops.sum(ops.mul(fwd.result, randomCpu([2, 16, 64], dtype).to('cuda'))).backward());
    assert.equal(bwd.copies, 0, `${dtype}: backward copies the buffer`);
    assert.ok(bwd.calls.some((c) => c.transA && c.ldA === 104), `${dtype}: dt^T g reads dt in place`);
    assert.ok(dbc.grad && w.grad);
  }
});

test('the CUDA launcher refuses a leading dimension below the row length, by name', { skip }, () => {
  const be = getBackend('cuda');
  const a = ops.ones([2, 4]).to('cuda');
  const b = ops.ones([4, 3]).to('cuda');
  const out = ops.zeros([1, 2, 3]).to('cuda');
  const args: MatmulArgs = { batch: 1, m: 2, n: 3, k: 4, transA: false, transB: false, strideA: 0, strideB: 0 };
  assert.throws(() => be.kernels.matmul(a, b, out, { ...args, ldA: 3 }), /ldA must be an integer >= 4, .* got 3/);
  assert.throws(() => be.kernels.matmul(a, b, out, { ...args, ldB: 5 }), /b spans 18 elements .* storage holds 12/);
  const ai = ops.ones([2, 4], { dtype: 'int32' }).to('cuda');
  const bi = ops.ones([4, 3], { dtype: 'int32' }).to('cuda');
  const oi = ops.zeros([1, 2, 3], { dtype: 'int32' }).to('cuda');
  assert.throws(() => be.kernels.matmul(ai, bi, oi, { ...args, ldB: 2 }), /ldB must be an integer >= 3/, 'the integer kernel too');
});
