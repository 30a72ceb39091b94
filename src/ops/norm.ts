/**
 * Normalisation layers. One row kernel normalises (layer: subtract mean; rms: no mean); affine
 * scale and shift are ordinary broadcasting ops, so their gradients come from those ops.
 */
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { contiguous, reshape } from './layout.js';
import { add, mul } from './elementwise.js';

/** Normalises contiguous rows of the last `cols` elements; differentiable in x. */
export function normalizeRows(kind: 'layer' | 'rms', x0: Tensor, cols: number, eps: number): Tensor {
  const x = contiguous(x0);
  const rows = cols === 0 ? 0 : x.numel / cols;
  const x2 = reshape(x, [rows, cols]);
  const out = Tensor.empty([rows, cols], x.dtype, x.backend);
  // Statistics in the compute type: float32 ones would cost a float64 backward ~1e-7.
  const stats = x.dtype === 'float64' ? 'float64' : 'float32';
  const mean = Tensor.empty([rows], stats, x.backend);
  const rstd = Tensor.empty([rows], stats, x.backend);
  if (out.numel > 0) x.backend.kernels.normRows(kind, x2, eps, out, mean, rstd);
  record(kind === 'layer' ? 'layerNorm' : 'rmsNorm', [x2], [out], ([g]) => {
    const gx = Tensor.empty([rows, cols], x.dtype, x.backend);
    if (gx.numel > 0) x.backend.kernels.normRowsBackward(kind, x2, mean, rstd, contiguous(g!), gx);
    return [gx];
  }, { onceDifferentiable: true, saved: [x2, mean, rstd] });
  return reshape(out, x.shape);
}

function checkNormalizedShape(op: string, x: Tensor, normalizedShape: readonly number[]): number {
  const tail = x.shape.slice(x.ndim - normalizedShape.length);
  if (normalizedShape.length > x.ndim || tail.some((s, i) => s !== normalizedShape[i])) {
    throw new ShapeError(`${op}: normalized shape ${formatShape(normalizedShape)} does not match the end of input ${formatShape(x.shape)}`);
  }
  return normalizedShape.reduce((a, b) => a * b, 1);
}

function affine(y: Tensor, weight?: Tensor | null, bias?: Tensor | null): Tensor {
  let out = y;
  if (weight) out = mul(out, weight);
  if (bias) out = add(out, bias);
  return out;
}

export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const cols = checkNormalizedShape('layerNorm', x, normalizedShape);
  return affine(normalizeRows('layer', x, cols, eps), weight, bias);
}

export function rmsNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, eps = 1e-6): Tensor {
  const cols = checkNormalizedShape('rmsNorm', x, normalizedShape);
  return affine(normalizeRows('rms', x, cols, eps), weight, null);
}

/** Group norm over x [N, C, ...]: statistics per (sample, group of C/G channels). */
export function groupNorm(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  if (x.ndim < 2) throw new ShapeError(`groupNorm: input must be [N, C, ...], got ${formatShape(x.shape)}`);
  const [n, c] = [x.shape[0]!, x.shape[1]!];
  if (c % numGroups !== 0) throw new ShapeError(`groupNorm: ${c} channels do not split into ${numGroups} groups`);
  const perGroup = x.numel / (n * numGroups || 1);
  const y = reshape(normalizeRows('layer', reshape(x, [n * numGroups, perGroup]), perGroup, eps), x.shape);
  const channelShape = [c, ...x.shape.slice(2).map(() => 1)];
  return affine(y, weight ? reshape(weight, channelShape) : null, bias ? reshape(bias, channelShape) : null);
}
