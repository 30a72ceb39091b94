/**
 * Launchers for indexing.cu. Each op views the indexed dim as [outer, size, inner]. Accumulating
 * ops on bfloat16/float16 outputs add into a float32 copy and round once at the end: atomic adds
 * straight into half precision would round at every add, and the CPU rounds once too.
 */
import type { Kernels } from '../../backend.js';
import { itemSize, type DType } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { castOn, contiguousOn, copyInto } from './copy.js';
import { DTYPE_SUFFIX, INDEXING_MODULE } from './source.js';

function split(shape: readonly number[], dim: number): [number, number, number] {
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  return [outer, shape[dim]!, inner];
}

function indexSuffix(op: string, index: Tensor): string {
  if (index.dtype === 'int32') return 'i32';
  if (index.dtype === 'int64') return 'i64';
  throw new TypeError(`${op}: index must be int32 or int64, got ${index.dtype}`);
}

/** dtypes the atomic-add kernels accumulate in directly. */
const ATOMIC: ReadonlySet<DType> = new Set(['float32', 'float64', 'int32', 'int64']);

export function indexingKernels(rt: CudaRuntime): Pick<Kernels, 'indexSelect' | 'indexAdd' | 'gather' | 'scatterAdd'> {
  const lookup = (kind: 'index_select' | 'gather', op: string, x0: Tensor, dim: number, index0: Tensor, out: Tensor) => {
    const n = out.numel;
    if (n === 0) return;
    if (!out.isContiguous || out.dtype !== x0.dtype) throw new TypeError(`${op}: CUDA output must be contiguous ${x0.dtype}`);
    const [outer, size, inner] = split(x0.shape, dim);
    const count = kind === 'index_select' ? index0.numel : index0.shape[dim]!;
    const x = contiguousOn(rt, x0);
    const index = contiguousOn(rt, index0);
    rt.params.begin().ptr(addressOf(x)).ptr(addressOf(index)).ptr(addressOf(out))
      .i64(outer).i64(size).i64(count).i64(inner).ptr(rt.errorWord);
    rt.launch(rt.fn(INDEXING_MODULE, `${kind}_${itemSize(x.dtype)}_${indexSuffix(op, index)}`), rt.gridFor(n), 256);
    if (x !== x0) x.dispose();
    if (index !== index0) index.dispose();
  };

  const accumulate = (kind: 'index_add' | 'scatter_add', op: string, out: Tensor, dim: number, index0: Tensor, src0: Tensor) => {
    const n = src0.numel;
    if (n === 0) return;
    if (!out.isContiguous) throw new TypeError(`${op}: CUDA output must be contiguous`);
    if (out.dtype === 'bool') throw new TypeError(`${op}: cannot accumulate into a bool tensor`);
    const [outer, size, inner] = split(out.shape, dim);
    const count = kind === 'index_add' ? index0.numel : index0.shape[dim]!;
    const direct = ATOMIC.has(out.dtype);
    const acc = direct ? out : castOn(rt, out, 'float32');
    const src = src0.dtype === acc.dtype ? contiguousOn(rt, src0) : castOn(rt, src0, acc.dtype);
    const index = contiguousOn(rt, index0);
    rt.params.begin().ptr(addressOf(acc)).ptr(addressOf(index)).ptr(addressOf(src))
      .i64(outer).i64(size).i64(count).i64(inner).ptr(rt.errorWord);
    rt.launch(rt.fn(INDEXING_MODULE, `${kind}_${DTYPE_SUFFIX[acc.dtype]}_${indexSuffix(op, index)}`), rt.gridFor(n), 256);
    if (!direct) {
      copyInto(rt, acc, out);
      acc.dispose();
    }
    if (src !== src0) src.dispose();
    if (index !== index0) index.dispose();
  };

  return {
    indexSelect(x, dim, index, out) { lookup('index_select', 'indexSelect', x, dim, index, out); },
    gather(x, dim, index, out) { lookup('gather', 'gather', x, dim, index, out); },
    indexAdd(out, dim, index, src) { accumulate('index_add', 'indexAdd', out, dim, index, src); },
    scatterAdd(out, dim, index, src) { accumulate('scatter_add', 'scatterAdd', out, dim, index, src); },
  };
}
