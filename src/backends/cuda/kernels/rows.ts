/** Launchers for rows.cu: softmax / log-softmax and layer / RMS normalisation, with backward. */
import type { Kernels } from '../../backend.js';
import { isFloating } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { contiguousOn } from './copy.js';
import { rowLaunch } from './reduce.js';
import { DTYPE_SUFFIX, ROWS_MODULE } from './source.js';

function rowsOf(op: string, x: Tensor): [number, number] {
  if (x.ndim !== 2) throw new TypeError(`${op}: CUDA row kernel needs a [rows, cols] tensor, got ${x.ndim} dims`);
  if (!isFloating(x.dtype)) throw new TypeError(`${op}: CUDA row kernel needs a floating dtype, got ${x.dtype}`);
  return [x.shape[0]!, x.shape[1]!];
}

function requireOutput(op: string, t: Tensor, like: Tensor): void {
  if (!t.isContiguous || t.dtype !== like.dtype) throw new TypeError(`${op}: CUDA output must be contiguous ${like.dtype}, got ${t.dtype}`);
}

export function rowKernels(rt: CudaRuntime): Pick<Kernels, 'softmax' | 'softmaxBackward' | 'normRows' | 'normRowsBackward'> {
  /** Runs fn on contiguous versions of `inputs`, disposing the copies it made. */
  const withContiguous = (inputs: Tensor[], fn: (xs: Tensor[]) => void) => {
    const xs = inputs.map((t) => contiguousOn(rt, t));
    fn(xs);
    xs.forEach((x, i) => { if (x !== inputs[i]) x.dispose(); });
  };

  return {
    softmax(x0, out, log) {
      const [rows, cols] = rowsOf('softmax', x0);
      if (rows * cols === 0) return;
      requireOutput('softmax', out, x0);
      withContiguous([x0], ([x]) => {
        const { mode, grid, block } = rowLaunch(rows, cols);
        rt.params.begin().ptr(addressOf(x!)).ptr(addressOf(out)).i64(rows).i64(cols).i32(log ? 1 : 0);
        rt.launch(rt.fn(ROWS_MODULE, `softmax_${mode}_${DTYPE_SUFFIX[x0.dtype]}`), grid, block);
      });
    },

    softmaxBackward(y0, gy0, gx, log) {
      const [rows, cols] = rowsOf('softmax backward', y0);
      if (rows * cols === 0) return;
      requireOutput('softmax backward', gx, y0);
      withContiguous([y0, gy0], ([y, gy]) => {
        const { mode, grid, block } = rowLaunch(rows, cols);
        rt.params.begin().ptr(addressOf(y!)).ptr(addressOf(gy!)).ptr(addressOf(gx)).i64(rows).i64(cols).i32(log ? 1 : 0);
        rt.launch(rt.fn(ROWS_MODULE, `softmax_backward_${mode}_${DTYPE_SUFFIX[y0.dtype]}`), grid, block);
      });
    },

    normRows(kind, x0, eps, out, mean, rstd) {
      const [rows, cols] = rowsOf(`${kind}Norm`, x0);
      if (rows * cols === 0) return;
      requireOutput(`${kind}Norm`, out, x0);
      const stats = x0.dtype === 'float64' ? 'float64' : 'float32';
      if (mean.dtype !== stats || rstd.dtype !== stats) throw new TypeError(`${kind}Norm: CUDA statistics of ${x0.dtype} rows must be ${stats}, got ${mean.dtype}/${rstd.dtype}`);
      withContiguous([x0], ([x]) => {
        const { mode, grid, block } = rowLaunch(rows, cols);
        rt.params.begin().i32(kind === 'rms' ? 1 : 0).ptr(addressOf(x!)).ptr(addressOf(out)).ptr(addressOf(mean)).ptr(addressOf(rstd))
          .i64(rows).i64(cols).f64(eps);
        rt.launch(rt.fn(ROWS_MODULE, `norm_${mode}_${DTYPE_SUFFIX[x0.dtype]}`), grid, block);
      });
    },

    normRowsBackward(kind, x0, mean0, rstd0, gy0, gx) {
      const [rows, cols] = rowsOf(`${kind}Norm backward`, x0);
      if (rows * cols === 0) return;
      requireOutput(`${kind}Norm backward`, gx, x0);
      withContiguous([x0, mean0, rstd0, gy0], ([x, mean, rstd, gy]) => {
        const { mode, grid, block } = rowLaunch(rows, cols);
        rt.params.begin().i32(kind === 'rms' ? 1 : 0).ptr(addressOf(x!)).ptr(addressOf(mean!)).ptr(addressOf(rstd!))
          .ptr(addressOf(gy!)).ptr(addressOf(gx)).i64(rows).i64(cols);
        rt.launch(rt.fn(ROWS_MODULE, `norm_backward_${mode}_${DTYPE_SUFFIX[x0.dtype]}`), grid, block);
      });
    },
  };
}
