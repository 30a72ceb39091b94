/**
 * Launchers for copy.cu: copy (strided, with dtype casts), fill and arange. Copies plan their
 * layout (layout.ts planCopy): memcpy when both sides are contiguous, a vector kernel along a
 * shared contiguous innermost dim, a tiled transpose when the source and destination are
 * unit-stride along different dims, else a strided kernel; 64-bit kernels past int32 offsets.
 */
import type { Kernels } from '../../backend.js';
import { itemSize, type DType } from '../../../tensor/dtype.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../../../tensor/half.js';
import { formatShape, shapesEqual } from '../../../tensor/shape.js';
import { Tensor } from '../../../tensor/tensor.js';
import { check } from '../ffi/driver.js';
import { mergeDims, planCopy, planItems, planMap, putDims, putMap, putRows, putStrides, putTile, type MapOperand } from '../layout.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { COPY_MODULE, DTYPE_CODE, DTYPE_SUFFIX } from './source.js';

const scratch = new DataView(new ArrayBuffer(8));

/** The bit pattern `value` has as one element of `dtype`, encoded as the CPU backend stores it. */
export function elementBits(dtype: DType, value: number): bigint {
  switch (dtype) {
    case 'float32': scratch.setFloat32(0, value, true); return BigInt(scratch.getUint32(0, true));
    case 'float64': scratch.setFloat64(0, value, true); return scratch.getBigUint64(0, true);
    case 'bfloat16': return BigInt(f32ToBf16Bits(value));
    case 'float16': return BigInt(f32ToF16Bits(value));
    case 'int32': scratch.setInt32(0, Math.trunc(value), true); return BigInt(scratch.getUint32(0, true));
    case 'int64': return BigInt.asUintN(64, BigInt(Math.trunc(value)));
    case 'bool': return value !== 0 ? 1n : 0n;
  }
}

function width(dtype: DType): 1 | 2 | 4 | 8 {
  const w = itemSize(dtype);
  if (w !== 1 && w !== 2 && w !== 4 && w !== 8) throw new TypeError(`no CUDA element width for ${dtype}`);
  return w;
}

/** Float dtypes with typed cast kernels (copy.cu DIMBA_CAST32_FROM); other casts run strided. */
const TYPED_CASTS: ReadonlySet<DType> = new Set(['float32', 'float64', 'bfloat16', 'float16']);

function operand(t: Tensor): MapOperand {
  return { strides: t.strides, address: addressOf(t), bytes: itemSize(t.dtype) };
}

