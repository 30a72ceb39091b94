/** Placeholder until the kernel family lands (being written). */
import type { Kernels } from '../../backend.js';

export const scanKernels: Pick<Kernels, 'selectiveScan' | 'selectiveScanBackward'> = {
  selectiveScan() { throw new Error('CPU kernel selectiveScan is not implemented yet'); },
  selectiveScanBackward() { throw new Error('CPU kernel selectiveScanBackward is not implemented yet'); },
};
