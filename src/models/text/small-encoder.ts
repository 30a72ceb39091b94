/**
 * A small text encoder trained jointly with the backbone, for training from scratch on small
 * data where a frozen T5 is out of proportion:
 *   h = token_embedding(ids) + pos_embedding[:L]
 *   h = layers(h, mask)            pre-norm Transformer encoder layers, key-padding masked
 *   features = proj(final_norm(h))  proj only when channels != width
 * The final LayerNorm gives features of unit scale per token, which is what the backbone's
 * caption MLP (y_proj) sees from T5 as well.
 */
import * as T from '../../index.js';
import { Module, Linear, LayerNorm, Embedding, ModuleList, Parameter, init } from '../../nn/index.js';
import { emptyParameter, type FactoryOptions } from '../../nn/factory.js';
import type { Tensor } from '../../tensor/tensor.js';
import { ShapeError, formatShape } from '../../tensor/shape.js';
import { Generator } from '../../random/generator.js';
import { TextEncoderLayer } from './encoder-layer.js';
import { tokenBatchTensors, tokenizeBatch, type Tokenizer } from './tokenizer.js';
import type { EncodeOptions, EncodedCaptions, TextEncoder } from './text-encoder.js';

export interface SmallTextEncoderConfig {
  /** Model width. */
  width: number;
  /** Encoder layers. */
  depth: number;
  numHeads: number;
  /** MLP hidden size = mlpRatio * width. */
  mlpRatio: number;
  /** Longest caption in tokens (BOS and EOS included); the Dimba config's captionTokens. */
  maxTokens: number;
  /** Output feature size; the Dimba config's captionChannels. */
  channels: number;
}

export const SMALL_TEXT_ENCODER_DEFAULTS: Readonly<SmallTextEncoderConfig> = {
  width: 128, depth: 2, numHeads: 4, mlpRatio: 4, maxTokens: 32, channels: 128,
};

export class TextEncoderConfigError extends Error {
  override name = 'TextEncoderConfigError';
}

