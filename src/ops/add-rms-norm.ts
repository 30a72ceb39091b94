/**
 * addRmsNorm: the pre-norm of a block with a float32 residual stream, as one op:
 *   residual' = residual + x          (x cast to the stream's dtype; x alone when residual is null)
 *   normed    = rmsNorm(residual') * weight, in x's dtype
 * which composed is add, cast, normalizeRows, mul, cast: five kernels and a float32 round trip
 * of the normalised rows. Backends with FusedKernels.addRmsNorm do it in one pass each way,
 * computing in float32 and rounding the normed rows once; the op composes those ops where the
 * kernels are absent or do not take the call (a float64 stream, dtypes other than the fused
 * form's, or widths the kernels refuse), which defines the semantics.
 *
 * The fused form: a float32 stream with x float32/bfloat16/float16, or a float64 stream with x
 * float64 (the CPU reference; finite-difference checks); residual (if any) of the stream's dtype,
 * normed of x's dtype; weight [C] of any float dtype (read in the stream's dtype).
 */
import type { FusedKernels } from '../backends/backend.js';
import { isFloating, type DType } from '../tensor/dtype.js';
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { cast, contiguous, reshape } from './layout.js';
import { add } from './elementwise.js';
import { rmsNorm } from './norm.js';

export interface AddRmsNormResult {
  /** The new residual stream (float32, or float64 for a float64 x or residual). */
  readonly residual: Tensor;
  /** rmsNorm(residual) * weight in x's dtype. */
  readonly normed: Tensor;
}

/** The stream's dtype: the residual's, else float64 for a float64 x, else float32. */
function streamDtype(residual: Tensor | null, x: Tensor): DType {
  if (residual) return residual.dtype;
  return x.dtype === 'float64' ? 'float64' : 'float32';
}

/** The composed form the fused op must equal (and runs where a backend lacks the kernels). */
export function composedAddRmsNorm(residual: Tensor | null, x: Tensor, weight: Tensor | null, eps = 1e-6): AddRmsNormResult {
  const dtype = streamDtype(residual, x);
  const xs = cast(x, dtype);
  const res = residual ? add(residual, xs) : xs;
  const c = x.shape[x.ndim - 1]!;
  return { residual: res, normed: cast(rmsNorm(res, [c], weight, eps), x.dtype) };
}

const FUSED_X: ReadonlySet<DType> = new Set(['float32', 'bfloat16', 'float16']);

function fusedForm(stream: DType, x: DType): boolean {
  return (stream === 'float32' && FUSED_X.has(x)) || (stream === 'float64' && x === 'float64');
}

function fusedFor(residual: Tensor | null, x: Tensor, weight: Tensor | null): FusedKernels | null {
  const fused = x.backend.fused;
  if (!fused.addRmsNorm || !fused.addRmsNormBackward) return null;
  if (!fusedForm(streamDtype(residual, x), x.dtype)) return null;
  if (weight && !isFloating(weight.dtype)) return null;
  const c = x.shape[x.ndim - 1]!;
  return fused.addRmsNormSupports?.(x.dtype, c) ?? true ? fused : null;
}

/**
 * residual + x and its RMSNorm over the last dim (see the module comment). residual null starts
 * the stream at x; weight null means no affine scale.
 */
export function addRmsNorm(residual: Tensor | null, x: Tensor, weight: Tensor | null, eps = 1e-6): AddRmsNormResult {
  const op = 'addRmsNorm';
  if (x.ndim === 0) throw new ShapeError(`${op}: x must have at least one dim, got a scalar`);
  if (!isFloating(x.dtype)) throw new TypeError(`${op}: x must be a float tensor, got ${x.dtype}`);
  if (!(eps >= 0)) throw new RangeError(`${op}: eps must be >= 0, got ${eps}`);
  const c = x.shape[x.ndim - 1]!;
  if (residual) {
    if (residual.ndim !== x.ndim || residual.shape.some((s, i) => s !== x.shape[i])) {
      throw new ShapeError(`${op}: residual ${formatShape(residual.shape)} must have x's shape ${formatShape(x.shape)}`);
    }
    if (!isFloating(residual.dtype)) throw new TypeError(`${op}: residual must be a float tensor, got ${residual.dtype}`);
    if (residual.deviceName !== x.deviceName) throw new TypeError(`${op}: residual is on ${residual.deviceName}, x on ${x.deviceName}`);
  }
  if (weight) {
    if (weight.ndim !== 1 || weight.shape[0] !== c) throw new ShapeError(`${op}: weight must be [${c}], got ${formatShape(weight.shape)}`);
    if (weight.deviceName !== x.deviceName) throw new TypeError(`${op}: weight is on ${weight.deviceName}, x on ${x.deviceName}`);
  }
  const fused = fusedFor(residual, x, weight);
  if (!fused) return composedAddRmsNorm(residual, x, weight, eps);

  const rows = c === 0 ? 0 : x.numel / c;
  const be = x.backend;
  const x2 = reshape(contiguous(x), [rows, c]);
  const r2 = residual ? reshape(contiguous(residual), [rows, c]) : null;
  const stream = streamDtype(residual, x);
  // A cast of the weight is differentiable, so its float32 gradient flows back to a bf16 weight.
  const w32 = weight ? contiguous(cast(weight, stream)) : null;
  const res = Tensor.empty([rows, c], stream, be);
  const normed = Tensor.empty([rows, c], x.dtype, be);
  // The row statistic in the stream's precision: float32 would cost a float64 stream ~1e-7.
  const rstd = Tensor.empty([rows], stream, be);
  if (res.numel > 0) fused.addRmsNorm!(r2, x2, w32, eps, res, normed, rstd);
  const inputs = [x2, ...(r2 ? [r2] : []), ...(w32 ? [w32] : [])];
  record(op, inputs, [res, normed], ([gRes, gNormed]) => {
    const gResidual = Tensor.empty([rows, c], stream, be);
    const gx = x2.requiresGrad ? Tensor.empty([rows, c], x.dtype, be) : null;
    const gWeight = w32?.requiresGrad ? Tensor.empty([c], stream, be) : null;
    if (gResidual.numel > 0) {
      fused.addRmsNormBackward!(res, w32, rstd, contiguous(gRes!), contiguous(gNormed!), gResidual, gx, gWeight);
    } else if (gWeight) {
      be.kernels.fill(gWeight, 0);
    }
    return [gx, ...(r2 ? [gResidual] : []), ...(w32 ? [gWeight] : [])];
  }, { onceDifferentiable: true, saved: [res, w32, rstd] });
  return { residual: reshape(res, x.shape), normed: reshape(normed, x.shape) };
}
