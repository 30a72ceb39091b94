/**
 * Rectified-flow / flow-matching training (Liu et al. 2022; SD3, Esser et al. 2024, §2-3):
 *   x_t = (1 - t) x_0 + t ε,  t ∈ [0, 1],   target velocity  v = dx_t/dt = ε - x_0,
 *   loss = ||v - v̂(x_t, t)||² averaged per sample (SD3 eq. 9 with w_t = 1 for rectified flow).
 * The model sees t · timeScale (default 1000, as SD3 feeds its transformer).
 */
import { DiffusionError } from './errors.js';
import { cast } from '../ops/layout.js';
import { mul, square, sub } from '../ops/elementwise.js';
import { isFloating } from '../tensor/dtype.js';
import type { Condition } from './model.js';
import { meanFlat } from './gaussian.js';
import { flowInterpolate } from './flow-euler.js';
import { checkObjectiveArgs, checkOutput, finishObjective, type ObjectiveArgs, type ObjectiveResult } from './objective.js';

export interface FlowLossOptions {
  /** Model time per unit of t (default 1000). */
  timeScale?: number;
}

export function flowMatchingLoss<C extends Condition>(args: ObjectiveArgs<C>, options: FlowLossOptions = {}): ObjectiveResult {
  checkObjectiveArgs('flowMatchingLoss', args);
  const { x0, noise, t } = args;
  if (!isFloating(t.dtype)) throw new DiffusionError(`flowMatchingLoss: t must be a floating tensor of times in [0, 1], got ${t.dtype}`);
  const xt = flowInterpolate(x0, noise, t);
  const output = args.model(xt, mul(cast(t, 'float32'), options.timeScale ?? 1000), args.cond);
  checkOutput('flowMatchingLoss', output, x0.shape);
  return finishObjective(meanFlat(square(sub(sub(noise, x0), output))), args.weights);
}
