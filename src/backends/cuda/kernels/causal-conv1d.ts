/**
 * Launchers for causal-conv1d.cu: depthwise causal conv1d over x [B, D, L] with weight [D, K].
 * x, the output and their gradients stay in x's dtype (the compute type when x is float32 and the
 * weight float64); the weight and its gradient travel in the compute type.
 */
import type { Kernels } from '../../backend.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { Scratch, computeType, sharedType } from './scratch.js';
import { CAUSAL_CONV1D_MODULE, DTYPE_SUFFIX } from './source.js';

export function causalConv1dKernels(rt: CudaRuntime): Pick<Kernels, 'causalConv1d' | 'causalConv1dBackward'> {
  return {
    causalConv1d(x0, weight0, out0) {
      const [, dim, len] = x0.shape as [number, number, number];
      const n = x0.numel;
      if (n === 0) return;
      const s = new Scratch(rt);
      const compute = computeType(x0, weight0);
      const storage = sharedType(compute, x0);
      const x = s.input(x0, storage);
      const w = s.input(weight0, compute);
      const out = s.output(out0, storage);
      rt.params.begin().ptr(addressOf(x)).ptr(addressOf(w)).ptr(addressOf(out)).i64(n).i64(dim).i64(len).i32(weight0.shape[1]!);
      rt.launch(rt.fn(CAUSAL_CONV1D_MODULE, `causal_conv1d_${DTYPE_SUFFIX[storage]}`), rt.gridFor(n), 256);
      s.finish();
    },

    causalConv1dBackward(x0, weight0, gy0, gx0, gw0) {
      const [batch, dim, len] = x0.shape as [number, number, number];
      const taps = weight0.shape[1]!;
      const s = new Scratch(rt);
      const compute = computeType(x0, weight0);
      const storage = sharedType(compute, x0, gy0);
      const gw = s.output(gw0, compute, batch * len === 0);
      if (x0.numel > 0) {
        const n = x0.numel;
        const suffix = DTYPE_SUFFIX[storage];
        const x = s.input(x0, storage);
        const gy = s.input(gy0, storage);
        const w = s.input(weight0, compute);
        const gx = s.output(gx0, storage);
        rt.params.begin().ptr(addressOf(w)).ptr(addressOf(gy)).ptr(addressOf(gx)).i64(n).i64(dim).i64(len).i32(taps);
        rt.launch(rt.fn(CAUSAL_CONV1D_MODULE, `causal_conv1d_gx_${suffix}`), rt.gridFor(n), 256);
        // One block per channel; the (batch, time) pairs it sums over set its width.
        const block = batch * len >= 256 ? 256 : 64;
        rt.params.begin().ptr(addressOf(x)).ptr(addressOf(gy)).ptr(addressOf(gw)).i64(batch).i64(dim).i64(len).i32(taps);
        rt.launch(rt.fn(CAUSAL_CONV1D_MODULE, `causal_conv1d_gw_${suffix}`), dim, block);
      }
      s.finish();
    },
  };
}
