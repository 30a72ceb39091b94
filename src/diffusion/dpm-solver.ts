/**
 * DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a multistep second-order solver of
 * the diffusion ODE in data-prediction form, matching diffusers' DPMSolverMultistepScheduler with
 * algorithm_type='dpmsolver++', solver_type='midpoint', solver_order=2, lower_order_final=True.
 *
 * With α_t = √ᾱ_t, σ_t = √(1 - ᾱ_t), λ_t = log(α_t / σ_t) (eq. 3.2 of DPM-Solver), stepping from
 * s = t_{i-1} to t = t_i with h = λ_t - λ_s and data predictions x̂_0 at s and at the point before (u):
 *   first order (DPM-Solver-1 = DDIM):   x_t = (σ_t / σ_s) x_s - α_t (e^{-h} - 1) x̂_0(s)
 *   second order:  r = (λ_s - λ_u) / h,  D = (1 + 1/(2r)) x̂_0(s) - (1/(2r)) x̂_0(u)
 *                  x_t = (σ_t / σ_s) x_s - α_t (e^{-h} - 1) D
 * The first step is first order (no earlier output yet). The last step goes to σ = 0 by default
 * (diffusers' final_sigmas_type='zero'), where h = ∞ and the update is x̂_0 itself: always first
 * order. With finalSigma 'min' it ends at σ of timestep 0 instead, first order when there are
 * fewer than 15 steps (lower_order_final) and second order otherwise.
 *
 * Time-uniform spacing ('linspace', the default) visits round(linspace(0, T-1, n+1)) from the top,
 * without its final 0: the discrete form of PixArt's DPM-Solver `skip_type='time_uniform'`.
 */
import type { Tensor } from '../tensor/tensor.js';
import { add, mul, sub } from '../ops/elementwise.js';
import { clone } from '../ops/layout.js';
import { keep } from '../tensor/lifetime.js';
import { DiffusionError } from './errors.js';
import type { NoiseSchedule } from './schedule.js';
import { toDataAndNoise, type Prediction } from './prediction.js';
import { spacedTimesteps, type TimestepSpacing } from './spacing.js';
import { StepCounter, checkStepCount, type Scheduler } from './scheduler.js';

export interface DPMSolverOptions {
  prediction?: Prediction;
  /** Default 'linspace' (time-uniform, as PixArt samples). */
  spacing?: TimestepSpacing;
  /** Where the run ends: 'zero' (σ = 0, the default) or 'min' (σ of timestep 0). */
  finalSigma?: 'zero' | 'min';
}

interface Point {
  alpha: number;
  sigma: number;
  lambda: number;
}

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly initNoiseSigma = 1;
  readonly prediction: Prediction;
  readonly spacing: TimestepSpacing;
  readonly finalSigma: 'zero' | 'min';
  private runTimesteps: number[] = [];
  private readonly counter = new StepCounter('DPMSolverMultistepScheduler');
  /**
   * x̂_0 and λ at the previous step of this run (the multistep history of order 2). The scheduler
   * owns this copy (kept out of the sampling loop's per-step scopes) and disposes it when done.
   */
  private previous: { x0: Tensor; lambda: number } | null = null;

  constructor(readonly schedule: NoiseSchedule, options: DPMSolverOptions = {}) {
    this.prediction = options.prediction ?? 'epsilon';
    this.spacing = options.spacing ?? 'linspace';
    this.finalSigma = options.finalSigma ?? 'zero';
  }

  get timesteps(): readonly number[] {
    return this.runTimesteps;
  }

  setTimesteps(numSteps: number): void {
    const T = this.schedule.numTimesteps;
    checkStepCount('DPMSolverMultistepScheduler', numSteps, T - 1);
    // diffusers: 'trailing' gives n points ending at T/n - 1; the others an (n+1)-point grid whose
    // last point (timestep 0) is replaced by the final σ.
    this.runTimesteps = this.spacing === 'trailing'
      ? spacedTimesteps('trailing', T, numSteps)
      : spacedTimesteps(this.spacing, T, numSteps + 1).slice(0, numSteps);
    if (this.finalSigma === 'min' && this.runTimesteps[numSteps - 1] === 0) {
      throw new DiffusionError(`DPMSolverMultistepScheduler.setTimesteps: ${numSteps} '${this.spacing}' steps already reach timestep 0, so finalSigma 'min' has nowhere to go; use fewer steps or finalSigma 'zero'`);
    }
    this.counter.reset();
    this.previous?.x0.dispose();
    this.previous = null;
  }

  private point(t: number): Point {
    return { alpha: this.schedule.alpha(t), sigma: this.schedule.sigma(t), lambda: this.schedule.lambda(t) };
  }

  step(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    const i = this.counter.advance(this.runTimesteps, t);
    const last = i === this.runTimesteps.length - 1;
    const s = this.point(t);
    const { x0 } = toDataAndNoise(this.prediction, modelOutput, sample, s.alpha, s.sigma);
    const previous = this.previous;
    this.previous = last ? null : { x0: keep(clone(x0)), lambda: s.lambda };
    try {
      if (last && this.finalSigma === 'zero') return x0;
      const next = last ? this.point(0) : this.point(this.runTimesteps[i + 1]!);
      const h = next.lambda - s.lambda;
      const firstOrder = previous === null || (last && this.runTimesteps.length < 15);
      let d = x0;
      if (!firstOrder) {
        const r = (s.lambda - previous.lambda) / h;
        d = sub(mul(x0, 1 + 1 / (2 * r)), mul(previous.x0, 1 / (2 * r)));
      }
      return add(mul(sample, next.sigma / s.sigma), mul(d, -next.alpha * Math.expm1(-h)));
    } finally {
      previous?.x0.dispose();
    }
  }

  addNoise(x0: Tensor, noise: Tensor, t: Tensor | number): Tensor {
    return this.schedule.addNoise(x0, noise, t);
  }
}
