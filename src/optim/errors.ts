/** Errors raised by optimizers, schedules and EMA: bad hyperparameters, groups, or state dicts. */
export class OptimizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptimizerError';
  }
}
