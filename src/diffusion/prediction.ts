/**
 * What a variance-preserving model predicts, and the conversions between parameterisations.
 * With x_t = α_t x_0 + σ_t ε (α_t = √ᾱ_t, σ_t = √(1 - ᾱ_t)):
 *   'epsilon': ε̂ (DDPM eq. 11);   x̂_0 = (x_t - σ_t ε̂) / α_t
 *   'v':       v̂ ≈ α_t ε - σ_t x_0 (Salimans & Ho 2022, App. D);   x̂_0 = α_t x_t - σ_t v̂,  ε̂ = σ_t x_t + α_t v̂
 *   'sample':  x̂_0 directly;   ε̂ = (x_t - α_t x̂_0) / σ_t
 */
import type { Tensor } from '../tensor/tensor.js';
import { add, div, mul, sub, type TensorOrScalar } from '../ops/elementwise.js';

export type Prediction = 'epsilon' | 'v' | 'sample';

export interface DataAndNoise {
  x0: Tensor;
  eps: Tensor;
}

/** x̂_0 and ε̂ implied by a model output at x_t; alpha and sigma are numbers or per-sample tensors. */
export function toDataAndNoise(prediction: Prediction, output: Tensor, xt: Tensor, alpha: TensorOrScalar, sigma: TensorOrScalar): DataAndNoise {
  switch (prediction) {
    case 'epsilon':
      return { eps: output, x0: div(sub(xt, mul(output, sigma)), alpha) };
    case 'v':
      return { x0: sub(mul(xt, alpha), mul(output, sigma)), eps: add(mul(xt, sigma), mul(output, alpha)) };
    case 'sample':
      return { x0: output, eps: div(sub(xt, mul(output, alpha)), sigma) };
  }
}

/** The v target α_t ε - σ_t x_0 for v-prediction training. */
export function velocityTarget(x0: Tensor, noise: Tensor, alpha: TensorOrScalar, sigma: TensorOrScalar): Tensor {
  return sub(mul(noise, alpha), mul(x0, sigma));
}
