/** dimba.pipeline: a backbone, a text encoder and a diffusion objective as one text-to-image system. */
export { PipelineError } from './errors.js';
export { encodeCaptions, dimbaDenoiser, type CaptionCondition } from './conditioning.js';
export {
  TextToImage, OBJECTIVES, SAMPLERS, SAMPLERS_FOR,
  type Objective, type SamplerName, type TextToImageParts, type LossOptions, type LossResult, type GenerateOptions,
} from './text-to-image.js';
