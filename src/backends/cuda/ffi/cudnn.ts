/**
 * cuDNN declarations (cudnn_graph.h), bound through koffi: the version, the handle, and the
 * backend (graph) API the fused attention builds its operation graphs with. cuDNN is optional:
 * bindCudnn throws LibraryNotFoundError when it is absent, and callers that can do without it
 * wrap the call in loader.optional().
 *
 * Enum values are cudnn_graph.h's (cuDNN 9); each one used is listed here by its C name so a
 * reader can check it against the header or an API log (CUDNN_LOGINFO_DBG=1 prints the numbers).
 */
import { CUDNN_LIBRARY, CUDNN_PARTS, openLibraryGroup, type LibraryGroup } from './loader.js';

export const CUDNN_STATUS_SUCCESS = 0;

/** cudnnBackendDescriptorType_t */
export const DESC = {
  pointwise: 0, // CUDNN_BACKEND_POINTWISE_DESCRIPTOR
  engine: 2, // CUDNN_BACKEND_ENGINE_DESCRIPTOR
  engineConfig: 3, // CUDNN_BACKEND_ENGINECFG_DESCRIPTOR
  engineHeuristics: 4, // CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR
  executionPlan: 5, // CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR
  knobChoice: 7, // CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR
  pointwiseOp: 13, // CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR
  operationGraph: 15, // CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR
  variantPack: 16, // CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR
  tensor: 17, // CUDNN_BACKEND_TENSOR_DESCRIPTOR
  matmul: 18, // CUDNN_BACKEND_MATMUL_DESCRIPTOR
  matmulOp: 19, // CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR
  reduction: 21, // CUDNN_BACKEND_REDUCTION_DESCRIPTOR
  reductionOp: 22, // CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR
  reshapeOp: 31, // CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR
  sdpaForwardOp: 41, // CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR (cuDNN >= 9.13)
} as const;

/** cudnnBackendAttributeName_t */
export const ATTR = {
  pointwiseMode: 0, // CUDNN_ATTR_POINTWISE_MODE
  pointwiseMathPrec: 1, // CUDNN_ATTR_POINTWISE_MATH_PREC
  heurMode: 200, // CUDNN_ATTR_ENGINEHEUR_MODE
  heurOperationGraph: 201, // CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH
  heurResults: 202, // CUDNN_ATTR_ENGINEHEUR_RESULTS
  engineConfigEngine: 300, // CUDNN_ATTR_ENGINECFG_ENGINE
  engineConfigKnobChoices: 302, // CUDNN_ATTR_ENGINECFG_KNOB_CHOICES
  engineConfigWorkspace: 303, // CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE
  planEngineConfig: 401, // CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG
  planWorkspace: 402, // CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE
  knobType: 600, // CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE
  knobValue: 601, // CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE
  pointwiseOpDesc: 750, // CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR
  pointwiseOpX: 751, // CUDNN_ATTR_OPERATION_POINTWISE_XDESC
  pointwiseOpB: 752, // CUDNN_ATTR_OPERATION_POINTWISE_BDESC
  pointwiseOpY: 753, // CUDNN_ATTR_OPERATION_POINTWISE_YDESC
  pointwiseOpAlpha1: 754, // CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1
  pointwiseOpAlpha2: 755, // CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2
  graphHandle: 800, // CUDNN_ATTR_OPERATIONGRAPH_HANDLE
  graphOps: 801, // CUDNN_ATTR_OPERATIONGRAPH_OPS
  tensorAlignment: 900, // CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT
  tensorDataType: 901, // CUDNN_ATTR_TENSOR_DATA_TYPE
  tensorDims: 902, // CUDNN_ATTR_TENSOR_DIMENSIONS
  tensorStrides: 903, // CUDNN_ATTR_TENSOR_STRIDES
  tensorUid: 906, // CUDNN_ATTR_TENSOR_UNIQUE_ID
  tensorVirtual: 907, // CUDNN_ATTR_TENSOR_IS_VIRTUAL
  tensorByValue: 908, // CUDNN_ATTR_TENSOR_IS_BY_VALUE
  variantUids: 1000, // CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS
  variantPointers: 1001, // CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS
  variantWorkspace: 1003, // CUDNN_ATTR_VARIANT_PACK_WORKSPACE
  engineGlobalIndex: 1301, // CUDNN_ATTR_ENGINE_GLOBAL_INDEX
  engineNumericalNote: 1303, // CUDNN_ATTR_ENGINE_NUMERICAL_NOTE
  engineBehaviorNote: 1305, // CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE
  matmulCompType: 1500, // CUDNN_ATTR_MATMUL_COMP_TYPE
  matmulOpA: 1520, // CUDNN_ATTR_OPERATION_MATMUL_ADESC
  matmulOpB: 1521, // CUDNN_ATTR_OPERATION_MATMUL_BDESC
  matmulOpC: 1522, // CUDNN_ATTR_OPERATION_MATMUL_CDESC
  matmulOpDesc: 1523, // CUDNN_ATTR_OPERATION_MATMUL_DESC
  reductionOperator: 1600, // CUDNN_ATTR_REDUCTION_OPERATOR
  reductionCompType: 1601, // CUDNN_ATTR_REDUCTION_COMP_TYPE
  reductionDeterministic: 1602, // CUDNN_ATTR_REDUCTION_IS_DETERMINISTIC
  reductionOpX: 1610, // CUDNN_ATTR_OPERATION_REDUCTION_XDESC
  reductionOpY: 1611, // CUDNN_ATTR_OPERATION_REDUCTION_YDESC
  reductionOpDesc: 1612, // CUDNN_ATTR_OPERATION_REDUCTION_DESC
  reshapeOpX: 2200, // CUDNN_ATTR_OPERATION_RESHAPE_XDESC
  reshapeOpY: 2201, // CUDNN_ATTR_OPERATION_RESHAPE_YDESC
  sdpaQ: 2800, // CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC
  sdpaK: 2801, // CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC
  sdpaV: 2802, // CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC
  sdpaO: 2803, // CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC
  sdpaStats: 2804, // CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC
  sdpaScale: 2805, // CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC
} as const;

