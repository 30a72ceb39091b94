/** Range checks for hyperparameters, with messages naming the optimizer, group and field. */
import { OptimizerError } from './errors.js';

export function checkNonNegative(where: string, field: string, value: number): void {
  if (!Number.isFinite(value) || value < 0) throw new OptimizerError(`${where}: ${field} must be a finite number >= 0, got ${value}`);
}

export function checkPositive(where: string, field: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) throw new OptimizerError(`${where}: ${field} must be a finite number > 0, got ${value}`);
}

/** Each beta in [0, 1) (1 would freeze a moving average at its zero start). */
export function checkBetas(where: string, betas: readonly number[]): void {
  betas.forEach((b, i) => {
    if (!(b >= 0 && b < 1)) throw new OptimizerError(`${where}: betas[${i}] must be in [0, 1), got ${b}`);
  });
}
