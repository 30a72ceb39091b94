/**
 * Learning-rate schedules, as pure functions of the optimizer step and as a scheduler object that
 * sets each group's lr and can be saved and restored.
 *
 * Step convention (that of diffusers' get_*_schedule_with_warmup, which PixArt-alpha trains
 * with): `step` counts optimizer steps already taken, so the first step uses lr(0), which is 0
 * when there is warmup, and warmup reaches the base lr at step = warmupSteps.
 */
import { OptimizerError } from './errors.js';
import type { BaseOptions, ParamGroup } from './param-groups.js';

export interface ConstantWarmupSchedule {
  kind: 'constant';
  warmupSteps: number;
}

export interface CosineWarmupSchedule {
  kind: 'cosine';
  warmupSteps: number;
  /** The step at which the cosine reaches `minLr` (it stays there afterwards). */
  totalSteps: number;
  /** Floor of the decay (default 0); a group whose base lr is lower keeps its base lr. */
  minLr?: number;
}

export type LrSchedule = ConstantWarmupSchedule | CosineWarmupSchedule;

function checkStep(what: string, step: number): void {
  if (!Number.isInteger(step) || step < 0) throw new OptimizerError(`${what}: step must be an integer >= 0, got ${step}`);
}

function warmupFactor(step: number, warmupSteps: number): number {
  return warmupSteps > 0 && step < warmupSteps ? step / warmupSteps : 1;
}

/** baseLr * step / warmupSteps during warmup, then baseLr. */
export function constantWithWarmup(step: number, baseLr: number, warmupSteps: number): number {
  checkStep('constantWithWarmup', step);
  return baseLr * warmupFactor(step, warmupSteps);
}

/**
 * Linear warmup to baseLr, then half a cosine from baseLr down to minLr:
 *   lr = minLr + (baseLr - minLr) * (1 + cos(pi * progress)) / 2,
 *   progress = (step - warmupSteps) / (totalSteps - warmupSteps), clamped to [0, 1].
 */
export function cosineWithWarmup(step: number, baseLr: number, warmupSteps: number, totalSteps: number, minLr = 0): number {
  checkStep('cosineWithWarmup', step);
  if (step < warmupSteps) return baseLr * warmupFactor(step, warmupSteps);
  const floor = Math.min(minLr, baseLr);
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
  return floor + (baseLr - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** The lr `schedule` gives at `step` for a group whose configured lr is `baseLr`. */
export function lrAt(schedule: LrSchedule, step: number, baseLr: number): number {
  switch (schedule.kind) {
    case 'constant': return constantWithWarmup(step, baseLr, schedule.warmupSteps);
    case 'cosine': return cosineWithWarmup(step, baseLr, schedule.warmupSteps, schedule.totalSteps, schedule.minLr ?? 0);
  }
}

function validateSchedule(schedule: LrSchedule): void {
  const bad = (field: string, value: unknown) => new OptimizerError(`LrScheduler: ${field} must be an integer >= 0, got ${String(value)}`);
  if (!Number.isInteger(schedule.warmupSteps) || schedule.warmupSteps < 0) throw bad('warmupSteps', schedule.warmupSteps);
  if (schedule.kind === 'cosine') {
    if (!Number.isInteger(schedule.totalSteps) || schedule.totalSteps < schedule.warmupSteps) {
      throw new OptimizerError(`LrScheduler: totalSteps must be an integer >= warmupSteps (${schedule.warmupSteps}), got ${schedule.totalSteps}`);
    }
    const minLr = schedule.minLr ?? 0;
    if (!Number.isFinite(minLr) || minLr < 0) throw new OptimizerError(`LrScheduler: minLr must be >= 0, got ${minLr}`);
  }
}

export interface LrSchedulerState {
  step: number;
  baseLrs: number[];
}

/** Anything with parameter groups whose lr can be set: every Optimizer. */
export interface HasParamGroups {
  readonly paramGroups: readonly ParamGroup<BaseOptions>[];
}

/**
 * Sets every group's lr from the schedule: call step() after each optimizer step. Base lrs are
 * the groups' lrs when the scheduler is made; the lr for step 0 is applied at once.
 */
export class LrScheduler {
  private stepCount = 0;
  private baseLrs: number[];

  constructor(private readonly optimizer: HasParamGroups, readonly schedule: LrSchedule) {
    validateSchedule(schedule);
    this.baseLrs = optimizer.paramGroups.map((g) => g.options.lr);
    this.apply();
  }

  /** Optimizer steps taken so far. */
  get lastStep(): number {
    return this.stepCount;
  }

  /** The lr of each group for the next optimizer step. */
  get lrs(): number[] {
    return this.baseLrs.map((base) => lrAt(this.schedule, this.stepCount, base));
  }

  step(): void {
    this.stepCount += 1;
    this.apply();
  }

  stateDict(): LrSchedulerState {
    return { step: this.stepCount, baseLrs: [...this.baseLrs] };
  }

  loadStateDict(state: LrSchedulerState): void {
    checkStep('LrScheduler.loadStateDict', state.step);
    if (state.baseLrs.length !== this.optimizer.paramGroups.length) {
      throw new OptimizerError(`LrScheduler.loadStateDict: ${state.baseLrs.length} base lrs for ${this.optimizer.paramGroups.length} parameter groups`);
    }
    this.stepCount = state.step;
    this.baseLrs = [...state.baseLrs];
    this.apply();
  }

  private apply(): void {
    const lrs = this.lrs;
    this.optimizer.paramGroups.forEach((g, i) => { g.options.lr = lrs[i]!; });
  }
}
