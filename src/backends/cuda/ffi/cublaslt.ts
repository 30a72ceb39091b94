/**
 * cuBLASLt declarations (cublasLt.h), bound through koffi. Descriptors, layouts, preferences and
 * the handle travel as JS numbers (`uintptr_t`); attribute values as small typed arrays. Enum
 * values are those of cublasLt.h (CUDA 12/13).
 */
import { CublasError } from './cublas.js';
import { CUBLASLT_LIBRARY, folderOf, loadedPath, openLibrary, type OpenedLibrary } from './loader.js';

export const CUBLAS_STATUS_SUCCESS = 0;
export const CUBLAS_STATUS_NOT_SUPPORTED = 15;

/** cublasLtMatmulDescAttributes_t. */
export const MATMUL_DESC = {
  transA: 3,
  transB: 4,
  /** uint32 cublasLtEpilogue_t. */
  epilogue: 7,
  /** const void *: the bias vector (length = D's rows), of D's type unless BIAS_DATA_TYPE says otherwise. */
  biasPointer: 8,
} as const;

/** cublasLtEpilogue_t: add a bias vector broadcast along D's columns. */
export const CUBLASLT_EPILOGUE_BIAS = 4;

/** cublasLtMatrixLayoutAttribute_t. */
export const LAYOUT = {
  batchCount: 5,
  stridedBatchOffset: 6,
} as const;

/** cublasLtMatmulPreferenceAttributes_t. */
export const PREF = {
  maxWorkspaceBytes: 1,
  minAlignmentA: 5,
  minAlignmentB: 6,
  minAlignmentC: 7,
  minAlignmentD: 8,
} as const;

/** sizeof(cublasLtMatmulHeuristicResult_t): algo (64 bytes), workspaceSize, state, wavesCount, reserved[4]. */
export const HEURISTIC_RESULT_BYTES = 96;
export const HEURISTIC_WORKSPACE_OFFSET = 64;
export const HEURISTIC_STATE_OFFSET = 72;

export interface CublasLtApi {
  readonly library: OpenedLibrary;
  cublasLtGetVersion(): number;
  cublasLtGetStatusString(status: number): string;
  cublasLtCreate(handle: BigUint64Array): number;
  cublasLtDestroy(handle: number): number;
  cublasLtMatmulDescCreate(desc: BigUint64Array, computeType: number, scaleType: number): number;
  cublasLtMatmulDescDestroy(desc: number): number;
  cublasLtMatmulDescSetAttribute(desc: number, attr: number, value: ArrayBufferView, bytes: number): number;
  cublasLtMatrixLayoutCreate(layout: BigUint64Array, type: number, rows: number, cols: number, ld: number): number;
  cublasLtMatrixLayoutDestroy(layout: number): number;
  cublasLtMatrixLayoutSetAttribute(layout: number, attr: number, value: ArrayBufferView, bytes: number): number;
  cublasLtMatmulPreferenceCreate(pref: BigUint64Array): number;
  cublasLtMatmulPreferenceDestroy(pref: number): number;
  cublasLtMatmulPreferenceSetAttribute(pref: number, attr: number, value: ArrayBufferView, bytes: number): number;
  /** results: address of requested x HEURISTIC_RESULT_BYTES bytes. */
  cublasLtMatmulAlgoGetHeuristic(handle: number, desc: number, a: number, b: number, c: number, d: number, pref: number,
    requested: number, results: number, returned: Int32Array): number;
  /** alpha, beta: host addresses of scale-type scalars; algo: address of a cublasLtMatmulAlgo_t (a heuristic result). */
  cublasLtMatmul(handle: number, desc: number, alpha: number, A: number, aLayout: number, B: number, bLayout: number,
    beta: number, C: number, cLayout: number, D: number, dLayout: number, algo: number, workspace: number,
    workspaceBytes: number, stream: number): number;
}

/** Throws a CublasError naming the call and cuBLASLt's own status string. */
export function check(api: CublasLtApi, call: string, status: number): void {
  if (status === CUBLAS_STATUS_SUCCESS) return;
  throw new CublasError(call, status, `${call} failed: ${api.cublasLtGetStatusString(status)} (${status})`);
}

/** cublasLtGetVersion's number (major*10000 + minor*100 + patch) as text. */
export function cublasLtVersionString(v: number): string {
  return `${Math.floor(v / 10000)}.${Math.floor((v % 10000) / 100)}.${v % 100}`;
}

/** cuBLASLt, from the folder cuBLAS came from when it is there (the two must be one release). */
export function bindCublasLt(cublas?: OpenedLibrary): CublasLtApi {
  const library = openLibrary(CUBLASLT_LIBRARY, cublas ? { preferFolder: folderOf(loadedPath(cublas)) || undefined } : {});
  const lib = library.handle;
  const h = 'uintptr_t';
  return {
    library,
    cublasLtGetVersion: lib.func('cublasLtGetVersion', 'size_t', []),
    cublasLtGetStatusString: lib.func('cublasLtGetStatusString', 'const char *', ['int']),
    cublasLtCreate: lib.func('cublasLtCreate', 'int', ['void *']),
    cublasLtDestroy: lib.func('cublasLtDestroy', 'int', [h]),
    cublasLtMatmulDescCreate: lib.func('cublasLtMatmulDescCreate', 'int', ['void *', 'int', 'int']),
    cublasLtMatmulDescDestroy: lib.func('cublasLtMatmulDescDestroy', 'int', [h]),
    cublasLtMatmulDescSetAttribute: lib.func('cublasLtMatmulDescSetAttribute', 'int', [h, 'int', 'const void *', 'size_t']),
    cublasLtMatrixLayoutCreate: lib.func('cublasLtMatrixLayoutCreate', 'int', ['void *', 'int', 'uint64_t', 'uint64_t', 'int64_t']),
    cublasLtMatrixLayoutDestroy: lib.func('cublasLtMatrixLayoutDestroy', 'int', [h]),
    cublasLtMatrixLayoutSetAttribute: lib.func('cublasLtMatrixLayoutSetAttribute', 'int', [h, 'int', 'const void *', 'size_t']),
    cublasLtMatmulPreferenceCreate: lib.func('cublasLtMatmulPreferenceCreate', 'int', ['void *']),
    cublasLtMatmulPreferenceDestroy: lib.func('cublasLtMatmulPreferenceDestroy', 'int', [h]),
    cublasLtMatmulPreferenceSetAttribute: lib.func('cublasLtMatmulPreferenceSetAttribute', 'int', [h, 'int', 'const void *', 'size_t']),
    cublasLtMatmulAlgoGetHeuristic: lib.func('cublasLtMatmulAlgoGetHeuristic', 'int', [h, h, h, h, h, h, h, 'int', h, 'void *']),
    cublasLtMatmul: lib.func('cublasLtMatmul', 'int', [h, h, h, h, h, h, h, h, h, h, h, h, h, h, 'size_t', h]),
  };
}
