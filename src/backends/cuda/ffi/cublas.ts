/**
 * cuBLAS declarations (cublas_api.h), bound through koffi (cuBLASLt: cublaslt.ts). Matrix
 * operands are device addresses passed as JS numbers; alpha/beta are host scalars (the default
 * pointer mode) passed as one-element typed arrays.
 */
import { CUBLAS_LIBRARY, openLibrary, type OpenedLibrary } from './loader.js';

export const CUBLAS_STATUS_SUCCESS = 0;
export const CUBLAS_OP_N = 0;
export const CUBLAS_OP_T = 1;
export const CUBLAS_GEMM_DEFAULT = -1;

/** cudaDataType (library_types.h). */
export const CUDA_R_32F = 0;
export const CUDA_R_64F = 1;
export const CUDA_R_16F = 2;
export const CUDA_R_16BF = 14;

/** cublasComputeType_t: accumulate in float32 (TF32 only when asked), or float64. */
export const CUBLAS_COMPUTE_32F = 68;
export const CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
export const CUBLAS_COMPUTE_64F = 70;

/** cublasMath_t: no tensor-core down-conversion unless the compute type asks for it. */
export const CUBLAS_DEFAULT_MATH = 0;

/** libraryPropertyType. */
export const MAJOR_VERSION = 0;
export const MINOR_VERSION = 1;
export const PATCH_LEVEL = 2;

export interface CublasApi {
  readonly library: OpenedLibrary;
  cublasCreate(handle: BigUint64Array): number;
  cublasDestroy(handle: number): number;
  cublasSetStream(handle: number, stream: number): number;
  cublasSetMathMode(handle: number, mode: number): number;
  cublasGetProperty(type: number, value: Int32Array): number;
  cublasGemmStridedBatchedEx(handle: number, transA: number, transB: number, m: number, n: number, k: number,
    alpha: Float32Array | Float64Array, A: number, aType: number, lda: number, strideA: number,
    B: number, bType: number, ldb: number, strideB: number, beta: Float32Array | Float64Array,
    C: number, cType: number, ldc: number, strideC: number, batchCount: number, computeType: number, algo: number): number;
  cublasGetStatusString(status: number): string;
}

export class CublasError extends Error {
  override name = 'CublasError';
  constructor(readonly call: string, readonly status: number, message: string) {
    super(message);
  }
}

/** Throws a CublasError naming the call and cuBLAS's own status string. */
export function check(api: CublasApi, call: string, status: number): void {
  if (status === CUBLAS_STATUS_SUCCESS) return;
  throw new CublasError(call, status, `${call} failed: ${api.cublasGetStatusString(status)} (${status})`);
}

export function bindCublas(library: OpenedLibrary = openLibrary(CUBLAS_LIBRARY)): CublasApi {
  const lib = library.handle;
  const h = 'uintptr_t';
  return {
    library,
    cublasCreate: lib.func('cublasCreate_v2', 'int', ['void *']),
    cublasDestroy: lib.func('cublasDestroy_v2', 'int', [h]),
    cublasSetStream: lib.func('cublasSetStream_v2', 'int', [h, h]),
    cublasSetMathMode: lib.func('cublasSetMathMode', 'int', [h, 'int']),
    cublasGetProperty: lib.func('cublasGetProperty', 'int', ['int', 'void *']),
    cublasGemmStridedBatchedEx: lib.func('cublasGemmStridedBatchedEx', 'int', [
      h, 'int', 'int', 'int', 'int', 'int',
      'const void *', h, 'int', 'int', 'int64_t',
      h, 'int', 'int', 'int64_t', 'const void *',
      h, 'int', 'int', 'int64_t', 'int', 'int', 'int']),
    cublasGetStatusString: lib.func('cublasGetStatusString', 'const char *', ['int']),
  };
}
