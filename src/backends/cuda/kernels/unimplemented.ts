/** Kernels the CUDA backend does not have yet: each throws CudaNotImplementedError naming itself. */
import type { Kernels } from '../../backend.js';

export class CudaNotImplementedError extends Error {
  override name = 'CudaNotImplementedError';
  constructor(what: string) {
    super(`${what} is not implemented on CUDA yet; run this op on the CPU (tensor.to('cpu')) until it is`);
  }
}

export const UNIMPLEMENTED_KERNELS = [
  'conv2d', 'conv2dBackwardInput', 'conv2dBackwardWeight', 'causalConv1d', 'causalConv1dBackward',
  'interpolate2d', 'interpolate2dBackward', 'selectiveScan', 'selectiveScanBackward',
] as const;

type Missing = (typeof UNIMPLEMENTED_KERNELS)[number];

function missing(name: Missing): () => never {
  return () => { throw new CudaNotImplementedError(name); };
}

export const unimplementedKernels: Pick<Kernels, Missing> = {
  conv2d: missing('conv2d'),
  conv2dBackwardInput: missing('conv2dBackwardInput'),
  conv2dBackwardWeight: missing('conv2dBackwardWeight'),
  causalConv1d: missing('causalConv1d'),
  causalConv1dBackward: missing('causalConv1dBackward'),
  interpolate2d: missing('interpolate2d'),
  interpolate2dBackward: missing('interpolate2dBackward'),
  selectiveScan: missing('selectiveScan'),
  selectiveScanBackward: missing('selectiveScanBackward'),
};
