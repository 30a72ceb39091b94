/**
 * Tiny text-to-image systems and a captioned toy dataset for the pipeline tests: four 3-channel
 * images of flat shapes on black, each colour channel exactly -1 or 1, so every image is far from
 * the others (mean absolute difference > 0.4) and a memorised sample is easy to recognise.
 */
import { Tensor, tensor, cat, backward, Generator } from '../../src/index.js';
import { Dimba, presetConfig, type DimbaConfig } from '../../src/models/dimba/index.js';
import { SmallTextEncoder, buildWordVocabulary } from '../../src/models/text/index.js';
import { AdamW, LrScheduler, clipGradNorm } from '../../src/optim/index.js';
import { TextToImage, type Objective, type TextToImageParts } from '../../src/pipeline/index.js';

export const CAPTIONS = ['a red square', 'a blue circle', 'a green triangle', 'a yellow cross'];

type RGB = [number, number, number];

/** Colour of pixel (x, y) of image k; u, v are centred coordinates in (-0.5, 0.5). */
function shapeColour(k: number, x: number, y: number, u: number, v: number): RGB | null {
  switch (k) {
    case 0: return Math.abs(u) < 0.3 && Math.abs(v) < 0.3 ? [1, -1, -1] : null;
    case 1: return u * u + v * v < 0.12 ? [-1, -1, 1] : null;
    case 2: return x < y ? [-1, 1, -1] : null;
    default: return Math.abs(u) < 0.13 || Math.abs(v) < 0.13 ? [1, 1, -1] : null;
  }
}

/** The four images of CAPTIONS as [4, 3, size, size] in [-1, 1]. */
export function shapeImages(size: number): Tensor {
  const plane = size * size;
  const data = new Float32Array(4 * 3 * plane).fill(-1);
  for (let k = 0; k < 4; k++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const rgb = shapeColour(k, x, y, (x + 0.5) / size - 0.5, (y + 0.5) / size - 0.5);
        if (rgb) rgb.forEach((value, c) => { data[(k * 3 + c) * plane + y * size + x] = value; });
      }
    }
  }
  return tensor(data, { shape: [4, 3, size, size] });
}

export interface TinyOptions {
  objective: Objective;
  /** Image side (pixel space, 3 channels, patch 2). Default 8. */
  size?: number;
  hidden?: number;
  /**
   * Layer pattern unit and its repeats (default 'AM' once: one Transformer and one Mamba block);
   * null: the released mambaRatio interleaving with config.depth and config.mambaRatio.
   */
  layers?: string | null;
  repeats?: number;
  seed?: number;
  flowTimes?: TextToImageParts['flowTimes'];
  config?: Partial<DimbaConfig>;
}

/**
 * A tiny Dimba in pixel space with a one-layer SmallTextEncoder over a word vocabulary of
 * CAPTIONS. Learned variance only for 'epsilon' (v and flow have no variance output).
 */
export function tinyTextToImage(options: TinyOptions): TextToImage {
  const hidden = options.hidden ?? 32;
  const seed = options.seed ?? 0;
  const maxTokens = 8;
  const textEncoder = new SmallTextEncoder(buildWordVocabulary(CAPTIONS),
    { width: hidden, depth: 1, numHeads: 2, mlpRatio: 2, maxTokens, channels: hidden }, { seed: seed + 100 });
  const size = options.size ?? 8;
  const layers = options.layers === undefined ? 'AM' : options.layers;
  const repeats = options.repeats ?? 1;
  const pattern: Partial<DimbaConfig> = layers === null ? {}
    : { layers, layerRepeats: repeats, depth: [...layers].filter((l) => l === 'A').length * repeats };
  const config = presetConfig('Dimba-XS', {
    inputSize: size, inChannels: 3, patchSize: 2, hiddenSize: hidden, numHeads: 2, mlpRatio: 2, ...pattern,
    learnSigma: options.objective === 'epsilon', captionChannels: hidden, captionTokens: maxTokens, dState: 8,
    ...options.config,
  });
  const model = new Dimba(config, { seed });
  return new TextToImage({ model, textEncoder, objective: options.objective, flowTimes: options.flowTimes });
}

export interface TrainOptions {
  steps: number;
  lr: number;
  /** Seed of the noise and timestep draws. */
  seed: number;
  /** Each image appears this many times per batch (with its own noise and timestep). */
  repeats?: number;
  /** Largest gradient norm (default 0.5). */
  clip?: number;
}

/**
 * Full-batch AdamW with 10 warmup steps, a cosine decay to 5% of lr and the gradient norm clipped
 * (in the flow overfit test, unclipped at lr 5e-3 about one seed in six had not yet told two
 * captions apart after 600 steps); returns the loss of each step. Yields to the event loop after every step: CPU tensors are freed by finalizers, which
 * run only between tasks, so a synchronous loop would keep every step's buffers alive.
 */
export async function trainSteps(pipe: TextToImage, images: Tensor, captions: string[], options: TrainOptions): Promise<number[]> {
  const repeats = options.repeats ?? 1;
  const batch = repeats === 1 ? images : cat(new Array<Tensor>(repeats).fill(images), 0);
  const batchCaptions = new Array<string[]>(repeats).fill(captions).flat();
  const params = pipe.parameters();
  const optimizer = new AdamW(params, { lr: options.lr, weightDecay: 0, betas: [0.9, 0.99] });
  const scheduler = new LrScheduler(optimizer, { kind: 'cosine', warmupSteps: 10, totalSteps: options.steps, minLr: options.lr * 0.05 });
  const generator = new Generator(options.seed);
  const losses: number[] = [];
  pipe.train();
  for (let step = 0; step < options.steps; step++) {
    const { loss } = pipe.loss(batch, batchCaptions, { generator });
    optimizer.zeroGrad();
    backward(loss);
    clipGradNorm(params, options.clip ?? 0.5);
    optimizer.step();
    scheduler.step();
    losses.push(loss.item());
    await new Promise((resolve) => setImmediate(resolve));
  }
  return losses;
}

export function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** errors[i][j]: mean absolute difference between sample i and target j (both [N, C, H, W]). */
export function meanAbsErrors(samples: Tensor, targets: Tensor): number[][] {
  const a = samples.toArray();
  const b = targets.toArray();
  const n = samples.shape[0]!;
  const per = a.length / n;
  return Array.from({ length: n }, (_, i) => Array.from({ length: targets.shape[0]! }, (_, j) => {
    let e = 0;
    for (let k = 0; k < per; k++) e += Math.abs(a[i * per + k]! - b[j * per + k]!);
    return e / per;
  }));
}
