/** Placeholder until the kernel family lands (being written). */
import type { Kernels } from '../../backend.js';

export const convKernels: Pick<Kernels, 'conv2d' | 'conv2dBackwardInput' | 'conv2dBackwardWeight'> = {
  conv2d() { throw new Error('CPU kernel conv2d is not implemented yet'); },
  conv2dBackwardInput() { throw new Error('CPU kernel conv2dBackwardInput is not implemented yet'); },
  conv2dBackwardWeight() { throw new Error('CPU kernel conv2dBackwardWeight is not implemented yet'); },
};
