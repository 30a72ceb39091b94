/**
 * Two kinds of failure in data loading. `DataError` is a caller's mistake (a bad option, a
 * missing dataset folder) and is thrown. `SkipError` is one bad input among many (a corrupt
 * image, an empty caption): the loaders catch it, count it in a SkipReport and go on.
 */

/** Why an input was skipped; SkipReport counts by these. */
export type SkipReason =
  | 'empty-file'
  | 'corrupt-image'
  | 'too-many-pixels'
  | 'unsupported-format'
  | 'missing-image'
  | 'missing-caption'
  | 'empty-caption'
  | 'non-utf8-text'
  | 'unreadable-file'
  | 'unreadable-shard'
  | 'bad-manifest-line';

export const SKIP_REASONS: readonly SkipReason[] = [
  'empty-file',
  'corrupt-image',
  'too-many-pixels',
  'unsupported-format',
  'missing-image',
  'missing-caption',
  'empty-caption',
  'non-utf8-text',
  'unreadable-file',
  'unreadable-shard',
  'bad-manifest-line',
];

export class DataError extends Error {
  override name = 'DataError';
}

export class SkipError extends Error {
  override name = 'SkipError';
  readonly reason: SkipReason;
  /** The offending file (for manifests, `path:line`; for tar members, `shard.tar:member`). */
  readonly file: string;
  readonly detail: string;

  constructor(reason: SkipReason, file: string, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${reason}: ${detail}`, options);
    this.reason = reason;
    this.file = file;
    this.detail = detail;
  }
}

/** The error's message, whatever was thrown. */
export function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

/** The errno-style code of a Node.js system error, if any. */
export function errorCode(cause: unknown): string | undefined {
  if (cause instanceof Error && 'code' in cause && typeof cause.code === 'string') return cause.code;
  return undefined;
}
