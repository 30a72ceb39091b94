/** One sample() entry per sampler: the sampling loop with its scheduler. */
import type { Tensor } from '../tensor/tensor.js';
import type { Condition } from './model.js';
import { NoiseSchedule } from './schedule.js';
import { DDIMScheduler, type DDIMOptions } from './ddim.js';
import { DPMSolverMultistepScheduler, type DPMSolverOptions } from './dpm-solver.js';
import { FlowMatchEulerScheduler, type FlowEulerOptions } from './flow-euler.js';
import { runSampler, type SampleOptions } from './sampling.js';

export interface ScheduleOption {
  /** The trained noise schedule (default: the 1000-step linear schedule of PixArt and Dimba). */
  schedule?: NoiseSchedule;
}

/** DDIM (η = 0 by default). */
export function sampleDDIM<C extends Condition>(options: SampleOptions<C> & DDIMOptions & ScheduleOption): Tensor {
  return runSampler(new DDIMScheduler(options.schedule ?? NoiseSchedule.linear(), options), options);
}

/** DPM-Solver++(2M), PixArt's and Dimba's default sampler (20 steps there). */
export function sampleDPMSolver<C extends Condition>(options: SampleOptions<C> & DPMSolverOptions & ScheduleOption): Tensor {
  return runSampler(new DPMSolverMultistepScheduler(options.schedule ?? NoiseSchedule.linear(), options), options);
}

/** Euler steps along a rectified-flow model's velocity. */
export function sampleFlowEuler<C extends Condition>(options: SampleOptions<C> & FlowEulerOptions): Tensor {
  return runSampler(new FlowMatchEulerScheduler(options), options);
}
