/**
 * From a stage config to the parts a run trains: the Dimba configuration, the tokenizer and the
 * small text encoder. Training happens in pixel space (no VAE yet): the backbone sees 3-channel
 * images at data.resolution, and its caption sizes are the text encoder's.
 */
import { ConfigError, PRESETS, validateConfig, type DimbaConfig } from '../models/dimba/config.js';
import { ByteTokenizer } from '../models/text/byte-tokenizer.js';
import { buildWordVocabulary } from '../models/text/word-tokenizer.js';
import { SmallTextEncoder, TextEncoderConfigError, validateSmallTextEncoderConfig, type SmallTextEncoderConfig } from '../models/text/small-encoder.js';
import type { Tokenizer } from '../models/text/tokenizer.js';
import type { StageConfig, TextEncoderSection } from './config.js';
import { TrainConfigError } from './errors.js';

/** Pixel-space training: RGB. */
export const IMAGE_CHANNELS = 3;

/** Where a stage's weights come from: its grid size and positional-embedding scale. */
export interface PositionalSource {
  inputSize: number;
  peInterpolation: number;
}

/**
 * The backbone configuration of a stage. A resolution stage that leaves peInterpolation unset
 * scales the source's by the resolution ratio (PixArt: 1 at 512, 2 at 1024), so the
 * higher-resolution grid spans the positions the source was trained on — the interpolated
 * positional embedding of resolution adaptation.
 */
export function dimbaConfigFor(stage: StageConfig, source: PositionalSource | null): DimbaConfig {
  const preset = PRESETS[stage.model.preset];
  if (!preset) throw new TrainConfigError(`config.model.preset: unknown preset '${stage.model.preset}'`);
  const { preset: _p, gradientCheckpointing: _g, ...overrides } = stage.model;
  const config: DimbaConfig = {
    ...preset,
    learnSigma: stage.objective === 'epsilon',
    ...overrides,
    inChannels: IMAGE_CHANNELS,
    inputSize: stage.data.resolution,
    captionChannels: stage.textEncoder.channels,
    captionTokens: stage.textEncoder.maxTokens,
  };
  // The layer pattern fixes the number of Transformer blocks; follow it unless depth was given.
  if (overrides.layers !== undefined && overrides.depth === undefined) {
    config.depth = overrides.layers.repeat(overrides.layerRepeats ?? 1).split('').filter((l) => l === 'A').length;
  }
  if (overrides.peInterpolation === undefined && stage.kind === 'resolution' && source !== null) {
    config.peInterpolation = source.peInterpolation * (stage.data.resolution / source.inputSize);
  }
  if (stage.objective !== 'epsilon' && config.learnSigma) {
    throw new TrainConfigError(`config.model.learnSigma must be false for objective '${stage.objective}' (only epsilon learns a variance)`);
  }
  try {
    return validateConfig(config);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new TrainConfigError(`stage '${stage.name}': ${error.message.replace(/\bconfig\./g, 'config.model.')} (data.resolution sets inputSize, textEncoder.channels/maxTokens set the caption sizes)`, { cause: error });
    }
    throw error;
  }
}

export function textEncoderConfigFor(section: TextEncoderSection): SmallTextEncoderConfig {
  const { width, depth, numHeads, mlpRatio, maxTokens, channels } = section;
  try {
    return validateSmallTextEncoderConfig({ width, depth, numHeads, mlpRatio, maxTokens, channels });
  } catch (error) {
    if (error instanceof TextEncoderConfigError) throw new TrainConfigError(error.message.replace('config.', 'config.textEncoder.'), { cause: error });
    throw error;
  }
}

/** A fresh tokenizer: bytes, or words counted over the training captions. */
export async function buildTokenizer(section: TextEncoderSection, captions: () => AsyncIterable<string>): Promise<Tokenizer> {
  if (section.tokenizer === 'bytes') return new ByteTokenizer();
  const all: string[] = [];
  for await (const caption of captions()) all.push(caption);
  if (all.length === 0) throw new TrainConfigError('config.textEncoder.tokenizer: "words" needs captions to count, and the dataset has none');
  return buildWordVocabulary(all, { minCount: section.vocabMinCount });
}

export function buildTextEncoder(tokenizer: Tokenizer, section: TextEncoderSection, seed: number): SmallTextEncoder {
  return new SmallTextEncoder(tokenizer, textEncoderConfigFor(section), { seed });
}
