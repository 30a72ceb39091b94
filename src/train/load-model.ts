/**
 * A trained text-to-image model from disk, for generation: the checkpoint folder (or a run or
 * stage folder, for its newest checkpoint, or a model.safetensors file), its Dimba config and
 * objective from the weights' metadata, the text encoder with its tokenizer, and the EMA weights
 * when the run kept them.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { Dimba } from '../models/dimba/model.js';
import { tidy } from '../tensor/lifetime.js';
import type { DimbaConfig } from '../models/dimba/config.js';
import { TextToImage, type Objective } from '../pipeline/text-to-image.js';
import { listCheckpoints, TRAINER_STATE_FILE } from './checkpoint-store.js';
import { MODEL_EMA_FILE, MODEL_FILE, TEXT_ENCODER_EMA_FILE, TEXT_ENCODER_FILE, loadWeights, readModelMetadata, textEncoderFromCheckpoint } from './checkpoint.js';
import { CheckpointError, messageOf } from './errors.js';

export interface LoadedModel {
  pipeline: TextToImage;
  config: DimbaConfig;
  objective: Objective;
  /** The checkpoint folder used. */
  checkpoint: string;
  weights: 'ema' | 'raw';
}

function newestIn(dir: string): string | null {
  const own = listCheckpoints(dir).at(-1);
  if (own) return own.path;
  let best: { path: string; time: number } | null = null;
  for (const name of fs.readdirSync(dir)) {
    const sub = join(dir, name);
    if (!fs.statSync(sub).isDirectory()) continue;
    const last = listCheckpoints(sub).at(-1);
    if (!last) continue;
    const time = fs.statSync(join(last.path, TRAINER_STATE_FILE)).mtimeMs;
    if (best === null || time > best.time) best = { path: last.path, time };
  }
  return best?.path ?? null;
}

/** The checkpoint folder `path` stands for. */
export function resolveCheckpoint(path: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(path);
  } catch (error) {
    throw new CheckpointError(`--model ${path}: ${messageOf(error)}`, { cause: error });
  }
  if (stat.isFile()) {
    if (!path.endsWith('.safetensors')) throw new CheckpointError(`--model ${path}: expected a checkpoint folder or a model.safetensors file`);
    return join(path, '..');
  }
  if (fs.existsSync(join(path, MODEL_FILE))) return path;
  const newest = newestIn(path);
  if (newest === null) throw new CheckpointError(`--model ${path}: no checkpoint here (no ${MODEL_FILE}, no step-N folders in it or its stage folders)`);
  return newest;
}

export interface LoadModelOptions {
  /** Use EMA weights when the checkpoint has them (default true). */
  ema?: boolean;
  device?: string;
  /**
   * 'bf16' casts the denoiser to bfloat16 after loading (matmuls, attention and activations in
   * bf16; norms, softmax and the scan state still accumulate in float32; the scan's A, D and step
   * bias stay float32). The small text encoder stays float32. Default 'float32'.
   */
  precision?: 'float32' | 'bf16';
}

export async function loadTrainedModel(path: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const dir = resolveCheckpoint(path);
  const useEma = (options.ema ?? true) && fs.existsSync(join(dir, MODEL_EMA_FILE)) && fs.existsSync(join(dir, TEXT_ENCODER_EMA_FILE));
  const modelFile = join(dir, useEma ? MODEL_EMA_FILE : MODEL_FILE);
  const encoderFile = join(dir, useEma ? TEXT_ENCODER_EMA_FILE : TEXT_ENCODER_FILE);
  const { config, objective } = readModelMetadata(modelFile);
  const encoder = tidy(() => textEncoderFromCheckpoint(encoderFile));
  // tidy: construction temporaries (initial draws, wrapped tensors) go now, not at some later GC.
  const model = tidy(() => new Dimba(config));
  await loadWeights(model, modelFile, { describe: `the config in its own metadata, layers ${model.pattern.join('')}` });
  await loadWeights(encoder, encoderFile, { describe: 'the text encoder config in its own metadata' });
  if (options.device && options.device !== 'cpu') {
    model.to(options.device);
    encoder.to(options.device);
  }
  const precision = options.precision ?? 'float32';
  if (precision !== 'float32' && precision !== 'bf16') throw new CheckpointError(`precision must be 'float32' or 'bf16', got '${String(precision)}'`);
  if (precision === 'bf16') model.cast('bfloat16');
  const pipeline = new TextToImage({ model, textEncoder: encoder, objective, trainTextEncoder: false });
  pipeline.eval();
  return { pipeline, config, objective, checkpoint: dir, weights: useEma ? 'ema' : 'raw' };
}
