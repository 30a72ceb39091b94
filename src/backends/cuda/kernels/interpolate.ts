/**
 * Launchers for interpolate.cu. The taps of each axis (source indices and weights) come from the
 * CPU kernel's axisTaps, so both backends pick the same pixels from the same `ratio`; they are
 * uploaded once per (sizes, mode, ratio, compute type) and cached. Nearest resampling moves raw
 * elements (any dtype); bilinear computes in float32 (float64 for float64). The backward pass
 * scatters into a float32 / float64 accumulator and rounds once.
 */
import { keep } from '../../../tensor/lifetime.js';
import type { InterpolateArgs, Kernels } from '../../backend.js';
import { axisTaps, type AxisTaps } from '../../cpu/kernels/interpolate.js';
import { isFloating, itemSize } from '../../../tensor/dtype.js';
import { Tensor } from '../../../tensor/tensor.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { Scratch, computeType } from './scratch.js';
import { DTYPE_SUFFIX, INTERPOLATE_MODULE } from './source.js';

/** One axis's taps on the device: indices as int32, weights in the compute type. */
interface DeviceTaps {
  readonly i0: Tensor;
  readonly i1: Tensor;
  readonly w0: Tensor;
  readonly w1: Tensor;
}

/** Distinct axis mappings kept on the device (a model resizes to a handful of sizes). */
const CACHE_LIMIT = 64;

export function interpolateKernels(rt: CudaRuntime): Pick<Kernels, 'interpolate2d' | 'interpolate2dBackward'> {
  const cache = new Map<string, DeviceTaps>();

  const upload = (taps: AxisTaps, compute: 'float32' | 'float64'): DeviceTaps => {
    const weights = (w: Float64Array) => (compute === 'float64'
      ? Tensor.fromHost(w, [w.length], 'float64', rt.label)
      : Tensor.fromHost(Float32Array.from(w), [w.length], 'float32', rt.label));
    return {
      i0: Tensor.fromHost(taps.i0, [taps.i0.length], 'int32', rt.label),
      i1: Tensor.fromHost(taps.i1, [taps.i1.length], 'int32', rt.label),
      w0: weights(taps.w0),
      w1: weights(taps.w1),
    };
  };

  const tapsFor = (inSize: number, outSize: number, ratio: number, args: InterpolateArgs, compute: 'float32' | 'float64') => {
    const key = `${inSize}:${outSize}:${ratio}:${args.mode}:${args.alignCorners}:${compute}`;
    let t = cache.get(key);
    if (!t) {
      if (cache.size >= CACHE_LIMIT) {
        const [oldest, old] = cache.entries().next().value as [string, DeviceTaps];
        Object.values(old).forEach((v) => v.dispose());
        cache.delete(oldest);
      }
      t = upload(axisTaps(inSize, outSize, ratio, args), compute);
      // keep(): the cache outlives the T.tidy scope of the call that fills it.
      Object.values(t).forEach((v) => keep(v));
      cache.set(key, t);
    }
    return t;
  };

  /** interpolate.cu's InterpTaps: the H and W index arrays, then the four weight arrays. */
  const tapWords = (th: DeviceTaps, tw: DeviceTaps) => [th.i0, th.i1, tw.i0, tw.i1, th.w0, th.w1, tw.w0, tw.w1].map(addressOf);

  return {
    interpolate2d(x0, out0, args) {
      const [, , h, w] = x0.shape as [number, number, number, number];
      const [, , ho, wo] = out0.shape as [number, number, number, number];
      const n = out0.numel;
      if (n === 0) return;
      const s = new Scratch(rt);
      const x = s.input(x0);
      const out = s.output(out0, x0.dtype);
      const compute = computeType(x0);
      const th = tapsFor(h, ho, args.ratio[0], args, compute);
      const tw = tapsFor(w, wo, args.ratio[1], args, compute);
      if (args.mode === 'nearest') {
        rt.params.begin().ptr(addressOf(x)).ptr(addressOf(out)).ptr(addressOf(th.i0)).ptr(addressOf(tw.i0))
          .i64(h).i64(w).i64(ho).i64(wo).i64(n);
        rt.launch(rt.fn(INTERPOLATE_MODULE, `interp_nearest_${itemSize(x.dtype)}`), rt.gridFor(n), 256);
      } else {
        if (!isFloating(x.dtype)) throw new TypeError(`interpolate2d: bilinear needs a floating input, got ${x.dtype}`);
        rt.params.begin().ptr(addressOf(x)).ptr(addressOf(out)).i64Struct(tapWords(th, tw)).i64(h).i64(w).i64(ho).i64(wo).i64(n);
        rt.launch(rt.fn(INTERPOLATE_MODULE, `interp_bilinear_${DTYPE_SUFFIX[x.dtype]}`), rt.gridFor(n), 256);
      }
      s.finish();
    },

    interpolate2dBackward(gy0, gx0, args) {
      const [, , h, w] = gx0.shape as [number, number, number, number];
      const [, , ho, wo] = gy0.shape as [number, number, number, number];
      if (!isFloating(gx0.dtype)) throw new TypeError(`interpolate2d backward: gradient must be floating, got ${gx0.dtype}`);
      const s = new Scratch(rt);
      const compute = computeType(gx0);
      const acc = s.output(gx0, compute, true);
      const n = gy0.numel;
      if (n > 0) {
        const gy = s.input(gy0, gx0.dtype);
        const th = tapsFor(h, ho, args.ratio[0], args, compute);
        const tw = tapsFor(w, wo, args.ratio[1], args, compute);
        rt.params.begin().ptr(addressOf(gy)).ptr(addressOf(acc)).i64Struct(tapWords(th, tw)).i32(args.mode === 'nearest' ? 1 : 0)
          .i64(h).i64(w).i64(ho).i64(wo).i64(n);
        rt.launch(rt.fn(INTERPOLATE_MODULE, `interp_backward_${DTYPE_SUFFIX[gx0.dtype]}`), rt.gridFor(n), 256);
      }
      s.finish();
    },
  };
}
