/**
 * Spatial resampling of [N, C, H, W] tensors with torch.nn.functional.interpolate semantics, for
 * positional-embedding interpolation and image resizing. As in PyTorch (recompute_scale_factor
 * unset), a given scale factor both sets the output size, floor(in * scale), and is used as is to
 * map output pixels back to input coordinates, so the result can differ from resizing to that
 * size directly.
 */
import type { InterpolateArgs, InterpolateMode } from '../backends/backend.js';
import { isFloating } from '../tensor/dtype.js';
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { contiguous } from './layout.js';

export interface InterpolateOptions {
  /** Output [height, width] (or one value for both). Give size or scaleFactor, not both. */
  size?: number | readonly [number, number];
  scaleFactor?: number | readonly [number, number];
  /** 'nearest' is PyTorch's legacy nearest (floor of the scaled index), not 'nearest-exact'. */
  mode?: InterpolateMode;
  /** Bilinear only: map corner pixel centres onto each other instead of using half-pixel centres. */
  alignCorners?: boolean;
  /** Map coordinates by the output size rather than by the given scale factor. */
  recomputeScaleFactor?: boolean;
}

function pairOf(value: number | readonly [number, number], name: string): [number, number] {
  const p: readonly number[] = typeof value === 'number' ? [value, value] : value;
  if (p.length !== 2) throw new RangeError(`interpolate: ${name} must be a number or a [height, width] pair, got ${JSON.stringify(value)}`);
  return [p[0]!, p[1]!];
}

/** Output sizes, and the scale factors that coordinate mapping should use (null: use the sizes). */
function outputSize(x: Tensor, options: InterpolateOptions): { size: [number, number]; scales: [number, number] | null } {
  const { size, scaleFactor } = options;
  if ((size === undefined) === (scaleFactor === undefined)) {
    throw new RangeError('interpolate: give exactly one of size and scaleFactor');
  }
  if (size !== undefined) {
    const s = pairOf(size, 'size');
    if (!s.every((v) => Number.isInteger(v) && v > 0)) throw new RangeError(`interpolate: size must be positive integers, got [${s.join(', ')}]`);
    return { size: s, scales: null };
  }
  const f = pairOf(scaleFactor!, 'scaleFactor');
  if (!f.every((v) => Number.isFinite(v) && v > 0)) throw new RangeError(`interpolate: scaleFactor must be positive, got [${f.join(', ')}]`);
  const s: [number, number] = [Math.floor(x.shape[2]! * f[0]), Math.floor(x.shape[3]! * f[1])];
  if (!s.every((v) => v > 0)) {
    throw new ShapeError(`interpolate: scaleFactor [${f.join(', ')}] turns input ${formatShape(x.shape)} into an empty ${s[0]}x${s[1]} image`);
  }
  return { size: s, scales: options.recomputeScaleFactor ? null : f };
}

/** PyTorch's area_pixel_compute_scale: input pixels per output pixel. */
function ratio(inSize: number, outSize: number, scale: number | null, alignCorners: boolean): number {
  if (alignCorners) return outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  return scale !== null ? 1 / scale : inSize / outSize;
}

/** Resamples x [N, C, H, W] to [N, C, Ho, Wo]; differentiable in x (floating dtypes). */
export function interpolate(x: Tensor, options: InterpolateOptions): Tensor {
  const mode = options.mode ?? 'nearest';
  if (mode !== 'nearest' && mode !== 'bilinear') throw new RangeError(`interpolate: mode must be 'nearest' or 'bilinear', got '${String(mode)}'`);
  if (x.ndim !== 4) throw new ShapeError(`interpolate: input must be [N, C, H, W], got ${formatShape(x.shape)}`);
  if (mode === 'bilinear' && !isFloating(x.dtype)) throw new TypeError(`interpolate: bilinear needs a floating input, got ${x.dtype}`);
  if (mode === 'nearest' && options.alignCorners !== undefined) {
    throw new RangeError('interpolate: alignCorners can only be set with mode bilinear');
  }
  if (x.shape[2] === 0 || x.shape[3] === 0) throw new ShapeError(`interpolate: input ${formatShape(x.shape)} has an empty spatial dim`);
  const alignCorners = options.alignCorners ?? false;
  const { size, scales } = outputSize(x, options);
  const args: InterpolateArgs = {
    mode,
    alignCorners,
    ratio: [ratio(x.shape[2]!, size[0], scales?.[0] ?? null, alignCorners), ratio(x.shape[3]!, size[1], scales?.[1] ?? null, alignCorners)],
  };
  const xc = contiguous(x);
  const out = Tensor.empty([x.shape[0]!, x.shape[1]!, size[0], size[1]], x.dtype, x.backend);
  if (out.numel > 0) x.backend.kernels.interpolate2d(xc, out, args);
  record(`interpolate(${mode})`, [xc], [out], ([g]) => {
    const gx = Tensor.empty(xc.shape, xc.dtype, xc.backend);
    if (gx.numel > 0) xc.backend.kernels.interpolate2dBackward(contiguous(g!), gx, args);
    return [gx];
  }, { onceDifferentiable: true });
  return out;
}
