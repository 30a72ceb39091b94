export { Dimba, type DimbaInputs, type DimbaBuildOptions } from './model.js';
export { PRESETS, presetConfig, validateConfig, layerPattern, mambaCount, ConfigError, type DimbaConfig } from './config.js';
export { sincosPosEmbed } from './pos-embed.js';
