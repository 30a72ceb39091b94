/**
 * Launchers for reduce.cu: reduceRows (sum, prod, max, min, argmax, argmin over each row) and
 * reduceColumns (the same over the middle dim of [outer, reduced, inner], read in place).
 */
import type { Kernels, ReduceOp } from '../../backend.js';
import { itemSize } from '../../../tensor/dtype.js';
import { formatShape } from '../../../tensor/shape.js';
import { Tensor } from '../../../tensor/tensor.js';
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

/** Threads per column-reduction block (reduce.cu sizes its shared buffers for this). */
const COLS_BLOCK = 256;

/** Resident column blocks per SM to aim for: ptxas gives the vector kernels about 64 registers, so 4 of 256 threads fit; two waves. */
const COLS_BLOCKS_PER_SM = 8;

/** Rows each thread folds at least, so a chunk's loads outweigh its share of the second pass. */
const COLS_MIN_ROWS_PER_THREAD = 4;

export interface ColumnLaunch {
  /** Lanes along inner per block (32, 16 or 8); rows per block = COLS_BLOCK / tx. */
  readonly tx: number;
  /** Blocks along inner per outer index. */
  readonly strips: number;
  /** Rows of the reduced dim per chunk, and the number of chunks (1: no second pass). */
  readonly chunkRows: number;
  readonly chunks: number;
  readonly grid: number;
}

/**
 * Geometry of a column reduction of [outer, reduced, inner] with `vec` columns per thread on a
 * GPU of `sms` multiprocessors. Lanes per block are chosen to waste the fewest threads past the
 * last column (1152 bf16 columns in vectors of 8 fill 9 strips of 16 lanes exactly); the reduced
 * dim is then cut into enough chunks to fill the GPU when outer * strips blocks would not.
 */
export function columnLaunch(outer: number, reduced: number, inner: number, vec: number, sms: number): ColumnLaunch {
  const vectors = Math.ceil(inner / vec);
  let tx = 32;
  for (const cand of [16, 8]) {
    if (Math.ceil(vectors / cand) * cand - vectors < Math.ceil(vectors / tx) * tx - vectors) tx = cand;
  }
  const strips = Math.ceil(vectors / tx);
  const rowsPerBlock = COLS_BLOCK / tx;
  const base = outer * strips;
  const wanted = Math.ceil((sms * COLS_BLOCKS_PER_SM) / base);
  const most = Math.max(1, Math.floor(reduced / (rowsPerBlock * COLS_MIN_ROWS_PER_THREAD)));
  const chunkRows = Math.max(1, Math.ceil(reduced / Math.max(1, Math.min(wanted, most))));
  const chunks = Math.max(1, Math.ceil(reduced / chunkRows));
  return { tx, strips, chunkRows, chunks, grid: base * chunks };
}

/** Columns per vector load in reduce.cu's reduce_cols_vec_* (ColWidth: 16 bytes, at most 8). */
export function columnVectorWidth(bytes: number): number {
  return Math.min(8, 16 / bytes);
}

export interface ColumnPlan extends ColumnLaunch {
  readonly outer: number;
  readonly reduced: number;
  readonly inner: number;
  /** Element strides of outer and reduced (0 where the dim has one entry). */
  readonly so: number;
  readonly sr: number;
  /** Columns per thread: columnVectorWidth when every row start is aligned for it, else 1. */
  readonly vec: number;
  readonly compute: 'float32' | 'float64';
  readonly kernel: string;
  readonly finishKernel: string;
}

/**
 * Kernels and geometry for reduceColumns of x [outer, reduced, inner] whose first element sits at
 * byte address `address`, on a GPU of `sms` multiprocessors (the emulation test calls this too).
 */
export function columnPlan(op: ReduceOp, x: Tensor, sms: number, address: number): ColumnPlan {
  if (x.ndim !== 3) throw new TypeError(`${op}: reduceColumns takes x [outer, reduced, inner], got ${formatShape(x.shape)}`);
  const [outer, reduced, inner] = x.shape as [number, number, number];
  if (inner > 1 && x.strides[2] !== 1) throw new TypeError(`${op}: reduceColumns needs inner stride 1, got ${x.strides[2]}`);
  if (reduced > 0x7fffffff) throw new RangeError(`${op}: reduced dim of ${reduced} exceeds the int32 index range`);
  const so = outer > 1 ? x.strides[0]! : 0;
  const sr = reduced > 1 ? x.strides[1]! : 0;
  const bytes = itemSize(x.dtype);
  const widest = columnVectorWidth(bytes);
  // A vector load needs every row start of every strip aligned to its width.
  const aligned = address % (widest * bytes) === 0 && inner % widest === 0 && so % widest === 0 && sr % widest === 0;
  const vec = aligned ? widest : 1;
  const compute = x.dtype === 'float32' || x.dtype === 'bfloat16' || x.dtype === 'float16' ? 'float32' : 'float64';
  return {
    ...columnLaunch(outer, reduced, inner, vec, sms),
    outer, reduced, inner, so, sr, vec, compute,
    kernel: `reduce_cols_${vec > 1 ? 'vec_' : ''}${DTYPE_SUFFIX[x.dtype]}`,
    finishKernel: `reduce_cols_finish_${DTYPE_SUFFIX[compute]}`,
  };
}

export function reduceKernels(rt: CudaRuntime): Pick<Kernels, 'reduceRows' | 'reduceColumns'> {
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

    reduceColumns(op, x, out) {
      if (!out.isContiguous) throw new TypeError(`${op}: CUDA reduction output must be contiguous`);
      const plan = columnPlan(op, x, rt.info.multiprocessors, addressOf(x));
      const { outer, inner, chunks } = plan;
      if (out.numel !== outer * inner) throw new TypeError(`${op}: reduceColumns output has ${out.numel} elements for x ${formatShape(x.shape)}`);
      if (out.numel === 0) return;
      const arg = op === 'argmax' || op === 'argmin';
      const part = chunks > 1 ? Tensor.empty([chunks * outer * inner], plan.compute, x.backend) : null;
      const partIdx = chunks > 1 && arg ? Tensor.empty([chunks * outer * inner], 'int32', x.backend) : null;
      const opCode = REDUCE_OPS.indexOf(op);
      rt.params.begin().i32(opCode).ptr(addressOf(x)).ptr(addressOf(out)).i32(DTYPE_CODE[out.dtype])
        .ptr(part ? addressOf(part) : 0).ptr(partIdx ? addressOf(partIdx) : 0)
        .i64(outer).i64(plan.reduced).i64(inner).i64(plan.so).i64(plan.sr).i32(plan.tx).i32(plan.strips).i64(plan.chunkRows);
      rt.launch(rt.fn(REDUCE_MODULE, plan.kernel), plan.grid, COLS_BLOCK);
      if (part !== null) {
        const n = outer * inner;
        rt.params.begin().i32(opCode).ptr(addressOf(part)).ptr(partIdx ? addressOf(partIdx) : 0).ptr(addressOf(out))
          .i32(DTYPE_CODE[out.dtype]).i64(n).i32(chunks);
        rt.launch(rt.fn(REDUCE_MODULE, plan.finishKernel), rt.gridFor(n), 256);
        part.dispose();
        partIdx?.dispose();
      }
    },
  };
}
