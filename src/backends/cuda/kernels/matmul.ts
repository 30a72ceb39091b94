/**
 * matmul through cublasGemmStridedBatchedEx. cuBLAS is column-major; a row-major [m, n] output is
 * a column-major [n, m] one, so we ask cuBLAS for out^T = op(B)^T op(A)^T with the operands
 * swapped. bfloat16 / float16 inputs accumulate in float32 (CUBLAS_COMPUTE_32F); float32 uses
 * plain FP32 (no TF32) unless the backend was created with allowTf32; float64 uses FP64.
 */
import type { Kernels } from '../../backend.js';
import type { DType } from '../../../tensor/dtype.js';
import {
  check, CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT, CUBLAS_OP_N, CUBLAS_OP_T,
  CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F, CUDA_R_64F,
} from '../ffi/cublas.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { CudaNotImplementedError } from './unimplemented.js';
import { copyKernels } from './copy.js';

const DATA_TYPE: Partial<Record<DType, number>> = {
  float32: CUDA_R_32F, float64: CUDA_R_64F, bfloat16: CUDA_R_16BF, float16: CUDA_R_16F,
};

const ONE32 = new Float32Array([1]);
const ZERO32 = new Float32Array([0]);
const ONE64 = new Float64Array([1]);
const ZERO64 = new Float64Array([0]);

export function matmulKernels(rt: CudaRuntime): Pick<Kernels, 'matmul'> {
  const { fill } = copyKernels(rt);
  return {
    matmul(a, b, out, args) {
      const { batch, m, n, k, transA, transB, strideA, strideB } = args;
      if (out.numel === 0) return;
      const type = DATA_TYPE[out.dtype];
      if (type === undefined || a.dtype !== out.dtype || b.dtype !== out.dtype) {
        throw new CudaNotImplementedError(`matmul on ${a.dtype} x ${b.dtype} -> ${out.dtype}`);
      }
      if (!out.isContiguous) throw new TypeError('matmul: CUDA output must be contiguous');
      // cuBLAS with k = 0 need not touch C; the product of empty matrices is zeros.
      if (k === 0) { fill(out, 0); return; }
      const f64 = out.dtype === 'float64';
      const compute = f64 ? CUBLAS_COMPUTE_64F : out.dtype === 'float32' && rt.allowTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      // Column-major view: B stored [k][n] row-major is B^T (n x k, ld n); stored [n][k] (transB) it is B (k x n, ld k).
      const opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
      const ldb = transB ? k : n;
      const opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
      const lda = transA ? m : k;
      const { api, handle } = rt.blas();
      check(api, 'cublasGemmStridedBatchedEx', api.cublasGemmStridedBatchedEx(handle, opB, opA, n, m, k,
        f64 ? ONE64 : ONE32, addressOf(b), type, ldb, strideB,
        addressOf(a), type, lda, strideA,
        f64 ? ZERO64 : ZERO32, addressOf(out), type, n, m * n, batch, compute, CUBLAS_GEMM_DEFAULT));
    },
  };
}
