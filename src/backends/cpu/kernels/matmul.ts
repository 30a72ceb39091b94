/** CPU matmul: float32 goes to the SIMD/threaded sgemm; other float types run a plain loop in their compute type. */
import type { Kernels, MatmulArgs } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readRange, withOutput, type NumArray } from '../access.js';

/** C[m,n] = op(A) op(B) for one batch entry, accumulating in float64. */
function gemmLoop(a: NumArray, offA: number, b: NumArray, offB: number, c: NumArray, offC: number, args: MatmulArgs): void {
  const { m, n, k, transA, transB } = args;
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[offA + p * m + i]! : a[offA + i * k + p]!;
      if (av === 0) continue;
      if (transB) for (let j = 0; j < n; j++) row[j] += av * b[offB + j * k + p]!;
      else {
        const bb = offB + p * n;
        for (let j = 0; j < n; j++) row[j] += av * b[bb + j]!;
      }
    }
    c.set(row, offC + i * n);
  }
}

function matmul(a: Tensor, b: Tensor, out: Tensor, args: MatmulArgs): void {
  const { batch, m, n, k, strideA, strideB } = args;
  const as = readRange(a, (batch - 1) * strideA + m * k);
  const bs = readRange(b, (batch - 1) * strideB + k * n);
  withOutput(out, (cs) => {
    for (let i = 0; i < batch; i++) gemmLoop(as, i * strideA, bs, i * strideB, cs, i * m * n, args);
  });
}

export const matmulKernels: Pick<Kernels, 'matmul'> = { matmul };
