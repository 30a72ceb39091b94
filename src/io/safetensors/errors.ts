/**
 * Every problem with a safetensors file or a sharded index — malformed, hostile, truncated or
 * unreadable — surfaces as this error, with the offending file's path first in the message so a
 * user loading dozens of shards knows which one to re-download.
 */
export class SafetensorsError extends Error {
  /** The file the problem is in (a .safetensors file or a .index.json file). */
  readonly path: string;

  constructor(path: string, problem: string, options?: { cause?: unknown }) {
    super(`${path}: ${problem}`, options);
    this.name = 'SafetensorsError';
    this.path = path;
  }
}

/** Wraps an operating-system error (ENOENT, EIO, ...) so callers need to catch one type only. */
export function ioError(path: string, action: string, cause: unknown): SafetensorsError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new SafetensorsError(path, `cannot ${action}: ${reason}`, { cause });
}
