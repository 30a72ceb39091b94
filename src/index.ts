/** dimba: the public library API. */
export { Tensor } from './tensor/tensor.js';
export { tidy, keep, DisposedTensorError, ScopeError } from './tensor/lifetime.js';
export { memoryStats, resetPeakMemoryStats, type TensorMemoryStats } from './tensor/memory.js';
export type { DType } from './tensor/dtype.js';
export * from './ops/index.js';
export { Generator, defaultGenerator, manualSeed } from './random/generator.js';
export { getBackend, registerBackendFactory } from './backends/registry.js';
export * as nn from './nn/index.js';
export * as diffusion from './diffusion/index.js';
export * as data from './data/index.js';
