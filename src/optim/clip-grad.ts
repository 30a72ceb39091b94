/**
 * Gradient clipping by the total norm over all parameters (torch.nn.utils.clip_grad_norm_).
 *
 * Gradients are rescaled by assigning a scaled tensor to `.grad` rather than by overwriting the
 * old gradient's storage: the autograd engine may hand one gradient tensor (or a broadcast view
 * of one) to several leaves, and scaling it in place would scale those leaves twice.
 */
import type { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../autograd/grad-mode.js';
import { abs, mul, pow, square } from '../ops/elementwise.js';
import { max, sum } from '../ops/reduce.js';
import { cast, stack } from '../ops/layout.js';
import { OptimizerError } from './errors.js';

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
      const parts = byDevice.get(p.grad!.deviceName) ?? [];
      parts.push(partialNorm(p.grad!, normType));
      byDevice.set(p.grad!.deviceName, parts);
    }
    const perDevice = [...byDevice.values()].map((parts) => {
      const dtype = parts.some((t) => t.dtype === 'float64') ? 'float64' : 'float32';
      const all = stack(parts.map((t) => cast(t, dtype)));
      return (normType === Infinity ? max(all) : sum(all)).item();
    });
    if (normType === Infinity) return Math.max(...perDevice);
    const summed = perDevice.reduce((a, b) => a + b, 0);
    return normType === 2 ? Math.sqrt(summed) : summed ** (1 / normType);
  });
  if (!Number.isFinite(total)) return total;
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    noGrad(() => {
      for (const p of withGrads) p.grad = mul(p.grad!, coef);
    });
  }
  return total;
}
