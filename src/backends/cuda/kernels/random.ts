/** Launcher for random.cu: Philox uniform / normal fills matching src/random/philox.ts. */
import type { Kernels } from '../../backend.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { DTYPE_SUFFIX, RANDOM_MODULE } from './source.js';

export function randomKernels(rt: CudaRuntime): Pick<Kernels, 'random'> {
  return {
    random(out, dist, seed, offset) {
      const n = out.numel;
      if (n === 0) return;
      if (!out.isContiguous) throw new TypeError('random: CUDA output must be contiguous');
      if (out.dtype !== 'float32' && out.dtype !== 'float64' && out.dtype !== 'bfloat16' && out.dtype !== 'float16') {
        throw new TypeError(`random ${dist}: dtype must be floating, got ${out.dtype}`);
      }
      const normal = dist === 'normal';
      const counters = Math.ceil(n / (normal ? 2 : 4));
      const key = BigInt.asUintN(64, seed);
      rt.params.begin().i32(normal ? 1 : 0).u32(Number(key & 0xffffffffn)).u32(Number(key >> 32n))
        .u64(offset).ptr(addressOf(out)).i64(n);
      rt.launch(rt.fn(RANDOM_MODULE, `random_${DTYPE_SUFFIX[out.dtype]}`), rt.gridFor(counters), 256);
    },
  };
}
