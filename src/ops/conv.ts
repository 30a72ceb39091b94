/**
 * 2-D convolution with torch.nn.functional.conv2d semantics (cross-correlation; zero padding;
 * weight [Cout, Cin/groups, kH, kW]). Used by the patch embedding (kernel = stride) and the VAE.
 * Shapes and options are resolved here; backends supply the forward and both backward kernels.
 */
import type { Conv2dArgs } from '../backends/backend.js';
import { isFloating } from '../tensor/dtype.js';
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { contiguous, squeeze, unsqueeze } from './layout.js';
import { sum } from './reduce.js';

/** One value for both spatial dims, or [height, width]. */
export type IntPair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: IntPair;
  /** Zeros on each side, or 'valid' (none) or 'same' (output size = input size; stride 1 only). */
  padding?: IntPair | 'same' | 'valid';
  dilation?: IntPair;
  groups?: number;
}

function pair(value: IntPair, name: string, min: number): [number, number] {
  const p: readonly number[] = typeof value === 'number' ? [value, value] : value;
  if (p.length !== 2 || !p.every((v) => Number.isInteger(v) && v >= min)) {
    throw new RangeError(`conv2d: ${name} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(value)}`);
  }
  return [p[0]!, p[1]!];
}

function checkTensors(x: Tensor, weight: Tensor, bias: Tensor | null): void {
  if (x.ndim !== 4) throw new ShapeError(`conv2d: input must be [N, C, H, W] (or unbatched [C, H, W]), got ${formatShape(x.shape)}`);
  if (weight.ndim !== 4) throw new ShapeError(`conv2d: weight must be [Cout, Cin/groups, kH, kW], got ${formatShape(weight.shape)}`);
  if (!isFloating(x.dtype)) throw new TypeError(`conv2d: input must be a floating tensor, got ${x.dtype}`);
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (!t) continue;
    if (t.dtype !== x.dtype) throw new TypeError(`conv2d: ${name} is ${t.dtype} but input is ${x.dtype}`);
    if (t.deviceName !== x.deviceName) throw new TypeError(`conv2d: ${name} is on ${t.deviceName} but input is on ${x.deviceName}`);
  }
}

/** Resolves options into kernel arguments and the output size, checking them against the shapes. */
function resolve(x: Tensor, weight: Tensor, bias: Tensor | null, options: Conv2dOptions): { args: Conv2dArgs; outShape: number[] } {
  checkTensors(x, weight, bias);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const [co, cg, kh, kw] = weight.shape as [number, number, number, number];
  const groups = options.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new RangeError(`conv2d: groups must be a positive integer, got ${groups}`);
  if (c % groups !== 0) throw new ShapeError(`conv2d: groups=${groups} does not divide the ${c} input channels of ${formatShape(x.shape)}`);
  if (co % groups !== 0) throw new ShapeError(`conv2d: groups=${groups} does not divide the ${co} output channels of weight ${formatShape(weight.shape)}`);
  if (cg * groups !== c) {
    const perGroup = groups > 1 ? ` (${cg} per group x ${groups} groups)` : '';
    throw new ShapeError(`conv2d: weight ${formatShape(weight.shape)} expects ${cg * groups} input channels${perGroup}, input ${formatShape(x.shape)} has ${c}`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== co)) {
    throw new ShapeError(`conv2d: bias must be [${co}] for weight ${formatShape(weight.shape)}, got ${formatShape(bias.shape)}`);
  }
  const stride = pair(options.stride ?? 1, 'stride', 1);
  const dilation = pair(options.dilation ?? 1, 'dilation', 1);
  const span = [dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1] as const;
  const pad = options.padding ?? 0;
  let padding: [number, number];
  let padded: [number, number];
  if (pad === 'same') {
    if (stride[0] !== 1 || stride[1] !== 1) throw new RangeError(`conv2d: padding='same' needs stride 1, got stride [${stride.join(', ')}]`);
    // As PyTorch: an odd total puts the extra zero row/column after the input.
    padding = [Math.floor((span[0] - 1) / 2), Math.floor((span[1] - 1) / 2)];
    padded = [h + span[0] - 1, w + span[1] - 1];
  } else {
    padding = pad === 'valid' ? [0, 0] : pair(pad, 'padding', 0);
    padded = [h + 2 * padding[0], w + 2 * padding[1]];
  }
  if (span[0] > padded[0] || span[1] > padded[1]) {
    throw new ShapeError(`conv2d: kernel ${kh}x${kw} (spanning ${span[0]}x${span[1]} with dilation [${dilation.join(', ')}]) is larger than the padded input ${padded[0]}x${padded[1]} (input ${formatShape(x.shape)}, padding [${padding.join(', ')}])`);
  }
  const ho = Math.floor((padded[0] - span[0]) / stride[0]) + 1;
  const wo = Math.floor((padded[1] - span[1]) / stride[1]) + 1;
  return { args: { stride, padding, dilation, groups }, outShape: [n, co, ho, wo] };
}

/**
 * out[n, o, i, j] = bias[o] + sum_{c, p, q} weight[o, c, p, q] * xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw]
 * where g is o's group; differentiable in x, weight and bias.
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, options: Conv2dOptions = {}): Tensor {
  if (x.ndim === 3) return squeeze(conv2d(unsqueeze(x, 0), weight, bias, options), 0);
  const { args, outShape } = resolve(x, weight, bias ?? null, options);
  const xc = contiguous(x);
  const wc = contiguous(weight);
  const bc = bias ? contiguous(bias) : null;
  const out = Tensor.empty(outShape, x.dtype, x.backend);
  const kernels = x.backend.kernels;
  if (out.numel > 0) kernels.conv2d(xc, wc, bc, out, args);
  record('conv2d', bc ? [xc, wc, bc] : [xc, wc], [out], ([g]) => {
    const gy = contiguous(g!);
    let gx: Tensor | null = null;
    let gw: Tensor | null = null;
    if (xc.requiresGrad) {
      gx = Tensor.empty(xc.shape, xc.dtype, xc.backend);
      if (gx.numel > 0) kernels.conv2dBackwardInput(gy, wc, gx, args);
    }
    if (wc.requiresGrad) {
      gw = Tensor.empty(wc.shape, wc.dtype, wc.backend);
      if (gw.numel > 0) kernels.conv2dBackwardWeight(gy, xc, gw, args);
    }
    return [gx, gw, bc?.requiresGrad ? sum(gy, [0, 2, 3]) : null];
  }, { onceDifferentiable: true, saved: [wc.requiresGrad ? xc : null, xc.requiresGrad ? wc : null] });
  return out;
}
