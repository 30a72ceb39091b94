/**
 * Gradient clipping by the total norm over all parameters (torch.nn.utils.clip_grad_norm_).
 *
 * Gradients are rescaled by assigning a scaled tensor to `.grad` rather than by overwriting the
 * old gradient's storage: the autograd engine may hand one gradient tensor (or a broadcast view
 * of one) to several leaves, and scaling it in place would scale those leaves twice.
 */
import { tidy } from '../tensor/lifetime.js';
import { noGrad } from '../autograd/grad-mode.js';
import { abs, mul, pow, square } from '../ops/elementwise.js';
import { max, sum } from '../ops/reduce.js';
import { cast, stack } from '../ops/layout.js';
import { Tensor as Tensor } from '../tensor/tensor.js';
import type { StepControl } from '../backends/backend.js';
import { OptimizerError } from './errors.js';
import { isFusedDType, kernelInput, releaseInputs } from './fused.js';

/** Sum of |g|^p over one gradient (max |g| for p = Infinity), as a 0-d tensor. */
function partialNorm(g: Tensor, normType: number): Tensor {
  const x = cast(g, g.dtype === 'float64' ? 'float64' : 'float32');
  if (normType === Infinity) return max(abs(x));
  if (normType === 2) return sum(square(x));
  if (normType === 1) return sum(abs(x));
  return sum(pow(abs(x), normType));
}

/**
 * The norm of all gradients together, as if concatenated into one vector (before clipping). If
 * it exceeds maxNorm every gradient is multiplied by maxNorm / (norm + 1e-6). A NaN or infinite
 * norm is returned with the gradients untouched, so the caller can skip the step.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, normType = 2): number {
  if (!(maxNorm >= 0)) throw new OptimizerError(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  if (!(normType > 0)) throw new OptimizerError(`clipGradNorm: normType must be > 0 or Infinity, got ${normType}`);
  const withGrads = [...params].filter((p) => p.grad !== null && p.grad.numel > 0);
  if (withGrads.length === 0) return 0;
  const total = noGrad(() => {
    // Reduce on each device first, so one number per device crosses to the host.
    const byDevice = new Map<string, Tensor[]>();
    for (const p of withGrads) {
      const grads = byDevice.get(p.grad!.deviceName) ?? [];
      grads.push(p.grad!);
      byDevice.set(p.grad!.deviceName, grads);
    }
    const perDevice = [...byDevice.values()].map((grads) => {
      const fused = grads[0]!.backend.fused;
      if (normType === 2 && fused.sumSquares && grads.every((g) => isFusedDType(g.dtype))) return sumSquaresFused(grads);
      // In a scope: the per-gradient partial norms are released once the number is read.
      return tidy(() => {
        const parts = grads.map((g) => partialNorm(g, normType));
        const dtype = parts.some((t) => t.dtype === 'float64') ? 'float64' : 'float32';
        const all = stack(parts.map((t) => cast(t, dtype)));
        return (normType === Infinity ? max(all) : sum(all)).item();
      });
    });
    if (normType === Infinity) return Math.max(...perDevice);
    const summed = perDevice.reduce((a, b) => a + b, 0);
    return normType === 2 ? Math.sqrt(summed) : summed ** (1 / normType);
  });
  if (!Number.isFinite(total)) return total;
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    noGrad(() => {
      const fused = new Map<string, Tensor[]>();
      for (const p of withGrads) {
        const g = p.grad!;
        if (isFusedDType(g.dtype) && g.backend.fused.scaleTensors) {
          const list = fused.get(g.deviceName) ?? [];
          list.push(p);
          fused.set(g.deviceName, list);
        } else {
          p.grad = mul(g, coef);
        }
      }
      for (const params of fused.values()) scaleFused(params, coef);
    });
  }
  return total;
}

/** Sum of every gradient's squares (each rounded to float32) on one device, in one kernel and one read. */
function sumSquaresFused(grads: Tensor[]): number {
  const inputs = grads.map(kernelInput);
  const out = Tensor.empty([], 'float32', grads[0]!.backend);
  try {
    grads[0]!.backend.fused.sumSquares!(inputs, out);
    return out.item();
  } finally {
    releaseInputs(inputs, grads);
    out.dispose();
  }
}

