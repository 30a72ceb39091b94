/**
 * dimba.diffusion: noise schedules, training objectives and samplers. Models never see a schedule:
 * objectives and samplers call them as (x_t, t, cond) => output, and every sampler is one loop over
 * a Scheduler (setTimesteps / step / addNoise).
 */
export { DiffusionError } from './errors.js';
export { NoiseSchedule, linearBetas, linspace64 } from './schedule.js';
export { spacedTimesteps, roundHalfEven, type TimestepSpacing } from './spacing.js';
export { concatConditions, checkConditionBatch, type Condition, type ModelFn } from './model.js';
export { toDataAndNoise, velocityTarget, type Prediction, type DataAndNoise } from './prediction.js';
export { meanFlat, normalKl, approxStandardNormalCdf, discretizedGaussianLogLikelihood } from './gaussian.js';
export {
  checkObjectiveArgs, type ObjectiveArgs, type ObjectiveResult, type ObjectiveTerms,
} from './objective.js';
export { epsilonLoss, variationalBoundTerm, type EpsilonLossOptions } from './loss-epsilon.js';
export { vPredictionLoss } from './loss-v.js';
export { flowMatchingLoss, type FlowLossOptions } from './loss-flow.js';
export { minSnrWeight, minSnrWeights } from './min-snr.js';
export { sampleTimesteps, sampleFlowTimes, type DrawOptions, type FlowTimeOptions } from './timestep-sampling.js';
export { dropConditions, type DropoutChoice, type DroppedConditions } from './caption-dropout.js';
export { StepCounter, type Scheduler } from './scheduler.js';
export { DDIMScheduler, type DDIMOptions } from './ddim.js';
export { DPMSolverMultistepScheduler, type DPMSolverOptions } from './dpm-solver.js';
export { FlowMatchEulerScheduler, flowInterpolate, shiftSigma, type FlowEulerOptions } from './flow-euler.js';
export { guidedPrediction, predictionPart, type GuidedCall } from './guidance.js';
export { runSampler, type SampleOptions, type StepInfo } from './sampling.js';
export { sampleDDIM, sampleDPMSolver, sampleFlowEuler, type ScheduleOption } from './samplers.js';
