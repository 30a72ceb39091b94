/**
 * CPU matmul. float32 and the half types run on the WebAssembly SIMD, multi-threaded sgemm
 * (halves are widened to float32 first, as the GPU's fp32 accumulation would); float64 and
 * integer tensors run a plain loop accumulating in float64. Both follow the leading dimensions
 * MatmulArgs gives, so row views of wider buffers are read in place.
 */
import type { Kernels, MatmulArgs } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readRange, withOutput, type NumArray } from '../access.js';
import { matmulOperand } from '../../matmul-operands.js';
import { sgemmBatched } from '../gemm/index.js';

/** C[m,n] = op(A) op(B) for one batch entry (leading dimensions ldA, ldB), accumulating in float64. */
function gemmLoop(
  a: NumArray, offA: number, ldA: number, b: NumArray, offB: number, ldB: number, c: NumArray, offC: number, args: MatmulArgs,
): void {
  const { m, n, k, transA, transB } = args;
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const av = transA ? a[offA + p * ldA + i]! : a[offA + i * ldA + p]!;
      if (transB) for (let j = 0; j < n; j++) row[j] += av * b[offB + j * ldB + p]!;
      else {
        const bb = offB + p * ldB;
        for (let j = 0; j < n; j++) row[j] += av * b[bb + j]!;
      }
    }
    c.set(row, offC + i * n);
  }
}

/** The bias values as numbers, after checking the bias is the [n] vector MatmulArgs describes. */
export function biasValues(bias: Tensor, n: number, out: Tensor): NumArray {
  if (bias.dtype !== out.dtype) throw new TypeError(`matmul: bias is ${bias.dtype}, out is ${out.dtype}; the op layer casts it first`);
  if (bias.dtype === 'bool') throw new TypeError('matmul: a bool product takes no bias');
  if (bias.ndim !== 1 || bias.shape[0] !== n) throw new RangeError(`matmul: bias must be [${n}], got [${bias.shape.join(', ')}]`);
  if (n > 1 && bias.strides[0] !== 1) throw new TypeError(`matmul: bias must be contiguous, got stride ${bias.strides[0]}`);
  return readRange(bias, n);
}

function matmul(a: Tensor, b: Tensor, out: Tensor, args: MatmulArgs): void {
  const { batch, m, n, k, transA, transB, strideA, strideB } = args;
  const bias = args.bias ? biasValues(args.bias, n, out) : null;
  const { ld: ldA, extent: extentA } = matmulOperand('a', a, args);
  const { ld: ldB, extent: extentB } = matmulOperand('b', b, args);
  const as = readRange(a, extentA);
  const bs = readRange(b, extentB);
  withOutput(out, (cs) => {
    if (as instanceof Float32Array && bs instanceof Float32Array && cs instanceof Float32Array) {
      sgemmBatched(transA, transB, m, n, k, 1, as, 0, ldA, strideA, bs, 0, ldB, strideB,
        0, cs, 0, n, m * n, batch);
    } else {
      for (let i = 0; i < batch; i++) gemmLoop(as, i * strideA, ldA, bs, i * strideB, ldB, cs, i * m * n, args);
    }
    // cs still holds the float32 (float64) sums: the bias joins them before withOutput's one
    // rounding to a half dtype, as cuBLASLt's bias epilogue does.
    if (bias) {
      for (let r = 0, rows = batch * m; r < rows; r++) {
        const base = r * n;
        for (let j = 0; j < n; j++) cs[base + j] += bias[j]!;
      }
    }
  });
}

export const matmulKernels: Pick<Kernels, 'matmul'> = { matmul };
