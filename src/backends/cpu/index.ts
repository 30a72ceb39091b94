/**
 * The CPU backend: host typed arrays and JavaScript/WebAssembly kernels. It is also the numerical
 * reference every other backend is tested against.
 */
import type { Backend, FusedKernels, Kernels, Storage } from '../backend.js';
import type { DType, HostArray } from '../../tensor/dtype.js';
import type { Device } from '../../tensor/device.js';
import { CpuStorage } from './storage.js';
import { elementwiseKernels } from './kernels/elementwise.js';
import { rowKernels } from './kernels/rows.js';
import { matmulKernels } from './kernels/matmul.js';
import { indexingKernels } from './kernels/indexing.js';
import { randomKernels } from './kernels/random.js';
import { convKernels } from './kernels/conv.js';
import { interpolateKernels } from './kernels/interpolate.js';
import { causalConv1dKernels } from './kernels/causal-conv1d.js';
import { scanKernels } from './kernels/scan.js';
import { modulateKernels } from './kernels/modulate.js';
import { addRmsNormKernels } from './kernels/add-rms-norm.js';

const kernels: Kernels = {
  ...elementwiseKernels,
  ...rowKernels,
  ...matmulKernels,
  ...indexingKernels,
  ...randomKernels,
  ...convKernels,
  ...interpolateKernels,
  ...causalConv1dKernels,
  ...scanKernels,
};

export class CpuBackend implements Backend {
  readonly kernels = kernels;
  /** The adaLN modulation and add + RMSNorm kernels (the reference for other backends'); attention and the optimizers compose. */
  readonly fused: FusedKernels = { ...modulateKernels, ...addRmsNormKernels };

  constructor(readonly device: Device) {}

  alloc(dtype: DType, numel: number): Storage {
    return CpuStorage.alloc(this, dtype, numel);
  }

  fromHost(dtype: DType, data: HostArray): Storage {
    const s = CpuStorage.alloc(this, dtype, data.length);
    if (s.data.constructor !== data.constructor) {
      throw new TypeError(`fromHost: ${data.constructor.name} does not hold ${dtype} elements`);
    }
    s.data.set(data as never);
    return s;
  }

  toHost(storage: Storage, offset: number, numel: number): HostArray {
    if (!(storage instanceof CpuStorage)) throw new TypeError('CPU backend got foreign storage');
    return storage.data.slice(offset, offset + numel);
  }

  synchronize(): void {}
}
