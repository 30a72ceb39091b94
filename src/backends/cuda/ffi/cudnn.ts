/**
 * cuDNN declarations (cudnn_graph.h), bound through koffi: what the doctor and later the fused
 * attention need to start with. cuDNN is optional: bindCudnn throws LibraryNotFoundError when it
 * is absent, and callers that can do without it wrap the call in loader.optional().
 */
import { CUDNN_LIBRARY, CUDNN_PARTS, openLibraryGroup, type LibraryGroup } from './loader.js';

export const CUDNN_STATUS_SUCCESS = 0;

export interface CudnnApi {
  readonly library: LibraryGroup;
  cudnnGetVersion(): number;
  cudnnGetErrorString(status: number): string;
  cudnnCreate(handle: BigUint64Array): number;
  cudnnDestroy(handle: number): number;
  cudnnSetStream(handle: number, stream: number): number;
}

export class CudnnError extends Error {
  override name = 'CudnnError';
  constructor(readonly call: string, readonly status: number, message: string) {
    super(message);
  }
}

/** Throws a CudnnError naming the call and cuDNN's own error string. */
export function check(api: CudnnApi, call: string, status: number): void {
  if (status === CUDNN_STATUS_SUCCESS) return;
  throw new CudnnError(call, status, `${call} failed: ${api.cudnnGetErrorString(status)} (${status})`);
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
  return {
    library,
    cudnnGetVersion: lib.func('cudnnGetVersion', 'size_t', []),
    cudnnGetErrorString: lib.func('cudnnGetErrorString', 'const char *', ['int']),
    cudnnCreate: lib.func('cudnnCreate', 'int', ['void *']),
    cudnnDestroy: lib.func('cudnnDestroy', 'int', [h]),
    cudnnSetStream: lib.func('cudnnSetStream', 'int', [h, h]),
  };
}
