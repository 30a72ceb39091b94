/**
 * What may not happen while a CUDA graph is being captured, and the error that says so. The
 * runtime, backend and allocator check `CudaRuntime.capture` before the calls listed here, so the
 * user gets this error (naming the call) instead of the driver invalidating the capture, or worse,
 * a graph that silently replays stale values.
 */

export class CudaGraphCaptureError extends Error {
  override name = 'CudaGraphCaptureError';
}

/** Why each forbidden call breaks capture, and what to do instead. */
export const CAPTURE_HINTS = {
  hostRead: 'a copy to the host (.item(), toHost(), toFloat32Array(), toArray()) waits for results the captured work has not produced '
    + '(capture records kernels without running them); read results after replay',
  hostWrite: 'a copy from the host (tensor(), fromHost(), .to(\'cuda\')) is synchronous and would be baked into the graph with this '
    + 'call\'s values; upload before capture and write per-call values into a static input tensor',
  synchronize: 'waiting for the stream cannot complete while its work is being recorded rather than run',
  moduleLoad: 'compiling and loading kernels is not stream work and cannot be captured; run the function once before capture '
    + '(captureReplayable does a warm-up run)',
  random: 'the seed and counter are kernel parameters baked into the graph, so every replay would repeat the same numbers; '
    + 'draw random numbers outside the captured function and pass them in as an input',
  emptyCache: 'returning memory to the device (cuMemFree) synchronises the device',
  replay: 'a graph cannot be launched or destroyed inside another capture; capture the combined work as one graph',
  blas: 'creating the cuBLAS handle allocates device memory outside the stream; run the function once before capture',
  cudnn: 'building a cuDNN plan (handle, operation graph, runtime-compiled engine) and its first execution (which loads the engine\'s '
    + 'kernels) are not stream work; run the function once before capture (captureReplayable does a warm-up run)',
} as const;

export type CaptureHint = keyof typeof CAPTURE_HINTS;

/** "X during CUDA graph capture (graph 'label'): why" */
export function captureError(what: string, hint: CaptureHint, label: string): CudaGraphCaptureError {
  return new CudaGraphCaptureError(`${what} during CUDA graph capture${label ? ` of '${label}'` : ''}: ${CAPTURE_HINTS[hint]}`);
}
