/**
 * The CUDA backend's entry point. Importing this module loads nothing native; `loadCuda()`
 * registers the backend so 'cuda' / 'cuda:N' devices work, and the driver is opened when the
 * first CUDA tensor is made (a clear CudaUnavailableError or LibraryNotFoundError if it cannot be).
 */
import { registerBackendFactory } from '../registry.js';
import { CudaBackend } from './backend.js';
import type { CudaRuntimeOptions } from './runtime.js';
import { CudaDriver } from './device.js';

/** Registers the CUDA backend factory (idempotent). Options apply to devices created afterwards. */
export function loadCuda(options: CudaRuntimeOptions = {}): void {
  registerBackendFactory('cuda', (device) => new CudaBackend(device, options));
}

/** Like loadCuda, but opens the driver now: throws (LibraryNotFoundError, CudaUnavailableError) if no GPU can be used. */
export function useCuda(options: CudaRuntimeOptions = {}): void {
  loadCuda(options);
  CudaDriver.get().device(0);
}

/** Whether a CUDA GPU can be used here (driver present, at least one device); never throws. */
export function isCudaAvailable(): boolean {
  try {
    return CudaDriver.get().deviceCount() > 0;
  } catch {
    return false;
  }
}

export { CudaBackend } from './backend.js';
export { CudaDriver, CudaUnavailableError, type CudaDeviceInfo } from './device.js';
export { Stream, CudaEvent } from './streams.js';
export { CudaOutOfMemoryError, type MemoryStats } from './allocator.js';
export { CudaNotImplementedError, UNIMPLEMENTED_KERNELS } from './kernels/unimplemented.js';
export { LibraryNotFoundError } from './ffi/loader.js';
export { CudaError } from './ffi/driver.js';
export { NvrtcError } from './ffi/nvrtc.js';
export { CublasError } from './ffi/cublas.js';
export { probeCuda, formatCudaReport, type CudaReport } from './doctor.js';
export { setCompileListener, type CompileEvent } from './compiler.js';
export { warmKernels, parseKernelParts, type WarmedModule } from './warm.js';
export type { CudaRuntimeOptions } from './runtime.js';
