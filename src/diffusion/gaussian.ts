/**
 * Gaussian terms of the variational bound (improved DDPM, Nichol & Dhariwal 2021, §2 and §3.1),
 * elementwise on tensors and differentiable. Results are in nats; callers convert to bits.
 */
import type { Tensor } from '../tensor/tensor.js';
import { add, clamp, exp, gt, log, lt, mul, neg, pow, square, sub, tanh, where } from '../ops/elementwise.js';
import { mean } from '../ops/reduce.js';
import { DiffusionError } from './errors.js';
import { formatShape } from '../tensor/shape.js';

/** Mean over every dim but the batch dim: [B, ...] -> [B]. */
export function meanFlat(x: Tensor): Tensor {
  if (x.ndim < 2) throw new DiffusionError(`meanFlat: need a [B, ...] tensor with at least 2 dims, got ${formatShape(x.shape)}`);
  return mean(x, Array.from({ length: x.ndim - 1 }, (_, i) => i + 1));
}

/** KL(N(mean1, e^logVar1) || N(mean2, e^logVar2)) per element, broadcasting. */
export function normalKl(mean1: Tensor, logVar1: Tensor, mean2: Tensor, logVar2: Tensor): Tensor {
  const ratio = exp(sub(logVar1, logVar2));
  const dist = mul(square(sub(mean1, mean2)), exp(neg(logVar2)));
  return mul(add(add(sub(sub(logVar2, logVar1), 1), ratio), dist), 0.5);
}

/** Φ(x) by the tanh approximation 0.5 (1 + tanh(√(2/π) (x + 0.044715 x³))) that improved DDPM uses. */
export function approxStandardNormalCdf(x: Tensor): Tensor {
  const inner = mul(add(x, mul(pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(add(tanh(inner), 1), 0.5);
}

/**
 * log P(x) of data discretised to 256 levels in [-1, 1] under N(means, e^(2 logScales)): the
 * Gaussian mass of the bin [x - 1/255, x + 1/255], with the outermost bins extended to ±∞
 * (the decoder L_0 of DDPM §3.3). Probabilities are clamped at 1e-12 before the log.
 */
export function discretizedGaussianLogLikelihood(x: Tensor, means: Tensor, logScales: Tensor): Tensor {
  const centered = sub(x, means);
  const invStd = exp(neg(logScales));
  const cdfPlus = approxStandardNormalCdf(mul(invStd, add(centered, 1 / 255)));
  const cdfMin = approxStandardNormalCdf(mul(invStd, sub(centered, 1 / 255)));
  const logCdfPlus = log(clamp(cdfPlus, 1e-12));
  const logOneMinusCdfMin = log(clamp(sub(1, cdfMin), 1e-12));
  const logDelta = log(clamp(sub(cdfPlus, cdfMin), 1e-12));
  return where(lt(x, -0.999), logCdfPlus, where(gt(x, 0.999), logOneMinusCdfMin, logDelta));
}
