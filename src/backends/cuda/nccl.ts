/**
 * An NCCL communicator over CUDA tensors: the minimum a data-parallel trainer needs (unique id,
 * init by rank, all-reduce, destroy). One communicator serves one device; collectives are queued
 * on that device's stream, so they are ordered with the kernels that produced their inputs.
 */
import type { DType } from '../../tensor/dtype.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { CudaBackend } from './backend.js';
import { outU64, takeU64 } from './ffi/koffi.js';
import {
  bindNccl, check, NCCL_BFLOAT16, NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_INT32, NCCL_INT64, NCCL_OPS,
  NCCL_UNIQUE_ID_BYTES, type NcclApi, type NcclReduceOp,
} from './ffi/nccl.js';
import { addressOf } from './storage.js';

const NCCL_TYPE: Partial<Record<DType, number>> = {
  float32: NCCL_FLOAT32, float64: NCCL_FLOAT64, float16: NCCL_FLOAT16, bfloat16: NCCL_BFLOAT16, int32: NCCL_INT32, int64: NCCL_INT64,
};

let shared: NcclApi | undefined;

/** NCCL, opened once per process (LibraryNotFoundError when it is not installed). */
export function nccl(): NcclApi {
  shared ??= bindNccl();
  return shared;
}

/** A fresh id for a new communicator: rank 0 makes it and hands its 128 bytes to the other ranks. */
export function ncclUniqueId(api: NcclApi = nccl()): Uint8Array {
  const id = new Uint8Array(NCCL_UNIQUE_ID_BYTES);
  check(api, 'ncclGetUniqueId', api.ncclGetUniqueId(id));
  return id;
}

export class NcclCommunicator {
  private handle: number;

  private constructor(readonly api: NcclApi, readonly backend: CudaBackend, readonly ranks: number, readonly rank: number, handle: number) {
    this.handle = handle;
  }

  /**
   * Joins communicator `id` as `rank` of `ranks`, on `backend`'s device. Blocks until every rank
   * has joined (ranks in one process must therefore join from separate threads or processes).
   */
  static initRank(backend: CudaBackend, id: Uint8Array, ranks: number, rank: number, api: NcclApi = nccl()): NcclCommunicator {
    if (id.length !== NCCL_UNIQUE_ID_BYTES) throw new RangeError(`NcclCommunicator: unique id must be ${NCCL_UNIQUE_ID_BYTES} bytes, got ${id.length}`);
    if (!Number.isInteger(ranks) || ranks < 1) throw new RangeError(`NcclCommunicator: ranks must be a positive integer, got ${ranks}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= ranks) throw new RangeError(`NcclCommunicator: rank ${rank} is outside 0..${ranks - 1}`);
    // NCCL picks the device from the calling thread's current context.
    backend.runtime.activate();
    check(api, 'ncclCommInitRank', api.ncclCommInitRank(outU64, ranks, { internal: id }, rank));
    return new NcclCommunicator(api, backend, ranks, rank, takeU64());
  }

  get destroyed(): boolean {
    return this.handle === 0;
  }

  /** recv = op over ranks of send (recv may be send itself), queued on the device's stream. */
  allReduce(send: Tensor, recv: Tensor, op: NcclReduceOp = 'sum'): void {
    if (this.handle === 0) throw new Error('NcclCommunicator: used after destroy()');
    const type = NCCL_TYPE[send.dtype];
    if (type === undefined) throw new TypeError(`allReduce: NCCL cannot reduce ${send.dtype} tensors`);
    if (recv.dtype !== send.dtype || recv.numel !== send.numel) {
      throw new TypeError(`allReduce: recv (${recv.dtype} x ${recv.numel}) must match send (${send.dtype} x ${send.numel})`);
    }
    for (const [what, t] of [['send', send], ['recv', recv]] as const) {
      if (t.backend !== this.backend) throw new TypeError(`allReduce: ${what} is on ${t.deviceName}, the communicator on ${this.backend.runtime.label}`);
      if (!t.isContiguous) throw new TypeError(`allReduce: ${what} must be contiguous`);
    }
    if (!(op in NCCL_OPS)) throw new RangeError(`allReduce: unknown op '${op}' (sum, prod, max, min, avg)`);
    const rt = this.backend.runtime;
    rt.activate();
    check(this.api, 'ncclAllReduce', this.api.ncclAllReduce(addressOf(send), addressOf(recv), send.numel, type, NCCL_OPS[op],
      this.handle, rt.stream.handle), this.handle);
  }

  destroy(): void {
    if (this.handle === 0) return;
    const handle = this.handle;
    this.handle = 0;
    this.backend.runtime.activate();
    check(this.api, 'ncclCommDestroy', this.api.ncclCommDestroy(handle));
  }
}

export { NcclError, type NcclReduceOp } from './ffi/nccl.js';
