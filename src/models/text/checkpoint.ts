/**
 * Saving a SmallTextEncoder's configuration and tokenizer with a checkpoint: one JSON string
 * under the safetensors metadata key `dimba.text_encoder` (metadata values must be strings), so
 * weights, vocabulary and sizes travel in one file. The weights themselves go in the state dict.
 */
import { SmallTextEncoder, validateSmallTextEncoderConfig, TextEncoderConfigError, type SmallTextEncoderConfig, type SmallTextEncoderOptions } from './small-encoder.js';
import { tokenizerFromJSON } from './tokenizer-io.js';

export const TEXT_ENCODER_METADATA_KEY = 'dimba.text_encoder';

/** The metadata entry describing `encoder` (merge it into the checkpoint's metadata). */
export function textEncoderMetadata(encoder: SmallTextEncoder): Record<string, string> {
  const entry = { type: 'small', version: 1, config: encoder.config, tokenizer: encoder.tokenizer.toJSON() };
  return { [TEXT_ENCODER_METADATA_KEY]: JSON.stringify(entry) };
}

function isConfig(value: unknown): value is SmallTextEncoderConfig {
  if (typeof value !== 'object' || value === null) return false;
  return ['width', 'depth', 'numHeads', 'mlpRatio', 'maxTokens', 'channels'].every((k) => typeof Reflect.get(value, k) === 'number');
}

/**
 * A SmallTextEncoder with the saved configuration and tokenizer and freshly initialised weights;
 * load the checkpoint's state dict into it next.
 */
export function smallTextEncoderFromMetadata(metadata: Readonly<Record<string, string>>, options: SmallTextEncoderOptions = {}): SmallTextEncoder {
  const text = metadata[TEXT_ENCODER_METADATA_KEY];
  if (text === undefined) throw new TextEncoderConfigError(`smallTextEncoderFromMetadata: metadata has no '${TEXT_ENCODER_METADATA_KEY}' entry`);
  let entry: unknown;
  try {
    entry = JSON.parse(text);
  } catch (e) {
    throw new TextEncoderConfigError(`smallTextEncoderFromMetadata: '${TEXT_ENCODER_METADATA_KEY}' is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof entry !== 'object' || entry === null || Reflect.get(entry, 'type') !== 'small' || Reflect.get(entry, 'version') !== 1) {
    throw new TextEncoderConfigError(`smallTextEncoderFromMetadata: '${TEXT_ENCODER_METADATA_KEY}' must be {type: 'small', version: 1, ...}`);
  }
  const config: unknown = Reflect.get(entry, 'config');
  if (!isConfig(config)) throw new TextEncoderConfigError(`smallTextEncoderFromMetadata: field config must hold numbers width, depth, numHeads, mlpRatio, maxTokens, channels`);
  return new SmallTextEncoder(tokenizerFromJSON(Reflect.get(entry, 'tokenizer')), validateSmallTextEncoderConfig(config), options);
}
