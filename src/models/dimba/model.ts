/**
 * The Dimba backbone (released Dimba.forward):
 *   x  = x_embedder(x) + pos_embed(grid)          patch tokens [B, N, C]
 *   t  = t_embedder(timestep) (+ micro-conditions)
 *   t0 = t_block(t)                                 adaLN-single: SiLU, Linear(C, 6C)
 *   y  = y_embedder(caption)                        (null caption where dropped)
 *   layers in pattern order: Transformer blocks take (x, y, t0); Mamba blocks take (x, residual)
 *   and return (mixer output, residual)
 *   out = unpatchify(final_layer(x, t))
 */
import * as T from '../../index.js';
import { Module, Linear, ModuleList } from '../../nn/index.js';
import type { Tensor } from '../../tensor/tensor.js';
import { ShapeError, formatShape } from '../../tensor/shape.js';
import { Generator } from '../../random/generator.js';
import { layerPattern, validateConfig, type DimbaConfig } from './config.js';
import { PatchEmbed, TimestepEmbedder, SizeEmbedder, CaptionEmbedder } from './embedders.js';
import { TransformerBlock } from './transformer-block.js';
import { MambaBlock } from './mamba.js';
import { FinalLayer } from './final-layer.js';
import { sincosPosEmbed } from './pos-embed.js';
import { initializeAsReleased } from './init.js';
import { keep } from '../../tensor/lifetime.js';

/** Grids whose positional embedding stays cached on the device (least recently used dropped). */
const POS_CACHE_SIZE = 16;

export interface DimbaInputs {
  /** Noisy latents [B, inChannels, H, W]. */
  x: Tensor;
  /** Diffusion timesteps [B] (may be fractional). */
  timestep: Tensor;
  /** Caption token features [B, L, captionChannels]. */
  caption: Tensor;
  /** [B, L], true (or 1) for real caption tokens; null = all real. */
  captionMask?: Tensor | null;
  /** Micro-conditions: image height/width [B, 2] and aspect ratio [B, 1]. */
  imageSize?: Tensor;
  aspectRatio?: Tensor;
  /** [B] bool: use the null caption for these samples (classifier-free guidance). */
  forceDropCaption?: Tensor;
}

export interface DimbaBuildOptions {
  /** Seed for parameter initialisation (default 0). */
  seed?: number;
  /** Reproduce the released code's zeroed dt_proj bias and xavier dt_proj weight (see init.ts). */
  releasedDtInit?: boolean;
}

export class Dimba extends Module {
  readonly config: DimbaConfig;
  readonly pattern: ('A' | 'M')[];
  readonly outChannels: number;
  readonly baseSize: number;
  readonly xEmbedder: PatchEmbed;
  readonly tEmbedder: TimestepEmbedder;
  readonly tBlock: Linear;
  readonly yEmbedder: CaptionEmbedder;
  readonly csizeEmbedder: SizeEmbedder | null;
  readonly arEmbedder: SizeEmbedder | null;
  readonly blocks: ModuleList<TransformerBlock>;
  readonly mambaBlocks: ModuleList<MambaBlock>;
  readonly finalLayer: FinalLayer;
  /** Recompute each layer's activations in backward instead of storing them. */
  gradientCheckpointing = false;
  /** Generator for caption dropout and drop-path during training. */
  readonly trainingGenerator: Generator;
  /**
   * The positional embedding per (grid, device, dtype), on the device. Rebuilding it on the host
   * and uploading it at every forward is a synchronous host-to-device copy per call, which a
   * CUDA graph cannot capture (and a sampler would repeat at every step).
   */
  private readonly posCache = new Map<string, Tensor>();

