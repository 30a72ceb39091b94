/**
 * Reductions over dims. When the reduced dims form one block between kept dims whose innermost
 * part is contiguous (a bias gradient: sum over N of [N, C]; a broadcast gradient: sum over L of
 * [B, L, C]), the backend reduces x in place as [outer, reduced, inner] columns. Otherwise the
 * reduced dims are moved last and made contiguous for the row-reduction kernel.
 */
import { isFloating, type DType } from '../tensor/dtype.js';
import { ShapeError, formatShape, normalizeDims } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { ReduceOp } from '../backends/backend.js';
import { record } from './record.js';
import { columnView } from './reduce-columns.js';
import { cast, contiguous, expand, permute, reshape } from './layout.js';
import { div, eq, mul, square, sub } from './elementwise.js';

interface Plan {
  dims: number[];
  rows: number;
  cols: number;
  keepShape: number[];
  outShape: number[];
}

function plan(x: Tensor, dims: number | readonly number[] | undefined, keepdim: boolean, op: string): Plan {
  const ds = normalizeDims(dims, x.ndim, op);
  const keepShape = x.shape.map((s, i) => (ds.includes(i) ? 1 : s));
  const outShape = keepdim ? keepShape : x.shape.filter((_, i) => !ds.includes(i));
  const cols = ds.reduce((n, d) => n * x.shape[d]!, 1);
  // From the kept sizes, not numel / cols: an empty reduced dim still leaves every kept element.
  const rows = keepShape.reduce((n, s) => n * s, 1);
  return { dims: ds, rows, cols, keepShape, outShape };
}

/** x with reduced dims moved last, as a contiguous [rows, cols] matrix. */
function asRows(x: Tensor, p: Plan): Tensor {
  const kept = Array.from({ length: x.ndim }, (_, i) => i).filter((i) => !p.dims.includes(i));
  const moved = contiguous(permute(x, [...kept, ...p.dims]));
  return reshape(moved, [p.rows, p.cols]);
}

function reduceRaw(op: ReduceOp, x: Tensor, p: Plan, outDType: DType): Tensor {
  if (p.cols === 0 && op !== 'sum' && op !== 'prod') {
    throw new ShapeError(`${op}: cannot reduce an empty dimension of a ${formatShape(x.shape)} tensor`);
  }
  const out = Tensor.empty([p.rows], outDType, x.backend);
  const columns = columnView(x, p.dims);
  if (columns !== null) {
    x.backend.kernels.reduceColumns(op, columns, out);
    columns.dispose();
  } else if (p.rows > 0) {
    x.backend.kernels.reduceRows(op, asRows(x, p), out);
  }
  return reshape(out, p.outShape);
}

function sumDType(dtype: DType): DType {
  return dtype === 'bool' ? 'int32' : dtype;
}

export function sum(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const p = plan(x, dims, keepdim, 'sum');
  const out = reduceRaw('sum', x, p, sumDType(x.dtype));
  record('sum', [x], [out], ([g]) => [expand(reshape(g!, p.keepShape), x.shape)]);
  return out;
}

export function mean(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const p = plan(x, dims, keepdim, 'mean');
  const xf = isFloating(x.dtype) ? x : cast(x, 'float32');
  return div(sum(xf, p.dims, keepdim), p.cols);
}

function extremum(op: 'max' | 'min', x: Tensor, dims: number | readonly number[] | undefined, keepdim: boolean): Tensor {
  const p = plan(x, dims, keepdim, op);
  const out = reduceRaw(op, x, p, x.dtype);
  record(op, [x], [out], ([g]) => {
    // Ties share the gradient evenly, like torch.amax.
    const hit = cast(eq(x, reshape(out, p.keepShape)), g!.dtype);
    const count = sum(hit, p.dims, true);
    return [mul(div(hit, count), reshape(g!, p.keepShape))];
  }, { saved: [x, out] });
  return out;
}

/** Largest value over dims (torch.amax). */
export function max(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  return extremum('max', x, dims, keepdim);
}

export function min(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  return extremum('min', x, dims, keepdim);
}

export function prod(x: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const p = plan(x, dims, keepdim, 'prod');
  const out = reduceRaw('prod', x, p, x.dtype);
  record('prod', [x], [out], ([g]) => [mul(reshape(mul(g!, out), p.keepShape), div(1, x))], { saved: [x, out] });
  return out;
}

export function argmax(x: Tensor, dim: number, keepdim = false): Tensor {
  const p = plan(x, dim, keepdim, 'argmax');
  return reduceRaw('argmax', x, p, 'int32');
}

export function argmin(x: Tensor, dim: number, keepdim = false): Tensor {
  const p = plan(x, dim, keepdim, 'argmin');
  return reduceRaw('argmin', x, p, 'int32');
}

/** Variance with Bessel's correction by default (correction = 1), like torch.var. */
export function variance(x: Tensor, dims?: number | readonly number[], keepdim = false, correction = 1): Tensor {
  const p = plan(x, dims, keepdim, 'var');
  const centered = sub(x, mean(x, p.dims, true));
  return div(sum(square(centered), p.dims, keepdim), Math.max(p.cols - correction, 0));
}
