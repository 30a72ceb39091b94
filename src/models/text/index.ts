export { type TextEncoder, type EncodedCaptions, type EncodeOptions, captionInputs } from './text-encoder.js';
export {
  type Tokenizer, type TokenizerJSON, type Encoding, type TokenBatch, type BatchOptions, TokenizerError,
  isNullCaption, tokenizeBatch, tokenBatchTensors,
} from './tokenizer.js';
export { ByteTokenizer } from './byte-tokenizer.js';
export { WordTokenizer, buildWordVocabulary, splitWords, WORD_SPECIALS, type WordVocabularyOptions } from './word-tokenizer.js';
export { tokenizerFromJSON, saveTokenizerFile, loadTokenizerFile } from './tokenizer-io.js';
export { TextEncoderLayer, EncoderSelfAttention, EncoderMlp } from './encoder-layer.js';
export {
  SmallTextEncoder, SMALL_TEXT_ENCODER_DEFAULTS, TextEncoderConfigError, validateSmallTextEncoderConfig,
  type SmallTextEncoderConfig, type SmallTextEncoderOptions,
} from './small-encoder.js';
export { textEncoderMetadata, smallTextEncoderFromMetadata, TEXT_ENCODER_METADATA_KEY } from './checkpoint.js';
