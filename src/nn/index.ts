/** dimba.nn: modules, parameters, layers, initialisers and state-dict files. */
export { Parameter, type ParameterOptions } from './parameter.js';
export { Module, ModuleError, type BufferOptions } from './module.js';
export {
  StateDictError, type LoadStateDictOptions, type LoadStateDictResult, type ShapeMismatch, type StateDictLike,
} from './state-dict.js';
export type { FactoryOptions } from './factory.js';
export { ModuleList, ModuleDict, Sequential, type UnaryModule } from './container.js';
export { Linear, Identity, type LinearOptions } from './linear.js';
export { Conv2d, type Conv2dLayerOptions } from './conv.js';
export {
  LayerNorm, RMSNorm, GroupNorm, type LayerNormOptions, type RMSNormOptions, type GroupNormOptions,
} from './normalization.js';
export { Embedding } from './embedding.js';
export { SiLU, GELU, Dropout, type GELUOptions, type DropoutOptions } from './activation.js';
export * as init from './init.js';
export { assign_ } from '../ops/inplace.js';
export {
  saveStateDict, saveStateDictSync, loadStateDictFile, loadStateDictFileSync, openCheckpoint, toRawTensor, fromRawTensor,
  type SaveStateDictOptions, type SavedStateDict, type LoadStateDictFileOptions,
} from './serialize.js';
