/** What every training objective takes and returns. */
import type { Tensor } from '../tensor/tensor.js';
import { mean } from '../ops/reduce.js';
import { add, mul } from '../ops/elementwise.js';
import { formatShape } from '../tensor/shape.js';
import { DiffusionError } from './errors.js';
import type { Condition, ModelFn } from './model.js';

export interface ObjectiveArgs<C extends Condition> {
  model: ModelFn<C>;
  /** Clean data (latents) [B, C, ...]. */
  x0: Tensor;
  /** ε ~ N(0, I), x0's shape. */
  noise: Tensor;
  /** Timesteps [B]: integers in [0, T) for the DDPM family, σ ∈ [0, 1] for flow matching. */
  t: Tensor;
  cond: C;
  /** Per-sample weights [B] of the regression term (e.g. min-SNR-γ); default 1. */
  weights?: Tensor;
}

export interface ObjectiveTerms {
  /** Per-sample total [B]: weights · mse (+ vb). */
  loss: Tensor;
  /** Per-sample mean squared error of the regression target [B]. */
  mse: Tensor;
  /** Per-sample variational-bound term in bits [B] (learned-variance objectives only). */
  vb?: Tensor;
}

export interface ObjectiveResult {
  /** Scalar: the batch mean of terms.loss. */
  loss: Tensor;
  terms: ObjectiveTerms;
}

export function checkObjectiveArgs<C extends Condition>(what: string, args: ObjectiveArgs<C>): number {
  const { x0, noise, t } = args;
  if (x0.ndim < 2) throw new DiffusionError(`${what}: x0 must be [B, C, ...], got ${formatShape(x0.shape)}`);
  const batch = x0.shape[0]!;
  if (noise.ndim !== x0.ndim || noise.shape.some((s, i) => s !== x0.shape[i])) {
    throw new DiffusionError(`${what}: noise ${formatShape(noise.shape)} must match x0 ${formatShape(x0.shape)}`);
  }
  if (t.ndim !== 1 || t.shape[0] !== batch) throw new DiffusionError(`${what}: t must be [${batch}], got ${formatShape(t.shape)}`);
  if (args.weights && (args.weights.ndim !== 1 || args.weights.shape[0] !== batch)) {
    throw new DiffusionError(`${what}: weights must be [${batch}], got ${formatShape(args.weights.shape)}`);
  }
  return batch;
}

export function checkOutput(what: string, output: Tensor, want: readonly number[]): void {
  if (output.ndim !== want.length || output.shape.some((s, i) => s !== want[i])) {
    throw new DiffusionError(`${what}: model output ${formatShape(output.shape)} should be ${formatShape(want)}`);
  }
}

/** Applies the regression weights and averages over the batch. */
export function finishObjective(mse: Tensor, weights: Tensor | undefined, vb?: Tensor): ObjectiveResult {
  const weighted = weights ? mul(mse, weights) : mse;
  const perSample = vb ? add(weighted, vb) : weighted;
  return { loss: mean(perSample), terms: vb ? { loss: perSample, mse, vb } : { loss: perSample, mse } };
}