/** p.grad <- p.grad * coef for each parameter, as new tensors (the old ones may be shared), in one kernel. */
function scaleFused(params: Tensor[], coef: number): void {
  const grads = params.map((p) => p.grad!);
  const inputs = grads.map(kernelInput);
  const outs = grads.map((g) => Tensor.empty(g.shape, g.dtype, g.backend));
  try {
    grads[0]!.backend.fused.scaleTensors!(inputs, outs, coef);
  } finally {
    releaseInputs(inputs, grads);
  }
  params.forEach((p, i) => { p.grad = outs[i]!; });
}

/** The device tensors of a captured step's gradient clipping (all on the parameters' device, made before capture). */
export interface ClipControl {
  /** int32 [1]: set to 1 when the loss or the norm is not finite (the step's kernels then change nothing). */
  readonly skip: Tensor;
  /** float64 [1]: the norm of all gradients together, before clipping. */
  readonly norm: Tensor;
  /** float64 [1]: the factor the gradients were multiplied by (1: not clipped). */
  readonly factor: Tensor;
  /** Keys of the step's own multi-tensor tables (see MultiTensorOptions.control). */
  readonly cacheKeys: { readonly sumSquares: object; readonly scale: object };
}

/**
 * clipGradNorm (2-norm) for a captured training step, where nothing may be read to the host: the
 * sum of squares, the norm, the clip factor and the step's skip flag (a non-finite `loss` or
 * norm) are computed on the device by the same arithmetic as clipGradNorm's, and the gradients
 * are rescaled by the device factor into new tensors. Throws an OptimizerError naming what is
 * missing when the gradients' backend has no such kernels or they are not on one device.
 */
export function clipGradNormControlled(params: Iterable<Tensor>, maxNorm: number, loss: Tensor, control: ClipControl): void {
  if (!(maxNorm >= 0)) throw new OptimizerError(`clipGradNormControlled: maxNorm must be >= 0, got ${maxNorm}`);
  const withGrads = [...params].filter((p) => p.grad !== null && p.grad.numel > 0);
  const device = control.skip.deviceName;
  const fused = control.skip.backend.fused;
  if (!fused.sumSquares || !fused.scaleTensors || !fused.gradNormCheck) {
    throw new OptimizerError(`clipGradNormControlled: ${device} has no multi-tensor sumSquares, scaleTensors and gradNormCheck kernels`);
  }
  for (const p of withGrads) {
    if (p.grad!.deviceName !== device) throw new OptimizerError(`clipGradNormControlled: a gradient is on ${p.grad!.deviceName}, the step on ${device}`);
    if (!isFusedDType(p.grad!.dtype)) throw new OptimizerError(`clipGradNormControlled: a gradient is ${p.grad!.dtype}; the kernels take float32, bfloat16 and float16`);
  }
  noGrad(() => {
    const grads = withGrads.map((p) => p.grad!);
    const inputs = grads.map(kernelInput);
    const step: StepControl = { skip: control.skip, factor: control.factor };
    const squares = Tensor.empty([], 'float32', control.skip.backend);
    const loss32 = cast(loss, 'float32');
    try {
      fused.sumSquares!(inputs, squares, { cacheKey: control.cacheKeys.sumSquares, control: step });
      fused.gradNormCheck!(squares, loss32, maxNorm, control.norm, control.factor, control.skip);
      // An infinite maxNorm never clips (the factor is 1): the rescale would only copy.
      if (maxNorm === Infinity || withGrads.length === 0) return;
      const outs = grads.map((g) => Tensor.empty(g.shape, g.dtype, g.backend));
      fused.scaleTensors!(inputs, outs, 1, { cacheKey: control.cacheKeys.scale, control: step });
      withGrads.forEach((p, i) => { p.grad = outs[i]!; });
    } finally {
      releaseInputs(inputs, grads);
      squares.dispose();
      if (loss32 !== loss) loss32.dispose();
    }
  });
}
