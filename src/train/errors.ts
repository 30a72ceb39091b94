/**
 * Errors of the trainer. Each names what the user can act on: the config field, the checkpoint
 * file, the output folder.
 */

/** A config file that cannot be used: unknown key, wrong type, value out of range. */
export class TrainConfigError extends Error {
  override name = 'TrainConfigError';
}

/** A checkpoint that cannot be written or read (the previous checkpoint is never touched). */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Training cannot go on (for example, the loss was NaN for too many steps in a row). */
export class TrainingError extends Error {
  override name = 'TrainingError';
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The errno code of a Node.js system error ('ENOSPC', 'EACCES', ...), if any. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code: unknown = Reflect.get(error, 'code');
  return typeof code === 'string' ? code : undefined;
}
