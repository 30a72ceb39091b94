/** CPU random fill from the shared Philox stream (src/random/philox.ts). */
import type { Kernels } from '../../backend.js';
import { philoxFill } from '../../../random/philox.js';
import { withOutput } from '../access.js';

export const randomKernels: Pick<Kernels, 'random'> = {
  random(out, dist, seed, offset) {
    withOutput(out, (dst) => philoxFill(dst, dist, seed, offset));
  },
};
