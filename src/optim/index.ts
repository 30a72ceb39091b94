/** Optimizers, learning-rate schedules, gradient clipping and weight EMA for training. */
export { OptimizerError } from './errors.js';
export {
  hasNoWeightDecayFlag, type BaseOptions, type NoWeightDecayPredicate, type ParamGroup, type ParamGroupSpec, type ParamsArg,
} from './param-groups.js';
export {
  Optimizer, OptimizerControl, type GroupStateMeta, type OptimizerOptions, type OptimizerStateDict, type OptimizerStateMeta, type OptionValue,
  type ParamState,
} from './optimizer.js';
export { AdamW, ADAMW_DEFAULTS, type AdamWOptions } from './adamw.js';
export { CAME, CAME_DEFAULTS, type CAMEOptions } from './came.js';
export {
  LrScheduler, constantWithWarmup, cosineWithWarmup, lrAt,
  type ConstantWarmupSchedule, type CosineWarmupSchedule, type HasParamGroups, type LrSchedule, type LrSchedulerState,
} from './schedule.js';
export { clipGradNorm, clipGradNormControlled, type ClipControl } from './clip-grad.js';
export { EMA, type EMAOptions, type EMAStateDict, type EMAStateMeta, type ParamSource } from './ema.js';
