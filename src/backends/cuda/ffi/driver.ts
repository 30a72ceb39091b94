/**
 * CUDA driver API declarations (cuda.h), bound through koffi. Handles (contexts, modules,
 * functions, streams, events) and device addresses travel as plain JS numbers (`uintptr_t`,
 * `uint64_t`): cheaper to pass than koffi pointer objects, and exact below 2^53. The `_v2`
 * symbols are the ones cuda.h maps the plain names to.
 */
import { openLibrary, DRIVER_LIBRARY, type OpenedLibrary } from './loader.js';
import type { LibraryHandle } from './koffi.js';

export const CUDA_SUCCESS = 0;
export const CUDA_ERROR_OUT_OF_MEMORY = 2;
export const CUDA_ERROR_NOT_INITIALIZED = 3;
export const CUDA_ERROR_NO_DEVICE = 100;
export const CUDA_ERROR_NOT_FOUND = 500;

/** CUdevice_attribute values used here. */
export const ATTR = {
  maxThreadsPerBlock: 1,
  multiprocessorCount: 16,
  l2CacheSize: 38,
  computeCapabilityMajor: 75,
  computeCapabilityMinor: 76,
  maxSharedMemoryPerBlockOptin: 97,
} as const;

export const CU_MEMHOSTALLOC_DEVICEMAP = 0x02;
export const CU_EVENT_DEFAULT = 0;

/** CUstreamCaptureMode: which threads' potentially unsafe calls (cuMemAlloc, ...) a capture forbids. */
export const CU_STREAM_CAPTURE_MODE_GLOBAL = 0;
export const CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
export const CU_STREAM_CAPTURE_MODE_RELAXED = 2;
/** CUstreamCaptureStatus. */
export const CU_STREAM_CAPTURE_STATUS_NONE = 0;
export const CU_STREAM_CAPTURE_STATUS_ACTIVE = 1;
export const CU_STREAM_CAPTURE_STATUS_INVALIDATED = 2;
/** Free a graph's unfreed memory-allocation nodes before it is relaunched (cuBLAS may allocate workspace in-graph). */
export const CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH = 1;
/** Status codes of stream capture (cuda.h, CUDA 10+). */
export const CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900;
export const CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901;
export const CUDA_ERROR_STREAM_CAPTURE_IMPLICIT = 906;
export const CUDA_ERROR_CAPTURED_EVENT = 907;
export const CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD = 908;

export interface DriverApi {
  readonly library: OpenedLibrary;
  cuInit(flags: number): number;
  cuDriverGetVersion(version: Int32Array): number;
  cuDeviceGetCount(count: Int32Array): number;
  cuDeviceGet(device: Int32Array, ordinal: number): number;
  cuDeviceGetName(name: Uint8Array, length: number, device: number): number;
  cuDeviceTotalMem(bytes: BigUint64Array, device: number): number;
  cuDeviceGetAttribute(value: Int32Array, attribute: number, device: number): number;
  cuDevicePrimaryCtxRetain(context: BigUint64Array, device: number): number;
  cuCtxSetCurrent(context: number): number;
  cuCtxSynchronize(): number;
  cuMemAlloc(address: BigUint64Array, bytes: number): number;
  cuMemFree(address: number): number;
  cuMemGetInfo(free: BigUint64Array, total: BigUint64Array): number;
  cuMemcpyHtoD(dst: number, src: ArrayBufferView, bytes: number): number;
  cuMemcpyDtoH(dst: ArrayBufferView, src: number, bytes: number): number;
  cuMemcpyDtoDAsync(dst: number, src: number, bytes: number, stream: number): number;
  cuMemHostAlloc(pointer: BigUint64Array, bytes: number, flags: number): number;
  cuMemHostGetDevicePointer(address: BigUint64Array, host: number, flags: number): number;
  cuModuleLoadData(module: BigUint64Array, image: Uint8Array): number;
  cuModuleGetFunction(fn: BigUint64Array, module: number, name: string): number;
  cuLaunchKernel(fn: number, gridX: number, gridY: number, gridZ: number, blockX: number, blockY: number, blockZ: number,
    sharedBytes: number, stream: number, params: number, extra: number): number;
  cuStreamCreate(stream: BigUint64Array, flags: number): number;
  cuStreamSynchronize(stream: number): number;
  cuStreamDestroy(stream: number): number;
  cuEventCreate(event: BigUint64Array, flags: number): number;
  cuEventRecord(event: number, stream: number): number;
  cuEventSynchronize(event: number): number;
  cuEventElapsedTime(ms: Float32Array, start: number, end: number): number;
  cuEventDestroy(event: number): number;
  cuStreamBeginCapture(stream: number, mode: number): number;
  cuStreamEndCapture(stream: number, graph: BigUint64Array): number;
  cuStreamIsCapturing(stream: number, status: Int32Array): number;
  /** Swaps the calling thread's capture mode with mode[0] (push-pop around an unsafe call). */
  cuThreadExchangeStreamCaptureMode(mode: Int32Array): number;
  cuGraphInstantiateWithFlags(exec: BigUint64Array, graph: number, flags: number): number;
  /** Node count into count[0] when nodes is null. */
  cuGraphGetNodes(graph: number, nodes: null, count: BigUint64Array): number;
  cuGraphUpload(exec: number, stream: number): number;
  cuGraphLaunch(exec: number, stream: number): number;
  cuGraphExecDestroy(exec: number): number;
  cuGraphDestroy(graph: number): number;
  cuGetErrorName(status: number, name: (string | null)[]): number;
  cuGetErrorString(status: number, text: (string | null)[]): number;
}

