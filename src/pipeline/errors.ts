/** Errors of the text-to-image pipeline: parts that do not fit together, bad generation options. */
export class PipelineError extends Error {
  override name = 'PipelineError';
}
