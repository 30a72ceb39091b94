/**
 * NCCL through koffi on one GPU: a unique id (128 bytes, passed by value to ncclCommInitRank), a
 * single-rank communicator and its all-reduce, which must give every input back unchanged.
 * Skipped without a GPU, or when NCCL is not installed (it is optional).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/ops/index.js';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend } from '../../src/backends/cuda/index.js';
import { optional } from '../../src/backends/cuda/ffi/loader.js';
import { check, NcclError } from '../../src/backends/cuda/ffi/nccl.js';
import { outU64 } from '../../src/backends/cuda/ffi/koffi.js';
import { nccl, NcclCommunicator, ncclUniqueId } from '../../src/backends/cuda/nccl.js';
import type { DType } from '../../src/tensor/dtype.js';
import { assertClose, cudaSkip, randomCpu, randomInts, realCuda } from './helpers.js';

const skip: string | false = (() => {
  if (cudaSkip) return cudaSkip;
  if (!realCuda) return 'NCCL needs a real GPU (not the CPU stand-in)';
  const lib = optional(() => nccl());
  if (lib.found) return false;
  const reason = `NCCL not installed (looked in: ${lib.missing.looked.join('; ')})`;
  console.log(`# NCCL tests skipped: ${reason}`);
  return reason;
})();

function backend(): CudaBackend {
  const b = getBackend('cuda');
  assert.ok(b instanceof CudaBackend);
  return b;
}

test('a single-rank all-reduce gives the input back: sum, avg, max, in place and out of place, each dtype', { skip }, () => {
  const id = ncclUniqueId();
  assert.equal(id.length, 128);
  assert.ok(id.some((b) => b !== 0), 'ncclGetUniqueId filled the id');
  const comm = NcclCommunicator.initRank(backend(), id, 1, 0);
  try {
    assert.equal(comm.ranks, 1);
    const cases: [DType, 'sum' | 'avg' | 'max' | 'prod'][] = [
      ['float32', 'sum'], ['float32', 'avg'], ['bfloat16', 'sum'], ['float16', 'max'], ['float64', 'prod'], ['int32', 'sum'], ['int64', 'max'],
    ];
    for (const [dtype, op] of cases) {
      const x = dtype.startsWith('int') ? randomInts([1237], -1000, 1000, dtype) : randomCpu([1237], dtype);
      const send = x.to('cuda');
      const recv = ops.full([1237], 7, { dtype, device: 'cuda' });
      comm.allReduce(send, recv, op);
      assertClose(`${dtype} ${op} out of place`, recv, x, 0);
      comm.allReduce(send, send, op);
      assertClose(`${dtype} ${op} in place`, send, x, 0);
    }
  } finally {
    comm.destroy();
  }
  assert.equal(comm.destroyed, true);
  const t = ops.zeros([4], { device: 'cuda' });
  assert.throws(() => comm.allReduce(t, t), /used after destroy/);
});

test('bad communicator arguments and unsupported tensors are refused with the value named', { skip }, () => {
  const id = ncclUniqueId();
  assert.throws(() => NcclCommunicator.initRank(backend(), id, 1, 1), /rank 1 is outside 0\.\.0/);
  assert.throws(() => NcclCommunicator.initRank(backend(), id.subarray(0, 64), 1, 0), /128 bytes, got 64/);
  assert.throws(() => NcclCommunicator.initRank(backend(), id, 0, 0), /ranks must be a positive integer, got 0/);
  const comm = NcclCommunicator.initRank(backend(), id, 1, 0);
  try {
    const b = ops.zeros([8], { dtype: 'bool', device: 'cuda' });
    assert.throws(() => comm.allReduce(b, b), /NCCL cannot reduce bool/);
    const f = ops.zeros([8], { device: 'cuda' });
    assert.throws(() => comm.allReduce(f, ops.zeros([9], { device: 'cuda' })), /must match send/);
    assert.throws(() => comm.allReduce(f, f.to('cpu')), /is on cpu/);
    const m = ops.zeros([4, 4], { device: 'cuda' });
    assert.throws(() => comm.allReduce(ops.transpose(m, 0, 1), m), /must be contiguous/);
  } finally {
    comm.destroy();
  }
});

test("NCCL's own errors name the call and NCCL's reason", { skip }, () => {
  const api = nccl();
  backend().runtime.activate();
  // nranks 0 is refused by NCCL itself (the wrapper above would catch it first).
  const status = api.ncclCommInitRank(outU64, 0, { internal: ncclUniqueId() }, 0);
  assert.notEqual(status, 0);
  assert.throws(() => check(api, 'ncclCommInitRank', status), (e: unknown) => {
    assert.ok(e instanceof NcclError);
    assert.equal(e.status, status);
    assert.ok(e.message.startsWith(`ncclCommInitRank failed: ${api.ncclGetErrorString(status)} (${status})`), e.message);
    return true;
  });
  assert.equal(api.ncclGetErrorString(0), 'no error');
});