export function validateSmallTextEncoderConfig(config: SmallTextEncoderConfig): SmallTextEncoderConfig {
  for (const key of ['width', 'numHeads', 'channels'] as const) {
    const v = config[key];
    if (!Number.isInteger(v) || v <= 0) throw new TextEncoderConfigError(`SmallTextEncoder: config.${key} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isInteger(config.depth) || config.depth < 0) throw new TextEncoderConfigError(`SmallTextEncoder: config.depth must be a non-negative integer, got ${String(config.depth)}`);
  if (!Number.isInteger(config.maxTokens) || config.maxTokens < 2) {
    throw new TextEncoderConfigError(`SmallTextEncoder: config.maxTokens must be an integer >= 2 (BOS and EOS), got ${String(config.maxTokens)}`);
  }
  if (config.width % config.numHeads !== 0) throw new TextEncoderConfigError(`SmallTextEncoder: config.width ${config.width} is not divisible by config.numHeads ${config.numHeads}`);
  const hidden = config.mlpRatio * config.width;
  if (!(config.mlpRatio > 0) || !Number.isInteger(hidden)) {
    throw new TextEncoderConfigError(`SmallTextEncoder: config.mlpRatio must be positive with mlpRatio * width an integer, got ${String(config.mlpRatio)}`);
  }
  return config;
}

export interface SmallTextEncoderOptions {
  /** Seed for parameter initialisation (default 0); ignored when generator is given. */
  seed?: number;
  generator?: Generator;
  dtype?: FactoryOptions['dtype'];
  device?: FactoryOptions['device'];
}

export class SmallTextEncoder extends Module implements TextEncoder {
  readonly config: SmallTextEncoderConfig;
  readonly tokenizer: Tokenizer;
  readonly tokenEmbedding: Embedding;
  readonly posEmbedding: Parameter;
  readonly layers: ModuleList<TextEncoderLayer>;
  readonly finalNorm: LayerNorm;
  readonly proj: Linear | null;

  constructor(tokenizer: Tokenizer, config: Partial<SmallTextEncoderConfig> = {}, options: SmallTextEncoderOptions = {}) {
    super();
    this.config = validateSmallTextEncoderConfig({ ...SMALL_TEXT_ENCODER_DEFAULTS, ...config });
    this.tokenizer = tokenizer;
    const c = this.config;
    const generator = options.generator ?? new Generator(options.seed ?? 0);
    const factory: FactoryOptions = { dtype: options.dtype, device: options.device, generator };
    this.tokenEmbedding = this.registerModule('token_embedding', new Embedding(tokenizer.vocabSize, c.width, factory));
    this.posEmbedding = this.registerParameter('pos_embedding', emptyParameter([c.maxTokens, c.width], factory, { noWeightDecay: true }));
    this.layers = this.registerModule('layers', new ModuleList(Array.from({ length: c.depth },
      () => new TextEncoderLayer(c.width, c.numHeads, c.mlpRatio * c.width, factory))));
    this.finalNorm = this.registerModule('final_norm', new LayerNorm(c.width, { dtype: options.dtype, device: options.device }));
    this.proj = c.channels === c.width ? null : this.registerModule('proj', new Linear(c.width, c.channels, factory));
    this.initialize(generator);
  }

  get channels(): number {
    return this.config.channels;
  }

  get maxTokens(): number {
    return this.config.maxTokens;
  }

  /**
   * Embeddings N(0, 0.02) as GPT-2/CLIP text towers; Linear layers xavier-uniform with zero
   * biases, as the backbone's basic init (PixArt/DiT).
   */
  private initialize(generator: Generator): void {
    init.normal_(this.tokenEmbedding.weight, 0, 0.02, { generator });
    init.normal_(this.posEmbedding, 0, 0.02, { generator });
    for (const m of this.modules()) {
      if (m instanceof Linear) {
        init.xavierUniform_(m.weight, { generator });
        if (m.bias) init.zeros_(m.bias);
      }
    }
  }

  /** ids [B, L] int, mask [B, L] bool (true = real token) -> features [B, L, channels] (padding rows unspecified). */
  forward(ids: Tensor, mask: Tensor): Tensor {
    const l = ids.shape[1]!;
    if (ids.ndim !== 2 || l > this.maxTokens || mask.ndim !== 2 || mask.shape[0] !== ids.shape[0] || mask.shape[1] !== l) {
      throw new ShapeError(`SmallTextEncoder: ids and mask must be [B, L] with L <= ${this.maxTokens}, got ${formatShape(ids.shape)} and ${formatShape(mask.shape)}`);
    }
    let h = T.add(this.tokenEmbedding.forward(ids), T.narrow(this.posEmbedding, 0, 0, l));
    for (const layer of this.layers) h = layer.forward(h, mask);
    h = this.finalNorm.forward(h);
    return this.proj ? this.proj.forward(h) : h;
  }

  encode(captions: readonly string[], options: EncodeOptions = {}): EncodedCaptions {
    if (captions.length === 0) throw new ShapeError('SmallTextEncoder.encode: captions must hold at least one caption, got an empty list');
    const batch = tokenizeBatch(this.tokenizer, captions, { maxTokens: this.maxTokens, padding: options.padding });
    const device = this.tokenEmbedding.weight.device;
    const { ids, mask } = tokenBatchTensors(batch, device);
    // Zero padding positions and null captions, so nothing but real tokens carries a value
    // (and gradient); the null caption's mask is then widened to all true (text-encoder.ts).
    const keep = new Uint8Array(batch.batch * batch.length);
    const outMask = new Uint8Array(batch.batch * batch.length);
    batch.lengths.forEach((n, b) => {
      const row = b * batch.length;
      if (batch.isNull[b]) outMask.fill(1, row, row + batch.length);
      else {
        keep.fill(1, row, row + n);
        outMask.fill(1, row, row + n);
      }
    });
    const shape = [batch.batch, batch.length];
    const keepMask = T.tensor(keep, { dtype: 'bool', shape: [...shape, 1], device });
    const features = T.where(keepMask, this.forward(ids, mask), 0);
    return { features, mask: T.tensor(outMask, { dtype: 'bool', shape, device }), isNull: batch.isNull, truncated: batch.truncated };
  }

  override extraRepr(): string {
    const c = this.config;
    return `tokenizer=${this.tokenizer.kind}, vocab=${this.tokenizer.vocabSize}, width=${c.width}, depth=${c.depth}, heads=${c.numHeads}, maxTokens=${c.maxTokens}, channels=${c.channels}`;
  }
}
