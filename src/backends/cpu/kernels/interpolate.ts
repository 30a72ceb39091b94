/** Placeholder until the kernel family lands (being written). */
import type { Kernels } from '../../backend.js';

export const interpolateKernels: Pick<Kernels, 'interpolate2d' | 'interpolate2dBackward'> = {
  interpolate2d() { throw new Error('CPU kernel interpolate2d is not implemented yet'); },
  interpolate2dBackward() { throw new Error('CPU kernel interpolate2dBackward is not implemented yet'); },
};
