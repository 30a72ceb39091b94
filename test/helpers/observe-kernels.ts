/**
 * Runs a body with a backend's copy and matmul kernels observed: how many copies read from
 * `buffer`'s storage, and the MatmulArgs of every matmul call. For tests that a strided operand
 * reaches the GEMM in place (test/ops and test/cuda matmul-strided).
 */
import type { Kernels, MatmulArgs } from '../../src/backends/backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';

export function observeKernels<R>(kernels: Kernels, buffer: Tensor, body: () => R): { result: R; copies: number; calls: MatmulArgs[] } {
  const copy = kernels.copy;
  const matmul = kernels.matmul;
  let copies = 0;
  const calls: MatmulArgs[] = [];
  kernels.copy = (src, out) => {
    if (src.storage === buffer.storage) copies++;
    copy(src, out);
  };
  kernels.matmul = (a, b, out, args) => {
    calls.push(args);
    matmul(a, b, out, args);
  };
  try {
    return { result: body(), copies, calls };
  } finally {
    kernels.copy = copy;
    kernels.matmul = matmul;
  }
}