/** cudnnBackendAttributeType_t */
export const TYPE = {
  handle: 0, // CUDNN_TYPE_HANDLE
  dataType: 1, // CUDNN_TYPE_DATA_TYPE
  boolean: 2, // CUDNN_TYPE_BOOLEAN
  int64: 3, // CUDNN_TYPE_INT64
  float: 4, // CUDNN_TYPE_FLOAT
  voidPtr: 6, // CUDNN_TYPE_VOID_PTR
  heurMode: 8, // CUDNN_TYPE_HEUR_MODE
  knobType: 9, // CUDNN_TYPE_KNOB_TYPE
  numericalNote: 11, // CUDNN_TYPE_NUMERICAL_NOTE
  pointwiseMode: 14, // CUDNN_TYPE_POINTWISE_MODE
  backendDescriptor: 15, // CUDNN_TYPE_BACKEND_DESCRIPTOR
  reductionOperator: 18, // CUDNN_TYPE_REDUCTION_OPERATOR_TYPE
  behaviorNote: 19, // CUDNN_TYPE_BEHAVIOR_NOTE
} as const;

/** cudnnDataType_t */
export const DATA = { float: 0, half: 2, bfloat16: 9 } as const;
/** cudnnPointwiseMode_t (CUDNN_POINTWISE_ADD, _MUL, _DIV, _SUB, _EXP, _LOG, _IDENTITY) */
export const POINTWISE = { add: 0, mul: 1, div: 6, sub: 9, exp: 13, log: 15, identity: 21 } as const;
/** cudnnReduceTensorOp_t (CUDNN_REDUCE_TENSOR_ADD, CUDNN_REDUCE_TENSOR_MAX) */
export const REDUCE = { add: 0, max: 3 } as const;
/** cudnnBackendHeurMode_t: A is what NVIDIA's frontend asks for; FALLBACK lists every engine that may work. */
export const HEUR_MODE = { a: 3, fallback: 2 } as const;
/** cudnnBackendBehaviorNote_t values worth reporting. */
export const BEHAVIOR_NOTES: Readonly<Record<number, string>> = {
  0: 'runtime compilation', 3: 'supports CUDA graphs', 4: 'depends on cuBLASLt',
};
/** cudnnBackendKnobType_t names for the knobs attention engines report (others print as numbers). */
export const KNOB_NAMES: Readonly<Record<number, string>> = { 14: 'stages', 24: 'kernel_cfg', 25: 'workspace', 27: 'cga_m', 28: 'cga_n' };
/** CUDNN_KNOB_TYPE_COUNTS in recent headers is below this: room for every knob an engine config can hold. */
export const MAX_KNOBS = 64;

