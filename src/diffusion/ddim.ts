/**
 * DDIM (Song et al. 2021): from timestep t to the previous timestep s of the run,
 *   x_s = √ᾱ_s x̂_0 + √(1 - ᾱ_s - σ_t²) ε̂ + σ_t z                       (eq. 12)
 *   σ_t = η √((1 - ᾱ_s) / (1 - ᾱ_t)) √(1 - ᾱ_t / ᾱ_s)                   (eq. 16)
 * η = 0 is the deterministic probability-flow sampler; η = 1 is DDPM's ancestral sampler on the
 * respaced chain. After the last timestep of the run the step lands on ᾱ = 1 (x_s = x̂_0), as
 * PixArt's respaced diffusion (ᾱ_prev[0] = 1) and diffusers' `set_alpha_to_one` do.
 *
 * "Previous timestep" is the next entry of the run's timesteps (the τ sub-sequence of DDIM §4.2, as
 * in PixArt's SpacedDiffusion), not diffusers' t - T/n, which differs from it for 'linspace'.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../random/generator.js';
import { add, mul } from '../ops/elementwise.js';
import { randn } from '../ops/random.js';
import { DiffusionError } from './errors.js';
import type { NoiseSchedule } from './schedule.js';
import { toDataAndNoise, type Prediction } from './prediction.js';
import { spacedTimesteps, type TimestepSpacing } from './spacing.js';
import { StepCounter, checkStepCount, type Scheduler } from './scheduler.js';

export interface DDIMOptions {
  /** Stochasticity η of eq. 16 (default 0). */
  eta?: number;
  prediction?: Prediction;
  /** Default 'linspace' (PixArt's respacing). */
  spacing?: TimestepSpacing;
}

export class DDIMScheduler implements Scheduler {
  readonly initNoiseSigma = 1;
  readonly eta: number;
  readonly prediction: Prediction;
  readonly spacing: TimestepSpacing;
  private runTimesteps: number[] = [];
  private readonly counter = new StepCounter('DDIMScheduler');

  constructor(readonly schedule: NoiseSchedule, options: DDIMOptions = {}) {
    this.eta = options.eta ?? 0;
    if (!(this.eta >= 0 && Number.isFinite(this.eta))) throw new DiffusionError(`DDIMScheduler: eta must be finite and >= 0, got ${this.eta}`);
    this.prediction = options.prediction ?? 'epsilon';
    this.spacing = options.spacing ?? 'linspace';
  }

  get timesteps(): readonly number[] {
    return this.runTimesteps;
  }

  setTimesteps(numSteps: number): void {
    checkStepCount('DDIMScheduler', numSteps, this.schedule.numTimesteps);
    this.runTimesteps = spacedTimesteps(this.spacing, this.schedule.numTimesteps, numSteps);
    this.counter.reset();
  }

  step(modelOutput: Tensor, t: number, sample: Tensor, generator?: Generator): Tensor {
    const i = this.counter.advance(this.runTimesteps, t);
    const s = i + 1 < this.runTimesteps.length ? this.runTimesteps[i + 1]! : -1;
    const abarT = this.schedule.alphasCumprod[t]!;
    const abarS = s >= 0 ? this.schedule.alphasCumprod[s]! : 1;
    const { x0, eps } = toDataAndNoise(this.prediction, modelOutput, sample, Math.sqrt(abarT), Math.sqrt(1 - abarT));
    const sigma = this.eta * Math.sqrt((1 - abarS) / (1 - abarT)) * Math.sqrt(1 - abarT / abarS);
    // 1 - ᾱ_s - σ² >= 0 for η <= 1; larger η overshoots, and keeps only the noise term.
    const direction = Math.sqrt(Math.max(0, 1 - abarS - sigma * sigma));
    const mean = add(mul(x0, Math.sqrt(abarS)), mul(eps, direction));
    if (sigma === 0) return mean;
    const z = randn(sample.shape, { dtype: sample.dtype, device: sample.device, generator });
    return add(mean, mul(z, sigma));
  }

  addNoise(x0: Tensor, noise: Tensor, t: Tensor | number): Tensor {
    return this.schedule.addNoise(x0, noise, t);
  }
}
