/**
 * The one protocol every sampler scheduler follows (diffusers style). A run is
 *   scheduler.setTimesteps(n); x = noise * initNoiseSigma;
 *   for (const t of scheduler.timesteps) x = scheduler.step(model(x, t), t, x, generator);
 * Schedulers own the noise schedule and the solver; they never call the model. Multistep solvers
 * keep the previous outputs of the current run, which setTimesteps clears, so one scheduler
 * serves one run at a time.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../random/generator.js';
import { DiffusionError } from './errors.js';

export interface Scheduler {
  /** Timesteps of the current run in the order step() takes them, in the model's time units. */
  readonly timesteps: readonly number[];
  /** Standard deviation of the starting noise x_T. */
  readonly initNoiseSigma: number;
  /** Prepares a run of `numSteps` model evaluations. */
  setTimesteps(numSteps: number): void;
  /**
   * The sample one step closer to the data, from the model's output at (sample, t). `t` must be the
   * next entry of `timesteps`; stochastic schedulers draw their noise from `generator`.
   */
  step(modelOutput: Tensor, t: number, sample: Tensor, generator?: Generator): Tensor;
  /** The forward process q(x_t | x_0) at timestep(s) t (a number, or a [B] tensor of timesteps). */
  addNoise(x0: Tensor, noise: Tensor, t: Tensor | number): Tensor;
}

/** Step bookkeeping shared by schedulers: which index of the run comes next. */
export class StepCounter {
  private next = 0;

  constructor(private readonly owner: string) {}

  reset(): void {
    this.next = 0;
  }

  /** Index of `t` in `timesteps`, which must be the next one expected; advances the counter. */
  advance(timesteps: readonly number[], t: number): number {
    if (timesteps.length === 0) throw new DiffusionError(`${this.owner}.step: call setTimesteps before step`);
    const i = this.next;
    if (i >= timesteps.length) {
      throw new DiffusionError(`${this.owner}.step: all ${timesteps.length} steps are done; call setTimesteps to start another run`);
    }
    if (timesteps[i] !== t) {
      throw new DiffusionError(`${this.owner}.step: expected timestep ${timesteps[i]} (step ${i} of ${timesteps.length}), got ${t}`);
    }
    this.next = i + 1;
    return i;
  }
}

export function checkStepCount(owner: string, numSteps: number, max: number): void {
  if (!Number.isInteger(numSteps) || numSteps < 1 || numSteps > max) {
    throw new DiffusionError(`${owner}.setTimesteps: numSteps must be an integer in [1, ${max}], got ${numSteps}`);
  }
}
