/**
 * Classifier-free guidance (Ho & Salimans 2022): ε̃ = ε(x, ∅) + s (ε(x, c) - ε(x, ∅)). The
 * unconditional and conditional halves run as ONE batched model call on [x; x] with [∅; c], in
 * the order PixArt's DPM-Solver wrapper and diffusers use. For learned-σ models (output channels
 * 2C: ε̂ then the variance interpolation v) only the ε half is used, as the ODE samplers need.
 */
import type { Tensor } from '../tensor/tensor.js';
import { add, mul, sub } from '../ops/elementwise.js';
import { cat, narrow, split } from '../ops/layout.js';
import { full } from '../ops/create.js';
import { formatShape } from '../tensor/shape.js';
import { DiffusionError } from './errors.js';
import { concatConditions, type Condition, type ModelFn } from './model.js';

export interface GuidedCall<C extends Condition> {
  model: ModelFn<C>;
  cond: C;
  /** Without it the model runs on `cond` alone and the scale is not used. */
  uncond?: C;
  guidanceScale: number;
  /** The model outputs 2C channels (dim 1): ε̂ (or v̂, x̂_0) and the learned-variance values. */
  learnedSigma: boolean;
}

/** The prediction half of a model output for a batch x of shape [B, C, ...]. */
export function predictionPart(output: Tensor, x: Tensor, batch: number, learnedSigma: boolean): Tensor {
  const channels = x.shape[1]!;
  const want = [batch, learnedSigma ? 2 * channels : channels, ...x.shape.slice(2)];
  if (output.ndim !== want.length || output.shape.some((s, i) => s !== want[i])) {
    throw new DiffusionError(`sampler: model output ${formatShape(output.shape)} should be ${formatShape(want)} for input ${formatShape(x.shape)}${learnedSigma ? ' (learnedSigma: 2x channels)' : ''}`);
  }
  return learnedSigma ? narrow(output, 1, 0, channels) : output;
}

/** The (guided) model prediction at x and model time t (one value for the whole batch). */
export function guidedPrediction<C extends Condition>(call: GuidedCall<C>, x: Tensor, t: number): Tensor {
  if (x.ndim < 2) throw new DiffusionError(`sampler: samples must be [B, C, ...], got ${formatShape(x.shape)}`);
  const batch = x.shape[0]!;
  if (call.uncond === undefined) {
    const out = call.model(x, full([batch], t, { device: x.device }), call.cond);
    return predictionPart(out, x, batch, call.learnedSigma);
  }
  const both = call.model(cat([x, x], 0), full([2 * batch], t, { device: x.device }), concatConditions(call.uncond, call.cond));
  const halves = split(predictionPart(both, x, 2 * batch, call.learnedSigma), batch, 0);
  const uncond = halves[0]!;
  return add(uncond, mul(sub(halves[1]!, uncond), call.guidanceScale));
}
