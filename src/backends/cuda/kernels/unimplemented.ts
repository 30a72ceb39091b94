/** What the CUDA backend cannot run: CudaNotImplementedError names the op and the unsupported case. */
import type { Kernels } from '../../backend.js';

export class CudaNotImplementedError extends Error {
  override name = 'CudaNotImplementedError';
  constructor(what: string) {
    super(`${what} is not implemented on CUDA yet; run this op on the CPU (tensor.to('cpu')) until it is`);
  }
}

/** Kernels the CUDA backend lacks entirely (none now; unsupported cases throw from their launchers). */
export const UNIMPLEMENTED_KERNELS: readonly (keyof Kernels)[] = [];
