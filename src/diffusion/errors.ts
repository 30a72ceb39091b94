/** Errors raised by schedules, objectives, schedulers and samplers: bad arguments, shapes or call order. */
export class DiffusionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiffusionError';
  }
}