  constructor(config: DimbaConfig, options: DimbaBuildOptions = {}) {
    super();
    this.config = validateConfig(config);
    const c = this.config;
    const gen = new Generator(options.seed ?? 0);
    this.trainingGenerator = new Generator((options.seed ?? 0) + 1);
    this.pattern = layerPattern(c);
    this.outChannels = c.learnSigma ? c.inChannels * 2 : c.inChannels;
    this.baseSize = c.inputSize / c.patchSize;
    const hidden = c.hiddenSize;

    this.xEmbedder = this.registerModule('x_embedder', new PatchEmbed(c.patchSize, c.inChannels, hidden, gen));
    this.tEmbedder = this.registerModule('t_embedder', new TimestepEmbedder(hidden, gen));
    // The released model keeps a pos_embed buffer (base grid) in its state dict; forward recomputes it.
    this.registerBuffer('pos_embed', sincosPosEmbed(hidden, this.baseSize, this.baseSize, this.baseSize, c.peInterpolation));
    const tBlock = this.registerModule('t_block', new Module());
    this.tBlock = tBlock.registerModule('1', new Linear(hidden, 6 * hidden, { generator: gen }));
    this.yEmbedder = this.registerModule('y_embedder', new CaptionEmbedder(c.captionChannels, hidden, c.classDropoutProb, c.captionTokens, gen));

    const attnCount = this.pattern.filter((l) => l === 'A').length;
    const mambaCount = this.pattern.length - attnCount;
    const linspace = (n: number) => Array.from({ length: n }, (_, i) => (n > 1 ? (c.dropPath * i) / (n - 1) : 0));
    const attnDrop = linspace(attnCount);
    const mambaDrop = linspace(mambaCount);
    const kv = c.kvCompress;
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: attnCount }, (_, i) => new TransformerBlock(
      hidden, c.numHeads, c.mlpRatio,
      { qkNorm: c.qkNorm, srRatio: kv && kv.layers.includes(i) ? kv.scaleFactor : 1, sampling: kv?.sampling ?? 'conv' },
      attnDrop[i]!, gen))));
    // Registration order = state-dict order; the released class inherits DiT's order and appends
    // what Dimba adds (micro-condition embedders, then mamba_blocks) after final_layer.
    this.finalLayer = this.registerModule('final_layer', new FinalLayer(hidden, c.patchSize, this.outChannels, gen));
    this.csizeEmbedder = c.microCondition ? this.registerModule('csize_embedder', new SizeEmbedder(hidden / 3, gen)) : null;
    this.arEmbedder = c.microCondition ? this.registerModule('ar_embedder', new SizeEmbedder(hidden / 3, gen)) : null;
    this.mambaBlocks = this.registerModule('mamba_blocks', new ModuleList(Array.from({ length: mambaCount }, (_, j) =>
      new MambaBlock(hidden, { dState: c.dState, dConv: c.dConv, expand: c.expand }, mambaDrop[j]!, gen))));
    initializeAsReleased(this, gen, { releasedDtInit: options.releasedDtInit ?? false });
  }

  /** Timestep vector t [B, C] (with micro-conditions) and the modulation input t0 [B, 6C]. */
  private embedTime(inputs: DimbaInputs, batch: number, dtype: T.DType): { t: Tensor; t0: Tensor } {
    let t = this.tEmbedder.forward(T.cast(inputs.timestep, dtype));
    if (this.csizeEmbedder && this.arEmbedder) {
      if (!inputs.imageSize || !inputs.aspectRatio) throw new ShapeError('Dimba: microCondition models need imageSize [B, 2] and aspectRatio [B, 1]');
      const cs = this.csizeEmbedder.embed(T.cast(inputs.imageSize, dtype), batch);
      const ar = this.arEmbedder.embed(T.cast(inputs.aspectRatio, dtype), batch);
      t = T.add(t, T.cat([cs, ar], 1));
    }
    return { t, t0: this.tBlock.forward(T.silu(t)) };
  }

  private checkInputs(inputs: DimbaInputs): void {
    const c = this.config;
    const { x, timestep, caption } = inputs;
    if (x.ndim !== 4 || x.shape[1] !== c.inChannels || x.shape[2]! % c.patchSize || x.shape[3]! % c.patchSize) {
      throw new ShapeError(`Dimba: x must be [B, ${c.inChannels}, H, W] with H, W multiples of ${c.patchSize}, got ${formatShape(x.shape)}`);
    }
    const b = x.shape[0]!;
    if (timestep.ndim !== 1 || timestep.shape[0] !== b) throw new ShapeError(`Dimba: timestep must be [${b}], got ${formatShape(timestep.shape)}`);
    if (caption.ndim !== 3 || caption.shape[0] !== b || caption.shape[2] !== c.captionChannels) {
      throw new ShapeError(`Dimba: caption must be [${b}, L, ${c.captionChannels}], got ${formatShape(caption.shape)}`);
    }
    const m = inputs.captionMask;
    if (m && (m.ndim !== 2 || m.shape[0] !== b || m.shape[1] !== caption.shape[1])) {
      throw new ShapeError(`Dimba: captionMask must be [${b}, ${caption.shape[1]}], got ${formatShape(m.shape)}`);
    }
  }

  forward(inputs: DimbaInputs): Tensor {
    this.checkInputs(inputs);
    const c = this.config;
    const dtype = this.xEmbedder.proj.weight.dtype;
    const x0 = T.cast(inputs.x, dtype);
    const [b, , H, W] = x0.shape as [number, number, number, number];
    const gh = H / c.patchSize;
    const gw = W / c.patchSize;
    const pos = this.posEmbedding(gh, gw, x0.deviceName, dtype);
    let x = T.add(this.xEmbedder.forward(x0), pos);
    const { t, t0 } = this.embedTime(inputs, b, dtype);

    let caption = T.cast(inputs.caption, dtype);
    let drop = inputs.forceDropCaption ?? null;
    if (this.training && c.classDropoutProb > 0) {
      const random = T.lt(T.rand([b], { device: x0.device, generator: this.trainingGenerator }), c.classDropoutProb);
      drop = drop ? T.logicalOr(drop, random) : random;
    }
    if (drop) caption = this.yEmbedder.dropCaptions(caption, drop);
    const y = this.yEmbedder.forward(caption);
    // The caption's key padding as the additive bias every cross-attention adds, made once here:
    // converting the mask inside each of the blocks' attention calls costs two kernels per block.
    const keyBias = inputs.captionMask ? T.keyPaddingBias(inputs.captionMask, dtype) : null;

    const hw = [gh, gw] as const;
    let residual: Tensor | null = null;
    let ai = 0;
    let mi = 0;
    for (const kind of this.pattern) {
      if (kind === 'A') {
        const block = this.blocks.get(ai++);
        // The bias goes in as an input, not through the closure: checkpoint keeps its inputs for the
        // recomputation, and a closed-over tensor may be released (its scope ended) before backward.
        const run = (xi: Tensor, yi: Tensor, ti: Tensor, kb?: Tensor) => block.forward(xi, yi, ti, kb ?? null, hw);
        // Each block in its own scope: its unsaved intermediates go when it returns, so the forward
        // peak is what backward needs, not every temporary of every block.
        if (!this.gradientCheckpointing) x = T.tidy(() => run(x, y, t0, keyBias ?? undefined));
        else x = keyBias ? T.checkpoint(run, x, y, t0, keyBias) : T.checkpoint(run, x, y, t0);
      } else {
        const block = this.mambaBlocks.get(mi++);
        if (this.gradientCheckpointing) {
          const run = (xi: Tensor, ri?: Tensor): Tensor[] => {
            const o = block.forward(xi, ri ?? null);
            return [o.hidden, o.residual];
          };
          const outs: Tensor[] = residual ? T.checkpoint(run, x, residual) : T.checkpoint(run, x);
          x = outs[0]!;
          residual = outs[1]!;
        } else {
          const o = T.tidy(() => block.forward(x, residual));
          x = o.hidden;
          residual = o.residual;
        }
      }
    }
    return this.unpatchify(this.finalLayer.forward(x, t), gh, gw);
  }

  /** The [1, gh*gw, hidden] positional embedding on `device` as `dtype`, from the cache when it has it. */
  private posEmbedding(gh: number, gw: number, device: string, dtype: T.DType): Tensor {
    const key = `${gh}x${gw}/${device}/${dtype}`;
    let pos = this.posCache.get(key);
    if (pos && !pos.isDisposed) {
      this.posCache.delete(key);
      this.posCache.set(key, pos);
      return pos;
    }
    const c = this.config;
    // keep(): a cache outlives the tidy scope of the forward that fills it. Dropped entries are
    // not disposed (a captured graph may still read one); the garbage collector frees them.
    pos = keep(T.cast(sincosPosEmbed(c.hiddenSize, gh, gw, this.baseSize, c.peInterpolation).to(device), dtype));
    this.posCache.set(key, pos);
    if (this.posCache.size > POS_CACHE_SIZE) this.posCache.delete(this.posCache.keys().next().value!);
    return pos;
  }

  /** [B, h*w, p*p*c] -> [B, c, h*p, w*p]. */
  unpatchify(x: Tensor, gh: number, gw: number): Tensor {
    const p = this.config.patchSize;
    const c = this.outChannels;
    const b = x.shape[0]!;
    const grid = T.reshape(x, [b, gh, gw, p, p, c]);
    return T.reshape(T.permute(grid, [0, 5, 1, 3, 2, 4]), [b, c, gh * p, gw * p]);
  }
}
