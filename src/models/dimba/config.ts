/**
 * Dimba configurations: sizes, the Transformer/Mamba layer pattern, and named presets.
 * Field meanings follow the released code (feizc/Dimba, diffusion/model/nets/dimba.py); the
 * `layers` pattern generalises its `mamba_ratio` interleaving.
 */
export interface DimbaConfig {
  /** Latent (or pixel) side length the model is built for; sets base_size = inputSize / patchSize. */
  inputSize: number;
  patchSize: number;
  inChannels: number;
  hiddenSize: number;
  /** Transformer blocks (`blocks.{i}`). */
  depth: number;
  numHeads: number;
  mlpRatio: number;
  /**
   * Mamba blocks relative to depth, as released: mamba_depth = floor(mambaRatio * depth), and
   * after Transformer block i comes Mamba block i (gap 1) or, for gap = depth / mamba_depth > 1,
   * Mamba block i / gap when i % gap == 1. Ignored when `layers` is set.
   */
  mambaRatio: number;
  /**
   * Explicit layer order as a string of 'A' (Transformer) and 'M' (Mamba), e.g. "AM" repeated,
   * "AMM", "AAM", "A" (pure Transformer, PixArt-like) or "M" (pure Mamba, DiS-like). A short unit
   * is repeated `layerRepeats` times.
   */
  layers?: string;
  layerRepeats?: number;
  /** Output 2x channels (epsilon and the variance interpolation v) for learned-range variance. */
  learnSigma: boolean;
  captionChannels: number;
  /** Caption tokens (model_max_length); the null caption has this many tokens. */
  captionTokens: number;
  /** Caption dropout probability for classifier-free guidance during training. */
  classDropoutProb: number;
  /** Positional-embedding scale: positions are divided by it (resolution adaptation). */
  peInterpolation: number;
  /** Image-size and aspect-ratio embeddings added to the timestep vector (PixArt-alpha 1024 models). */
  microCondition: boolean;
  qkNorm: boolean;
  /** Key/value token compression for self-attention in the listed Transformer blocks. */
  kvCompress: { sampling: 'conv' | 'uniform'; scaleFactor: number; layers: readonly number[] } | null;
  /** Mamba mixer sizes (mamba_ssm defaults). */
  dState: number;
  dConv: number;
  expand: number;
  /** Stochastic depth, linearly increasing over blocks as released. */
  dropPath: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const BASE: Omit<DimbaConfig, 'hiddenSize' | 'depth' | 'numHeads'> = {
  inputSize: 32,
  patchSize: 2,
  inChannels: 4,
  mlpRatio: 4,
  mambaRatio: 1,
  learnSigma: true,
  captionChannels: 4096,
  captionTokens: 120,
  classDropoutProb: 0.1,
  peInterpolation: 1,
  microCondition: false,
  qkNorm: false,
  kvCompress: null,
  dState: 16,
  dConv: 4,
  expand: 2,
  dropPath: 0,
};

/** Named sizes. L-2 and G-2 are the paper's; XS/S/B are for tests and small data. */
export const PRESETS: Readonly<Record<string, DimbaConfig>> = {
  'Dimba-XS': { ...BASE, hiddenSize: 64, depth: 2, numHeads: 4, captionChannels: 64, captionTokens: 16 },
  'Dimba-S': { ...BASE, hiddenSize: 192, depth: 6, numHeads: 6, captionChannels: 256, captionTokens: 32 },
  'Dimba-B': { ...BASE, hiddenSize: 384, depth: 12, numHeads: 6, captionChannels: 512, captionTokens: 64 },
  'Dimba-L-2': { ...BASE, hiddenSize: 1152, depth: 28, numHeads: 16 },
  'Dimba-G-2': { ...BASE, hiddenSize: 1408, depth: 40, numHeads: 16 },
};

export function presetConfig(name: string, overrides: Partial<DimbaConfig> = {}): DimbaConfig {
  const base = PRESETS[name];
  if (!base) throw new ConfigError(`unknown Dimba preset '${name}'; known: ${Object.keys(PRESETS).join(', ')}`);
  return validateConfig({ ...base, ...overrides });
}

function positiveInt(config: DimbaConfig, key: keyof DimbaConfig): void {
  const v = config[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(`config.${key} must be a positive integer, got ${String(v)}`);
}

export function validateConfig(config: DimbaConfig): DimbaConfig {
  for (const k of ['inputSize', 'patchSize', 'inChannels', 'hiddenSize', 'numHeads', 'captionChannels', 'captionTokens', 'dState', 'dConv', 'expand'] as const) {
    positiveInt(config, k);
  }
  if (!Number.isInteger(config.depth) || config.depth < 0) throw new ConfigError(`config.depth must be a non-negative integer, got ${config.depth}`);
  if (config.hiddenSize % config.numHeads !== 0) {
    throw new ConfigError(`config.hiddenSize ${config.hiddenSize} is not divisible by config.numHeads ${config.numHeads}`);
  }
  if (config.hiddenSize % 2 !== 0) throw new ConfigError(`config.hiddenSize must be even for the sin-cos positional embedding, got ${config.hiddenSize}`);
  if (config.inputSize % config.patchSize !== 0) throw new ConfigError(`config.inputSize ${config.inputSize} is not a multiple of config.patchSize ${config.patchSize}`);
  if (config.microCondition && config.hiddenSize % 3 !== 0) throw new ConfigError(`config.microCondition needs hiddenSize divisible by 3, got ${config.hiddenSize}`);
  if (!(config.mambaRatio >= 0 && config.mambaRatio <= 1)) throw new ConfigError(`config.mambaRatio must be in [0, 1], got ${config.mambaRatio}`);
  if (!(config.peInterpolation > 0)) throw new ConfigError(`config.peInterpolation must be positive, got ${config.peInterpolation}`);
  if (!(config.classDropoutProb >= 0 && config.classDropoutProb < 1)) throw new ConfigError(`config.classDropoutProb must be in [0, 1), got ${config.classDropoutProb}`);
  if (!(config.dropPath >= 0 && config.dropPath < 1)) throw new ConfigError(`config.dropPath must be in [0, 1), got ${config.dropPath}`);
  layerPattern(config);
  return config;
}

/** The order of layers as 'A'/'M' entries, each with its index into blocks / mamba_blocks. */
export function layerPattern(config: DimbaConfig): ('A' | 'M')[] {
  if (config.layers !== undefined) {
    if (!/^[AM]+$/.test(config.layers)) throw new ConfigError(`config.layers must be a string of 'A' and 'M', got '${config.layers}'`);
    const repeats = config.layerRepeats ?? 1;
    if (!Number.isInteger(repeats) || repeats <= 0) throw new ConfigError(`config.layerRepeats must be a positive integer, got ${repeats}`);
    const pattern = config.layers.repeat(repeats).split('') as ('A' | 'M')[];
    const attn = pattern.filter((l) => l === 'A').length;
    if (attn !== config.depth) {
      throw new ConfigError(`config.layers '${config.layers}' x ${repeats} has ${attn} Transformer blocks but config.depth is ${config.depth}`);
    }
    return pattern;
  }
  const mambaDepth = Math.floor(config.mambaRatio * config.depth);
  const out: ('A' | 'M')[] = [];
  if (mambaDepth === 0) return Array<'A'>(config.depth).fill('A');
  const gap = Math.floor(config.depth / mambaDepth);
  for (let i = 0; i < config.depth; i++) {
    out.push('A');
    if (gap === 1 || i % gap === 1) out.push('M');
  }
  return out;
}

export function mambaCount(config: DimbaConfig): number {
  return layerPattern(config).filter((l) => l === 'M').length;
}
