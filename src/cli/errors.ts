/** Which errors the CLI reports as a message (the user can fix them) rather than with a stack trace. */
import { DataError } from '../data/errors.js';
import { PipelineError } from '../pipeline/errors.js';
import { CheckpointError, TrainConfigError, TrainingError } from '../train/errors.js';
import { DeviceChoiceError } from './device.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function isUserError(error: unknown): error is Error {
  return error instanceof UsageError || error instanceof TrainConfigError || error instanceof CheckpointError || error instanceof TrainingError
    || error instanceof DataError || error instanceof PipelineError || error instanceof DeviceChoiceError
    // util.parseArgs throws TypeErrors with codes ERR_PARSE_ARGS_* for unknown or malformed options.
    || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'));
}

/** Prints a user error and returns the exit code (2: bad usage or config; 1: the run failed). */
export function reportError(command: string, error: Error, usage: string): number {
  const usageProblem = error instanceof UsageError || error instanceof TypeError || error instanceof TrainConfigError;
  console.error(`dimba ${command}: ${error.message}`);
  if (error instanceof UsageError || error instanceof TypeError) console.error(`\n${usage}`);
  return usageProblem ? 2 : 1;
}
