/**
 * The text-conditioning interface: caption strings in, token features and a padding mask out.
 * A small encoder trained jointly with the backbone (SmallTextEncoder) and a frozen T5 encoder
 * (channels 4096, maxTokens 120, as PixArt-alpha and Dimba use it) both implement it.
 *
 * Null captions. An empty or whitespace-only caption is the null caption of classifier-free
 * guidance: `isNull` marks it, and the Dimba model replaces its features with the learned
 * `y_embedding` [captionTokens, channels] when given `forceDropCaption` (captionInputs does
 * that). Its features are zeros and its mask is all true over maxTokens: the null caption is
 * the whole null embedding, as PixArt uses it for the unconditional branch, not the short
 * [BOS, EOS] sequence an empty string would tokenize to. A batch holding a null caption is
 * therefore always maxTokens long.
 */
import { tensor } from '../../ops/create.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { DimbaInputs } from '../dimba/model.js';

export interface EncodeOptions {
  /** 'max' (default): L = maxTokens, which Dimba's caption dropout needs. 'longest': L = longest caption. */
  padding?: 'max' | 'longest';
}

export interface EncodedCaptions {
  /** [B, L, channels]; zeros at padding positions and for null captions. */
  features: Tensor;
  /** [B, L] bool, true for real tokens (all true for null captions). */
  mask: Tensor;
  /** Per caption: '' or whitespace only. */
  isNull: boolean[];
  /** Per caption: content was cut to fit maxTokens. */
  truncated: boolean[];
}

export interface TextEncoder {
  /** Feature size per token: the Dimba config's captionChannels. */
  readonly channels: number;
  /** Longest encoded caption, special tokens included: the Dimba config's captionTokens. */
  readonly maxTokens: number;
  encode(captions: readonly string[], options?: EncodeOptions): EncodedCaptions;
}

/** The caption fields of DimbaInputs; forceDropCaption only when some caption is null. */
export function captionInputs(encoded: EncodedCaptions): Pick<DimbaInputs, 'caption' | 'captionMask' | 'forceDropCaption'> {
  const { features, mask, isNull } = encoded;
  if (!isNull.some(Boolean)) return { caption: features, captionMask: mask };
  return { caption: features, captionMask: mask, forceDropCaption: tensor(isNull, { dtype: 'bool', device: features.device }) };
}