export class CudaError extends Error {
  override name = 'CudaError';
  constructor(readonly call: string, readonly status: number, message: string) {
    super(message);
  }
}

/** Throws a CudaError naming the call and the driver's own name and text for the status. */
export function check(api: DriverApi, call: string, status: number): void {
  if (status === CUDA_SUCCESS) return;
  const name: (string | null)[] = [null];
  const text: (string | null)[] = [null];
  const known = api.cuGetErrorName(status, name) === CUDA_SUCCESS;
  api.cuGetErrorString(status, text);
  throw new CudaError(call, status,
    `${call} failed: ${known ? name[0] : 'unknown CUDA error'} (${status})${text[0] ? `: ${text[0]}` : ''}`);
}

export function bindDriver(library: OpenedLibrary = openLibrary(DRIVER_LIBRARY)): DriverApi {
  const lib = library.handle;
  const h = 'uintptr_t';
  return {
    library,
    cuInit: lib.func('cuInit', 'int', ['unsigned int']),
    cuDriverGetVersion: lib.func('cuDriverGetVersion', 'int', ['void *']),
    cuDeviceGetCount: lib.func('cuDeviceGetCount', 'int', ['void *']),
    cuDeviceGet: lib.func('cuDeviceGet', 'int', ['void *', 'int']),
    cuDeviceGetName: lib.func('cuDeviceGetName', 'int', ['void *', 'int', 'int']),
    cuDeviceTotalMem: lib.func('cuDeviceTotalMem_v2', 'int', ['void *', 'int']),
    cuDeviceGetAttribute: lib.func('cuDeviceGetAttribute', 'int', ['void *', 'int', 'int']),
    cuDevicePrimaryCtxRetain: lib.func('cuDevicePrimaryCtxRetain', 'int', ['void *', 'int']),
    cuCtxSetCurrent: lib.func('cuCtxSetCurrent', 'int', [h]),
    cuCtxSynchronize: lib.func('cuCtxSynchronize', 'int', []),
    cuMemAlloc: lib.func('cuMemAlloc_v2', 'int', ['void *', 'size_t']),
    cuMemFree: lib.func('cuMemFree_v2', 'int', ['uint64_t']),
    cuMemGetInfo: lib.func('cuMemGetInfo_v2', 'int', ['void *', 'void *']),
    cuMemcpyHtoD: lib.func('cuMemcpyHtoD_v2', 'int', ['uint64_t', 'const void *', 'size_t']),
    cuMemcpyDtoH: lib.func('cuMemcpyDtoH_v2', 'int', ['void *', 'uint64_t', 'size_t']),
    cuMemcpyDtoDAsync: lib.func('cuMemcpyDtoDAsync_v2', 'int', ['uint64_t', 'uint64_t', 'size_t', h]),
    cuMemHostAlloc: lib.func('cuMemHostAlloc', 'int', ['void *', 'size_t', 'unsigned int']),
    cuMemHostGetDevicePointer: lib.func('cuMemHostGetDevicePointer_v2', 'int', ['void *', h, 'unsigned int']),
    cuModuleLoadData: lib.func('cuModuleLoadData', 'int', ['void *', 'const void *']),
    cuModuleGetFunction: lib.func('cuModuleGetFunction', 'int', ['void *', h, 'const char *']),
    cuLaunchKernel: lib.func('cuLaunchKernel', 'int', [h, 'unsigned int', 'unsigned int', 'unsigned int',
      'unsigned int', 'unsigned int', 'unsigned int', 'unsigned int', h, h, h]),
    cuStreamCreate: lib.func('cuStreamCreate', 'int', ['void *', 'unsigned int']),
    cuStreamSynchronize: lib.func('cuStreamSynchronize', 'int', [h]),
    cuStreamDestroy: lib.func('cuStreamDestroy_v2', 'int', [h]),
    cuEventCreate: lib.func('cuEventCreate', 'int', ['void *', 'unsigned int']),
    cuEventRecord: lib.func('cuEventRecord', 'int', [h, h]),
    cuEventSynchronize: lib.func('cuEventSynchronize', 'int', [h]),
    // Renamed _v2 in CUDA 12.8 (same signature); older drivers have only the plain name.
    cuEventElapsedTime: firstFunc(lib, ['cuEventElapsedTime_v2', 'cuEventElapsedTime'], 'int', ['void *', h, h]),
    cuEventDestroy: lib.func('cuEventDestroy_v2', 'int', [h]),
    // cuda.h maps cuStreamBeginCapture to _v2 (the one taking a capture mode) and
    // cuGraphInstantiate to cuGraphInstantiateWithFlags; the others have one version.
    cuStreamBeginCapture: lib.func('cuStreamBeginCapture_v2', 'int', [h, 'int']),
    cuStreamEndCapture: lib.func('cuStreamEndCapture', 'int', [h, 'void *']),
    cuStreamIsCapturing: lib.func('cuStreamIsCapturing', 'int', [h, 'void *']),
    cuThreadExchangeStreamCaptureMode: lib.func('cuThreadExchangeStreamCaptureMode', 'int', ['void *']),
    cuGraphInstantiateWithFlags: lib.func('cuGraphInstantiateWithFlags', 'int', ['void *', h, 'uint64_t']),
    cuGraphGetNodes: lib.func('cuGraphGetNodes', 'int', [h, 'void *', 'void *']),
    cuGraphUpload: lib.func('cuGraphUpload', 'int', [h, h]),
    cuGraphLaunch: lib.func('cuGraphLaunch', 'int', [h, h]),
    cuGraphExecDestroy: lib.func('cuGraphExecDestroy', 'int', [h]),
    cuGraphDestroy: lib.func('cuGraphDestroy', 'int', [h]),
    cuGetErrorName: lib.func('int cuGetErrorName(int status, _Out_ const char **name)'),
    cuGetErrorString: lib.func('int cuGetErrorString(int status, _Out_ const char **text)'),
  };
}

type KoffiFunction = ReturnType<LibraryHandle['func']>;

/** Binds the first of `names` the library exports (symbols renamed across driver versions). */
function firstFunc(lib: LibraryHandle, names: readonly string[], result: string, args: string[]): KoffiFunction {
  let last: unknown;
  for (const name of names) {
    try {
      return lib.func(name, result, args);
    } catch (e) {
      last = e;
    }
  }
  throw last instanceof Error ? last : new Error(`none of ${names.join(', ')} found in the CUDA driver`);
}
