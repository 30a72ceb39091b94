/**
 * Sample grids during training: fixed prompts and seed, so grids of successive steps show what
 * changed in the model and nothing else. With EMA on, samples come from the averaged weights
 * (what a release would ship); the training weights are put back bit for bit afterwards.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../autograd/grad-mode.js';
import { clone } from '../ops/layout.js';
import { assign_ } from '../ops/inplace.js';
import type { EMA } from '../optim/ema.js';
import type { TextToImage } from '../pipeline/text-to-image.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SamplesSection } from './config.js';
import { batchToRgb, encodePng, gridOf } from './images.js';

/** Integer upscaling so that tiny samples (16 px emoji) are visible in an image viewer. */
export function previewScale(size: number): number {
  return Math.max(1, Math.floor(128 / size));
}

/** Runs `fn` with the EMA averages in the parameters, restoring the training weights after. */
export function withEmaWeights<T>(params: readonly Tensor[], ema: EMA | null, fn: () => T): T {
  if (ema === null) return fn();
  const saved = noGrad(() => params.map((p) => clone(p)));
  ema.copyTo(params);
  try {
    return fn();
  } finally {
    noGrad(() => params.forEach((p, i) => assign_(p, saved[i]!)));
  }
}

export interface SampleGridRequest {
  pipeline: TextToImage;
  params: readonly Tensor[];
  ema: EMA | null;
  samples: SamplesSection;
  size: number;
  /** Folder the grid goes in, and its file name stem. */
  dir: string;
  name: string;
  /** Extra text chunks (stage, step). */
  text: Record<string, string>;
}

/** Generates one image per prompt and writes them as one grid PNG; returns its path. */
export async function writeSampleGrid(r: SampleGridRequest): Promise<string> {
  const { samples } = r;
  const images = withEmaWeights(r.params, r.ema, () => r.pipeline.generate({
    prompts: samples.prompts,
    steps: samples.steps,
    sampler: samples.sampler,
    guidanceScale: samples.guidanceScale,
    seed: samples.seed,
    height: r.size,
    width: r.size,
  }));
  const grid = gridOf(batchToRgb(images));
  const png = await encodePng(grid, {
    ...r.text,
    prompts: JSON.stringify(samples.prompts),
    seed: String(samples.seed),
    sampler: samples.sampler,
    steps: String(samples.steps),
    cfg: String(samples.guidanceScale),
    weights: r.ema ? 'ema' : 'raw',
    Software: 'dimba',
  }, previewScale(r.size));
  fs.mkdirSync(r.dir, { recursive: true });
  const path = join(r.dir, `${r.name}.png`);
  fs.writeFileSync(path, png);
  return path;
}