export function copyInto(rt: CudaRuntime, src: Tensor, out: Tensor): void {
  if (!shapesEqual(src.shape, out.shape)) {
    throw new TypeError(`copy: source ${formatShape(src.shape)} and destination ${formatShape(out.shape)} differ in shape`);
  }
  const n = out.numel;
  if (n === 0) return;
  if (src.dtype === out.dtype && src.isContiguous && out.isContiguous) {
    check(rt.api, 'cuMemcpyDtoDAsync', rt.api.cuMemcpyDtoDAsync(addressOf(out), addressOf(src), n * itemSize(out.dtype), rt.stream.handle));
    return;
  }
  const same = src.dtype === out.dtype;
  const typed = same || (TYPED_CASTS.has(src.dtype) && TYPED_CASTS.has(out.dtype));
  const plan = planCopy(out.shape, operand(out), operand(src), { rows: typed, tile: typed }, 'copy');
  const kernel = same ? `copy_${plan.kind}_${width(out.dtype)}` : `cast_${plan.kind}_${DTYPE_SUFFIX[src.dtype]}_${DTYPE_SUFFIX[out.dtype]}`;
  if (plan.kind === 'rows') {
    const p = rt.params.begin();
    putMap(p, plan.layout);
    putRows(p, plan).ptr(addressOf(out)).ptr(addressOf(src));
    rt.launch(rt.fn(COPY_MODULE, kernel), rt.gridFor(planItems(plan, n)), 256);
    return;
  }
  if (plan.kind === 'tile') {
    const p = rt.params.begin();
    putMap(p, plan.batch);
    putTile(p, plan).ptr(addressOf(out)).ptr(addressOf(src));
    rt.launch(rt.fn(COPY_MODULE, kernel), rt.gridFor(plan.tiles * 256), 256);
    return;
  }
  if (plan.kind === 'strided') {
    const p = rt.params.begin();
    putMap(p, plan.layout).i64(n);
    if (same) p.ptr(addressOf(out)).ptr(addressOf(src));
    else p.ptr(addressOf(out)).i32(DTYPE_CODE[out.dtype]).ptr(addressOf(src)).i32(DTYPE_CODE[src.dtype]);
    rt.launch(rt.fn(COPY_MODULE, same ? kernel : 'cast_strided'), rt.gridFor(n), 256);
    return;
  }
  const layout = mergeDims(out.shape, [src.strides, out.strides], 'copy');
  const p = rt.params.begin();
  putDims(p, layout.sizes);
  if (same) {
    putStrides(p, layout.strides[0]!, 0);
    putStrides(p, layout.strides[1]!, 0);
    p.ptr(addressOf(src)).ptr(addressOf(out)).i64(n);
    rt.launch(rt.fn(COPY_MODULE, `copy_${width(out.dtype)}`), rt.gridFor(n), 256);
  } else {
    putStrides(p, layout.strides[0]!, 0);
    p.i32(DTYPE_CODE[src.dtype]);
    putStrides(p, layout.strides[1]!, 0);
    p.i32(DTYPE_CODE[out.dtype]).ptr(addressOf(src)).ptr(addressOf(out)).i64(n);
    rt.launch(rt.fn(COPY_MODULE, 'cast'), rt.gridFor(n), 256);
  }
}

/** t itself when contiguous, else a contiguous copy (dispose it after use: `if (c !== t) c.dispose()`). */
export function contiguousOn(rt: CudaRuntime, t: Tensor): Tensor {
  if (t.isContiguous) return t;
  const c = Tensor.empty(t.shape, t.dtype, t.backend);
  copyInto(rt, t, c);
  return c;
}

/** A contiguous copy of t in another dtype (a scratch tensor the caller disposes). */
export function castOn(rt: CudaRuntime, t: Tensor, dtype: DType): Tensor {
  const c = Tensor.empty(t.shape, dtype, t.backend);
  copyInto(rt, t, c);
  return c;
}

export function copyKernels(rt: CudaRuntime): Pick<Kernels, 'copy' | 'fill' | 'arange'> {
  return {
    copy(src, out) {
      copyInto(rt, src, out);
    },
    fill(out, value) {
      const n = out.numel;
      if (n === 0) return;
      const w = width(out.dtype);
      const bits = elementBits(out.dtype, value);
      const plan = planMap(out.shape, [operand(out)], 'fill');
      if (plan.kind !== 'wide') {
        const p = rt.params.begin();
        putMap(p, plan.layout);
        if (plan.kind === 'rows') putRows(p, plan);
        else p.i64(n);
        p.ptr(addressOf(out)).bits(w, bits);
        rt.launch(rt.fn(COPY_MODULE, `fill_${plan.kind}_${w}`), rt.gridFor(planItems(plan, n)), 256);
        return;
      }
      const layout = mergeDims(out.shape, [out.strides], 'fill');
      const p = rt.params.begin();
      putDims(p, layout.sizes);
      putStrides(p, layout.strides[0]!, 0);
      p.ptr(addressOf(out)).bits(w, bits).i64(n);
      rt.launch(rt.fn(COPY_MODULE, `fill_${w}`), rt.gridFor(n), 256);
    },
    arange(out, start, step) {
      const n = out.numel;
      if (n === 0) return;
      if (!out.isContiguous) throw new TypeError('arange: CUDA output must be contiguous');
      rt.params.begin().ptr(addressOf(out)).f64(start).f64(step).i64(n);
      rt.launch(rt.fn(COPY_MODULE, `arange_${DTYPE_SUFFIX[out.dtype]}`), rt.gridFor(n), 256);
    },
  };
}
