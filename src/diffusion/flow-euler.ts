/**
 * Euler sampler for rectified-flow models (Liu et al. 2022, "Flow Straight and Fast"; SD3, Esser et
 * al. 2024, as diffusers' FlowMatchEulerDiscreteScheduler). The forward process is the straight line
 *   x_σ = (1 - σ) x_0 + σ ε,   σ ∈ [0, 1]                        (SD3 eq. 3 with a_t = 1 - t, b_t = t)
 * and the model predicts the velocity v = dx/dσ = ε - x_0, so one Euler step from σ to σ' is
 *   x_σ' = x_σ + (σ' - σ) v̂(x_σ, σ).
 * The run visits σ = linspace(1, 1/T, n) (T = numTrainTimesteps), optionally shifted by
 * σ ← shift σ / (1 + (shift - 1) σ) (SD3 §5.3.2, eq. 23), and its last step lands on σ = 0.
 * Timesteps, what the model sees, are σ · T, as SD3 feeds its transformer.
 */
import type { Tensor } from '../tensor/tensor.js';
import { add, mul, sub } from '../ops/elementwise.js';
import { DiffusionError } from './errors.js';
import { linspace64 } from './schedule.js';
import { StepCounter, checkStepCount, type Scheduler } from './scheduler.js';
import { formatShape } from '../tensor/shape.js';

export interface FlowEulerOptions {
  /** Scale from σ ∈ [0, 1] to model time (default 1000). */
  numTrainTimesteps?: number;
  /** SD3's timestep shift (default 1: none). */
  shift?: number;
}

/** σ ← shift σ / (1 + (shift - 1) σ): spends more of the run at high noise when shift > 1. */
export function shiftSigma(sigma: number, shift: number): number {
  return (shift * sigma) / (1 + (shift - 1) * sigma);
}

export class FlowMatchEulerScheduler implements Scheduler {
  readonly initNoiseSigma = 1;
  readonly numTrainTimesteps: number;
  readonly shift: number;
  /** σ of each step of the run, followed by the final σ = 0. */
  private sigmas: number[] = [];
  private runTimesteps: number[] = [];
  private readonly counter = new StepCounter('FlowMatchEulerScheduler');

  constructor(options: FlowEulerOptions = {}) {
    this.numTrainTimesteps = options.numTrainTimesteps ?? 1000;
    this.shift = options.shift ?? 1;
    if (!(this.numTrainTimesteps > 0)) throw new DiffusionError(`FlowMatchEulerScheduler: numTrainTimesteps must be > 0, got ${this.numTrainTimesteps}`);
    if (!(this.shift > 0 && Number.isFinite(this.shift))) throw new DiffusionError(`FlowMatchEulerScheduler: shift must be finite and > 0, got ${this.shift}`);
  }

  get timesteps(): readonly number[] {
    return this.runTimesteps;
  }

  /** σ of the current run's steps, then 0. */
  get runSigmas(): readonly number[] {
    return this.sigmas;
  }

  setTimesteps(numSteps: number): void {
    checkStepCount('FlowMatchEulerScheduler', numSteps, Number.MAX_SAFE_INTEGER);
    const sigmas = Array.from(linspace64(1, 1 / this.numTrainTimesteps, numSteps), (s) => shiftSigma(s, this.shift));
    this.sigmas = [...sigmas, 0];
    this.runTimesteps = sigmas.map((s) => s * this.numTrainTimesteps);
    this.counter.reset();
  }

  step(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    const i = this.counter.advance(this.runTimesteps, t);
    return add(sample, mul(modelOutput, this.sigmas[i + 1]! - this.sigmas[i]!));
  }

  /** x_σ = (1 - σ) x_0 + σ ε with σ = t / numTrainTimesteps (t a number or a [B] tensor). */
  addNoise(x0: Tensor, noise: Tensor, t: Tensor | number): Tensor {
    if (x0.shape.length !== noise.shape.length || x0.shape.some((s, i) => s !== noise.shape[i])) {
      throw new DiffusionError(`FlowMatchEulerScheduler.addNoise: noise ${formatShape(noise.shape)} must match x0 ${formatShape(x0.shape)}`);
    }
    return flowInterpolate(x0, noise, typeof t === 'number' ? t / this.numTrainTimesteps : mul(t, 1 / this.numTrainTimesteps));
  }
}

/**
 * (1 - σ) x_0 + σ ε, with σ a number or a [B] tensor (reshaped to broadcast over the batch);
 * written as x_0 + σ (ε - x_0).
 */
export function flowInterpolate(x0: Tensor, noise: Tensor, sigma: Tensor | number): Tensor {
  if (typeof sigma === 'number') return add(x0, mul(sub(noise, x0), sigma));
  if (sigma.ndim !== 1 || sigma.shape[0] !== x0.shape[0]) {
    throw new DiffusionError(`flowInterpolate: σ ${formatShape(sigma.shape)} must be [B] for a batch of shape ${formatShape(x0.shape)}`);
  }
  const s = sigma.reshape(x0.shape[0]!, ...new Array<number>(x0.ndim - 1).fill(1));
  return add(x0, mul(sub(noise, x0), s.dtype === x0.dtype ? s : s.cast(x0.dtype)));
}
