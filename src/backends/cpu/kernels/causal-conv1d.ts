/** Placeholder until the kernel family lands (being written). */
import type { Kernels } from '../../backend.js';

export const causalConv1dKernels: Pick<Kernels, 'causalConv1d' | 'causalConv1dBackward'> = {
  causalConv1d() { throw new Error('CPU kernel causalConv1d is not implemented yet'); },
  causalConv1dBackward() { throw new Error('CPU kernel causalConv1dBackward is not implemented yet'); },
};
