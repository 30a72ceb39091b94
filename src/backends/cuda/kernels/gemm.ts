/**
 * Row-major strided-batched GEMM on raw device addresses through cublasGemmStridedBatchedEx, for
 * launchers that multiply parts of tensors (conv2d's im2col blocks) rather than whole tensors.
 * C[M, N] = op(A) op(B) + beta C per batch entry, with leading dimensions as stored row-major.
 * cuBLAS is column-major, so we ask for C^T = op(B)^T op(A)^T, as kernels/matmul.ts does. A and B
 * share one dtype; C may be float32 when they are bfloat16 / float16 (float32 accumulation kept
 * unrounded, a combination cublasGemmEx supports). float32 never uses TF32 here.
 */
import type { DType } from '../../../tensor/dtype.js';
import {
  check, CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT, CUBLAS_OP_N, CUBLAS_OP_T,
  CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F, CUDA_R_64F,
} from '../ffi/cublas.js';
import type { CudaRuntime } from '../runtime.js';
import { CudaNotImplementedError } from './unimplemented.js';

const DATA_TYPE: Partial<Record<DType, number>> = {
  float32: CUDA_R_32F, float64: CUDA_R_64F, bfloat16: CUDA_R_16BF, float16: CUDA_R_16F,
};

const SCALARS32 = [new Float32Array([0]), new Float32Array([1])] as const;
const SCALARS64 = [new Float64Array([0]), new Float64Array([1])] as const;

export interface GemmOperand {
  /** Device address of batch entry 0. */
  readonly address: number;
  /** Leading dimension as stored row-major (elements between rows). */
  readonly ld: number;
  /** Elements between batch entries. */
  readonly stride: number;
}

export interface GemmSpec {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly batch: number;
  /** A is stored [k][m] (transposed) rather than [m][k]; likewise B [n][k] rather than [k][n]. */
  readonly transA: boolean;
  readonly transB: boolean;
  readonly a: GemmOperand;
  readonly b: GemmOperand;
  readonly c: GemmOperand;
  readonly abType: DType;
  readonly cType: DType;
  /** 0 overwrites C, 1 adds onto it. */
  readonly beta: 0 | 1;
}

export function gemm(rt: CudaRuntime, g: GemmSpec): void {
  if (g.m === 0 || g.n === 0 || g.batch === 0) return;
  // An empty sum adds nothing; with beta 0 cuBLAS need not write C, so callers zero it themselves.
  if (g.k === 0 && g.beta === 1) return;
  if (g.k === 0) throw new RangeError('gemm: k = 0 with beta = 0 would leave C unwritten');
  const ab = DATA_TYPE[g.abType];
  const c = DATA_TYPE[g.cType];
  if (ab === undefined || c === undefined) throw new CudaNotImplementedError(`GEMM on ${g.abType} -> ${g.cType}`);
  const f64 = g.abType === 'float64';
  const scalars = f64 ? SCALARS64 : SCALARS32;
  const { api, handle } = rt.blas();
  check(api, 'cublasGemmStridedBatchedEx', api.cublasGemmStridedBatchedEx(handle,
    g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, g.transA ? CUBLAS_OP_T : CUBLAS_OP_N, g.n, g.m, g.k,
    scalars[1], g.b.address, ab, g.b.ld, g.b.stride,
    g.a.address, ab, g.a.ld, g.a.stride,
    scalars[g.beta], g.c.address, c, g.c.ld, g.c.stride, g.batch,
    f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
