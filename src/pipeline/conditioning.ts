/**
 * Captions to the Dimba backbone's conditioning inputs, and the backbone as the (x_t, t, cond)
 * denoiser that objectives and samplers call. The condition always carries all three fields
 * (forceDropCaption all false when no caption is null) so a conditional and an unconditional
 * batch concatenate field by field into one guided call.
 */
import { tensor } from '../ops/create.js';
import { noGrad } from '../autograd/grad-mode.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelFn } from '../diffusion/model.js';
import type { Dimba } from '../models/dimba/model.js';
import type { TextEncoder } from '../models/text/text-encoder.js';

export interface CaptionCondition {
  readonly [name: string]: Tensor;
  /** [B, L, captionChannels] token features. */
  caption: Tensor;
  /** [B, L] bool, true for real tokens. */
  captionMask: Tensor;
  /** [B] bool: use the model's learned null caption (y_embedding) for these samples. */
  forceDropCaption: Tensor;
}

/**
 * Encodes captions at the encoder's full length (maxTokens = the model's captionTokens, which
 * the null caption needs). With `withGrad` false the encoder runs without recording a graph
 * (a frozen encoder, or sampling).
 */
export function encodeCaptions(encoder: TextEncoder, captions: readonly string[], withGrad: boolean): CaptionCondition {
  const encoded = withGrad ? encoder.encode(captions, { padding: 'max' }) : noGrad(() => encoder.encode(captions, { padding: 'max' }));
  return {
    caption: encoded.features,
    captionMask: encoded.mask,
    forceDropCaption: tensor(encoded.isNull, { dtype: 'bool', device: encoded.features.device }),
  };
}

/** The backbone as a denoiser: model time t [B] (float) and the caption condition. */
export function dimbaDenoiser(model: Dimba): ModelFn<CaptionCondition> {
  return (xt, t, cond) => model.forward({
    x: xt, timestep: t, caption: cond.caption, captionMask: cond.captionMask, forceDropCaption: cond.forceDropCaption,
  });
}
