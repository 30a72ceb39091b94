/** Launcher for reduce.cu: reduceRows (sum, prod, max, min, argmax, argmin over each row). */
import type { Kernels, ReduceOp } from '../../backend.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { contiguousOn } from './copy.js';
import { DTYPE_CODE, DTYPE_SUFFIX, REDUCE_MODULE } from './source.js';

const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'prod', 'max', 'min', 'argmax', 'argmin'];

/** Rows up to this long go a warp each (8 rows per block); longer rows get a block each. */
export const WARP_ROW_LIMIT = 256;

/** Grid and block for row kernels (reduce.cu, rows.cu) over [rows, cols]. */
export function rowLaunch(rows: number, cols: number): { mode: 'warp' | 'block'; grid: number; block: number } {
  if (cols <= WARP_ROW_LIMIT) return { mode: 'warp', grid: Math.ceil(rows / 8), block: 256 };
  return { mode: 'block', grid: rows, block: cols > 8192 ? 1024 : 256 };
}

export function reduceKernels(rt: CudaRuntime): Pick<Kernels, 'reduceRows'> {
  return {
    reduceRows(op, x0, out) {
      const rows = out.numel;
      if (rows === 0) return;
      if (!out.isContiguous) throw new TypeError(`${op}: CUDA reduction output must be contiguous`);
      const cols = x0.numel / rows;
      const x = contiguousOn(rt, x0);
      const { mode, grid, block } = rowLaunch(rows, cols);
      rt.params.begin().i32(REDUCE_OPS.indexOf(op)).ptr(addressOf(x)).ptr(addressOf(out)).i32(DTYPE_CODE[out.dtype]).i64(rows).i64(cols);
      rt.launch(rt.fn(REDUCE_MODULE, `reduce_${mode}_${DTYPE_SUFFIX[x.dtype]}`), grid, block);
      if (x !== x0) x.dispose();
    },
  };
}
