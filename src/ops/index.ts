/** Every op of the engine, as free functions (Tensor methods call these). */
export * from './create.js';
export * from './layout.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './matmul.js';
export * from './softmax.js';
export * from './norm.js';
export { layerNormModulate, gatedResidual, type ModulateNorm } from './modulate.js';
export * from './indexing.js';
export * from './attention.js';
export * from './random.js';
export * from './conv.js';
export * from './interpolate.js';
export * from './scan.js';
export * from './causal-conv1d.js';
export { backward, grad, unbroadcast } from '../autograd/engine.js';
export { noGrad, enableGrad, isGradEnabled } from '../autograd/grad-mode.js';
export { checkpoint } from '../autograd/checkpoint.js';
