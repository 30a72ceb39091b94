/**
 * v-prediction training (Salimans & Ho 2022, "Progressive Distillation", App. D): the model predicts
 * v = α_t ε - σ_t x_0 (α_t = √ᾱ_t, σ_t = √(1 - ᾱ_t)); loss = ||v - v̂||² averaged per sample.
 */
import { cast } from '../ops/layout.js';
import { square, sub } from '../ops/elementwise.js';
import type { Condition } from './model.js';
import type { NoiseSchedule } from './schedule.js';
import { meanFlat } from './gaussian.js';
import { velocityTarget } from './prediction.js';
import { checkIntegerTimesteps } from './loss-epsilon.js';
import { checkObjectiveArgs, checkOutput, finishObjective, type ObjectiveArgs, type ObjectiveResult } from './objective.js';

export function vPredictionLoss<C extends Condition>(schedule: NoiseSchedule, args: ObjectiveArgs<C>): ObjectiveResult {
  checkObjectiveArgs('vPredictionLoss', args);
  checkIntegerTimesteps('vPredictionLoss', args.t);
  const { x0, noise, t } = args;
  const xt = schedule.addNoise(x0, noise, t);
  const output = args.model(xt, cast(t, 'float32'), args.cond);
  checkOutput('vPredictionLoss', output, x0.shape);
  const target = velocityTarget(x0, noise, schedule.gather(schedule.sqrtAlphasCumprod, t, x0), schedule.gather(schedule.sqrtOneMinusAlphasCumprod, t, x0));
  return finishObjective(meanFlat(square(sub(target, output))), args.weights);
}
