/**
 * Image-caption data: datasets (folders, JSONL manifests, WebDataset tar shards, the built-in
 * emoji dataset), decoding and aspect-ratio buckets, the prefetching loader, encoder-output
 * caches, and the skip report that accounts for every bad input.
 */
export { DataError, SkipError, SKIP_REASONS, type SkipReason } from './errors.js';
export { SkipReport, type SkipEntry, type CountedSkip } from './skip-report.js';
export {
  DEFAULT_MAX_PIXELS,
  SUPPORTED_FORMATS,
  decodeImage,
  probeImage,
  type DecodeOptions,
  type DecodedImage,
  type ImageFormat,
  type ImageInfo,
  type RGB,
  type TargetSize,
} from './image-decode.js';
export { rgbToCHW, chwToRgb, imageTensor } from './pixels.js';
export { ASPECT_RATIO_1024, ASPECT_RATIO_512, ASPECT_RATIO_256, aspectRatioTable, closestBucket, type AspectBucket, type AspectRatioTable } from './buckets.js';
export { epochPermutation, uniformAt } from './shuffle.js';
export type { EpochRequest, LoadedSample, SampleRecord, SampleSource, SourceItem } from './source.js';
export { FolderDataset, type FolderDatasetOptions } from './folder-dataset.js';
export { JsonlDataset, parseRow, type JsonlDatasetOptions, type ManifestFilterCounts, type ManifestRow } from './jsonl-dataset.js';
export { TarShardDataset, type TarDatasetOptions } from './tar-dataset.js';
export { DataLoader, type Batch, type DataLoaderOptions, type LoaderResolution, type LoaderState } from './loader.js';
export { EncoderCache, EncoderCacheWriter, rawToTensor, tensorToRaw, type EncoderCacheWriterOptions } from './encoder-cache.js';
export { buildEmojiDataset, formatCounts, type EmojiBuildOptions, type EmojiBuildResult } from './emoji/build.js';
export { EMOJI_STYLES, loadCatalog, locatePackages, normalizeHexcode, type EmojiImage, type EmojiPackage, type EmojiPackages, type EmojiStyle } from './emoji/catalog.js';
export { emojiCaptions, STYLE_NAMES } from './emoji/captions.js';
export { emojiSplit, SPLITS, TEST_EMOJI_FRACTION, VALIDATION_PAIR_FRACTION, type Split } from './emoji/split.js';
