/**
 * NCCL declarations (nccl.h), bound through koffi: the communicator calls a data-parallel trainer
 * needs first. ncclUniqueId is a 128-byte struct passed by value to ncclCommInitRank (koffi
 * copies it onto the stack as the C ABI requires). NCCL is optional: bindNccl throws
 * LibraryNotFoundError when it is absent.
 */
import type { TypeObject } from 'koffi';
import { koffi } from './koffi.js';
import { NCCL_LIBRARY, openLibrary, type OpenedLibrary } from './loader.js';

export const NCCL_SUCCESS = 0;
export const NCCL_UNIQUE_ID_BYTES = 128;

/** ncclDataType_t. */
export const NCCL_INT8 = 0;
export const NCCL_UINT8 = 1;
export const NCCL_INT32 = 2;
export const NCCL_INT64 = 4;
export const NCCL_FLOAT16 = 6;
export const NCCL_FLOAT32 = 7;
export const NCCL_FLOAT64 = 8;
export const NCCL_BFLOAT16 = 9;

/** ncclRedOp_t. */
export const NCCL_OPS = { sum: 0, prod: 1, max: 2, min: 3, avg: 4 } as const;
export type NcclReduceOp = keyof typeof NCCL_OPS;

/** The id as koffi passes it by value: { internal: 128 bytes }. */
export interface NcclUniqueId {
  internal: Uint8Array;
}

export interface NcclApi {
  readonly library: OpenedLibrary;
  ncclGetVersion(version: Int32Array): number;
  ncclGetUniqueId(id: Uint8Array): number;
  ncclCommInitRank(comm: BigUint64Array, nranks: number, id: NcclUniqueId, rank: number): number;
  ncclAllReduce(send: number, recv: number, count: number, dtype: number, op: number, comm: number, stream: number): number;
  ncclCommDestroy(comm: number): number;
  ncclGetErrorString(status: number): string;
  /** The last error's detail for a communicator (NCCL 2.13+; null before). */
  ncclGetLastError: ((comm: number) => string) | null;
}

export class NcclError extends Error {
  override name = 'NcclError';
  constructor(readonly call: string, readonly status: number, message: string) {
    super(message);
  }
}

/** Throws an NcclError naming the call, NCCL's error string and, where NCCL has one, its last detailed message. */
export function check(api: NcclApi, call: string, status: number, comm = 0): void {
  if (status === NCCL_SUCCESS) return;
  const detail = api.ncclGetLastError?.(comm) ?? '';
  throw new NcclError(call, status, `${call} failed: ${api.ncclGetErrorString(status)} (${status})${detail ? `: ${detail}` : ''}`);
}

/** ncclGetVersion's number as text: major*10000 + minor*100 + patch from 2.9, major*1000 + ... before. */
export function ncclVersionString(v: number): string {
  const major = v >= 10000 ? Math.floor(v / 10000) : Math.floor(v / 1000);
  const rest = v >= 10000 ? v % 10000 : v % 1000;
  return `${major}.${Math.floor(rest / 100)}.${rest % 100}`;
}

let uniqueIdType: TypeObject | undefined;

/** koffi type names are process-wide, so the struct is declared once (anonymous). */
function uniqueIdStruct(): TypeObject {
  uniqueIdType ??= koffi().struct({ internal: koffi().array('uint8_t', NCCL_UNIQUE_ID_BYTES, 'Typed') });
  return uniqueIdType;
}

export function bindNccl(library: OpenedLibrary = openLibrary(NCCL_LIBRARY)): NcclApi {
  const lib = library.handle;
  const h = 'uintptr_t';
  let lastError: NcclApi['ncclGetLastError'] = null;
  try {
    lastError = lib.func('ncclGetLastError', 'const char *', [h]);
  } catch {
    // Older NCCL: error strings only.
  }
  return {
    library,
    ncclGetVersion: lib.func('ncclGetVersion', 'int', ['void *']),
    ncclGetUniqueId: lib.func('ncclGetUniqueId', 'int', ['void *']),
    ncclCommInitRank: lib.func('ncclCommInitRank', 'int', ['void *', 'int', uniqueIdStruct(), 'int']),
    ncclAllReduce: lib.func('ncclAllReduce', 'int', [h, h, 'size_t', 'int', 'int', h, h]),
    ncclCommDestroy: lib.func('ncclCommDestroy', 'int', [h]),
    ncclGetErrorString: lib.func('ncclGetErrorString', 'const char *', ['int']),
    ncclGetLastError: lastError,
  };
}