export interface CudnnApi {
  readonly library: LibraryGroup;
  cudnnGetVersion(): number;
  cudnnGetErrorString(status: number): string;
  /** cuDNN >= 9.0: the last error's detailed message into a host buffer (null when the symbol is absent). */
  cudnnGetLastErrorString: ((message: Uint8Array, maxSize: number) => void) | null;
  cudnnCreate(handle: BigUint64Array): number;
  cudnnDestroy(handle: number): number;
  cudnnSetStream(handle: number, stream: number): number;
  cudnnBackendCreateDescriptor(type: number, out: BigUint64Array): number;
  cudnnBackendDestroyDescriptor(desc: number): number;
  cudnnBackendFinalize(desc: number): number;
  /** arrayOfElements: a typed array holding `count` elements of `type`. */
  cudnnBackendSetAttribute(desc: number, name: number, type: number, count: number, elements: ArrayBufferView): number;
  cudnnBackendGetAttribute(desc: number, name: number, type: number, requested: number, count: BigInt64Array,
    elements: ArrayBufferView | null): number;
  cudnnBackendExecute(handle: number, plan: number, variantPack: number): number;
}

export class CudnnError extends Error {
  override name = 'CudnnError';
  constructor(readonly call: string, readonly status: number, message: string) {
    super(message);
  }
}

const lastError = new Uint8Array(2048);

/** cuDNN's detailed message for the last failing call ('' when none or unavailable). */
export function lastErrorString(api: CudnnApi): string {
  if (!api.cudnnGetLastErrorString) return '';
  lastError.fill(0);
  api.cudnnGetLastErrorString(lastError, lastError.length);
  const end = lastError.indexOf(0);
  return new TextDecoder().decode(lastError.subarray(0, end < 0 ? lastError.length : end)).trim();
}

/** "call failed: CUDNN_STATUS_X (code); detail" with cuDNN's own strings. */
export function describeFailure(api: CudnnApi, call: string, status: number): string {
  const detail = lastErrorString(api);
  return `${call} failed: ${api.cudnnGetErrorString(status)} (${status})${detail ? `; ${detail}` : ''}`;
}

/** Throws a CudnnError naming the call, cuDNN's error string and its last detailed message. */
export function check(api: CudnnApi, call: string, status: number): void {
  if (status === CUDNN_STATUS_SUCCESS) return;
  throw new CudnnError(call, status, describeFailure(api, call, status));
}

/** cudnnGetVersion's number as text: major*10000 + minor*100 + patch from cuDNN 9, major*1000 + ... before. */
export function cudnnVersionString(v: number): string {
  const major = v >= 90000 ? Math.floor(v / 10000) : Math.floor(v / 1000);
  const rest = v >= 90000 ? v % 10000 : v % 1000;
  return `${major}.${Math.floor(rest / 100)}.${rest % 100}`;
}

/** cuDNN with all its sub-libraries from one folder (see CUDNN_PARTS). */
export function bindCudnn(library: LibraryGroup = openLibraryGroup(CUDNN_LIBRARY, CUDNN_PARTS)): CudnnApi {
  const lib = library.handle;
  const h = 'uintptr_t';
  let lastErrorFn: CudnnApi['cudnnGetLastErrorString'] = null;
  try {
    lastErrorFn = lib.func('cudnnGetLastErrorString', 'void', ['void *', 'size_t']);
  } catch {
    // Older than cuDNN 9: messages carry the status string only.
  }
  return {
    library,
    cudnnGetVersion: lib.func('cudnnGetVersion', 'size_t', []),
    cudnnGetErrorString: lib.func('cudnnGetErrorString', 'const char *', ['int']),
    cudnnGetLastErrorString: lastErrorFn,
    cudnnCreate: lib.func('cudnnCreate', 'int', ['void *']),
    cudnnDestroy: lib.func('cudnnDestroy', 'int', [h]),
    cudnnSetStream: lib.func('cudnnSetStream', 'int', [h, h]),
    cudnnBackendCreateDescriptor: lib.func('cudnnBackendCreateDescriptor', 'int', ['int', 'void *']),
    cudnnBackendDestroyDescriptor: lib.func('cudnnBackendDestroyDescriptor', 'int', [h]),
    cudnnBackendFinalize: lib.func('cudnnBackendFinalize', 'int', [h]),
    cudnnBackendSetAttribute: lib.func('cudnnBackendSetAttribute', 'int', [h, 'int', 'int', 'int64_t', 'const void *']),
    cudnnBackendGetAttribute: lib.func('cudnnBackendGetAttribute', 'int', [h, 'int', 'int', 'int64_t', 'void *', 'void *']),
    cudnnBackendExecute: lib.func('cudnnBackendExecute', 'int', [h, h, h]),
  };
}
