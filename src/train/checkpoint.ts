/**
 * What a training checkpoint holds and how its parts are read back:
 *
 *   model.safetensors              backbone weights; metadata: the Dimba config and objective
 *   model.ema.safetensors          the same names holding the EMA averages (when EMA is on)
 *   text_encoder.safetensors       jointly trained text encoder; metadata: its config and tokenizer
 *   text_encoder.ema.safetensors
 *   optimizer.safetensors + optimizer.json   optimizer state tensors and scalars
 *   tokenizer.json, config.json    the tokenizer and the resolved stage config, for people and tools
 *   trainer.json                   step, RNG states, data position, LR schedule, EMA counters
 *
 * Backbone names are the released Dimba names, so model.safetensors loads wherever a Dimba
 * checkpoint does.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../io/safetensors/reader.js';
import { smallTextEncoderFromMetadata } from '../models/text/checkpoint.js';
import type { SmallTextEncoder, SmallTextEncoderOptions } from '../models/text/small-encoder.js';
import { loadStateDictFile, saveStateDict } from '../nn/serialize.js';
import type { Module } from '../nn/module.js';
import { StateDictError } from '../nn/state-dict.js';
import type { Tensor } from '../tensor/tensor.js';
import { validateConfig, ConfigError, type DimbaConfig } from '../models/dimba/config.js';
import type { OptimizerStateDict, OptimizerStateMeta } from '../optim/optimizer.js';
import type { LrSchedulerState } from '../optim/schedule.js';
import type { EMAStateMeta } from '../optim/ema.js';
import type { GeneratorState } from '../random/generator.js';
import type { LoaderState } from '../data/loader.js';
import { OBJECTIVES, type Objective } from '../pipeline/text-to-image.js';
import { TRAINER_STATE_FILE, type CheckpointFile } from './checkpoint-store.js';
import { CheckpointError, messageOf } from './errors.js';

export const MODEL_FILE = 'model.safetensors';
export const MODEL_EMA_FILE = 'model.ema.safetensors';
export const TEXT_ENCODER_FILE = 'text_encoder.safetensors';
export const TEXT_ENCODER_EMA_FILE = 'text_encoder.ema.safetensors';
export const OPTIMIZER_TENSORS_FILE = 'optimizer.safetensors';
export const OPTIMIZER_META_FILE = 'optimizer.json';
export const TOKENIZER_FILE = 'tokenizer.json';
export const CONFIG_FILE = 'config.json';

export const DIMBA_CONFIG_KEY = 'dimba.config';
export const OBJECTIVE_KEY = 'dimba.objective';

export interface TrainerState {
  version: 1;
  stage: { index: number; name: string };
  /** Optimizer steps taken in this stage. */
  step: number;
  /** Steps skipped for a NaN or infinite loss, in all and in a row at the end. */
  skippedSteps: number;
  nanStreak: number;
  imagesSeen: number;
  /** Training time so far (resumed runs add to it). */
  seconds: number;
  generators: { noise: GeneratorState; model: GeneratorState; global: GeneratorState };
  loader: LoaderState;
  scheduler: LrSchedulerState;
  ema: EMAStateMeta | null;
  /** The settings that decide the trajectory (see config.ts trajectoryOf) and their digest. */
  trajectory: Record<string, unknown>;
  digest: string;
}

export function safetensorsFile(name: string, tensors: ReadonlyMap<string, Tensor>, metadata: Record<string, string> = {}): CheckpointFile {
  // saveStateDict writes through a temporary file, fsync and rename of its own.
  return { name, write: async (path) => { await saveStateDict(path, tensors, metadata); } };
}

/** `module`'s state dict with each parameter replaced by its EMA average (shadows in parameter order). */
export function emaStateDict(module: Module, shadows: readonly Tensor[]): Map<string, Tensor> {
  const params = module.namedParameters();
  if (params.length !== shadows.length) throw new CheckpointError(`emaStateDict: ${params.length} parameters but ${shadows.length} averages`);
  const byTensor = new Map<Tensor, Tensor>(params.map(([, p], i) => [p, shadows[i]!]));
  const named = new Map(params.map(([name, p]) => [name, byTensor.get(p)!]));
  const out = new Map<string, Tensor>();
  for (const [name, t] of module.stateDict()) out.set(name, named.get(name) ?? t);
  return out;
}

export function optimizerFiles(dict: OptimizerStateDict): CheckpointFile[] {
  return [
    safetensorsFile(OPTIMIZER_TENSORS_FILE, dict.tensors),
    { name: OPTIMIZER_META_FILE, write: (path) => fs.promises.writeFile(path, `${JSON.stringify(dict.meta)}\n`).then(() => syncFile(path)) },
  ];
}

async function syncFile(path: string): Promise<void> {
  const handle = await fs.promises.open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function readOptimizerState(dir: string): Promise<OptimizerStateDict> {
  const meta = readJson(join(dir, OPTIMIZER_META_FILE)) as OptimizerStateMeta;
  if (typeof meta !== 'object' || meta === null || typeof meta.optimizer !== 'string' || !Array.isArray(meta.groups)) {
    throw new CheckpointError(`${join(dir, OPTIMIZER_META_FILE)}: not an optimizer state (needs fields optimizer, groups, state)`);
  }
  return { meta, tensors: await loadStateDictFile(join(dir, OPTIMIZER_TENSORS_FILE)) };
}

export function readJson(path: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CheckpointError(`cannot read ${path}: ${messageOf(error)}`, { cause: error });
  }
}

function isGeneratorState(v: unknown): v is GeneratorState {
  return typeof v === 'object' && v !== null && typeof Reflect.get(v, 'seed') === 'string' && typeof Reflect.get(v, 'offset') === 'string';
}

export function readTrainerState(dir: string): TrainerState {
  const path = join(dir, TRAINER_STATE_FILE);
  const v = readJson(path);
  const bad = (field: string): never => { throw new CheckpointError(`${path}: field ${field} is missing or malformed (not a trainer state of this dimba version?)`); };
  if (typeof v !== 'object' || v === null) return bad('(root)');
  const s = v as Partial<TrainerState>;
  if (s.version !== 1) bad('version');
  for (const key of ['step', 'skippedSteps', 'nanStreak', 'imagesSeen'] as const) {
    if (!Number.isInteger(s[key]) || (s[key] ?? -1) < 0) bad(key);
  }
  if (typeof s.seconds !== 'number') bad('seconds');
  if (!s.stage || !Number.isInteger(s.stage.index) || typeof s.stage.name !== 'string') bad('stage');
  const g = s.generators;
  if (!g || !isGeneratorState(g.noise) || !isGeneratorState(g.model) || !isGeneratorState(g.global)) bad('generators');
  if (!s.loader || typeof s.loader.source !== 'string') bad('loader');
  if (!s.scheduler || !Number.isInteger(s.scheduler.step)) bad('scheduler');
  if (typeof s.digest !== 'string' || typeof s.trajectory !== 'object' || s.trajectory === null) bad('digest');
  return s as TrainerState;
}

/** A safetensors file's header metadata; `what` names the file in the error ("the text encoder"). */
function readMetadata(file: string, what?: string): Readonly<Record<string, string>> {
  try {
    const f = SafetensorsFile.openSync(file);
    const metadata = f.metadata;
    f.close();
    return metadata;
  } catch (error) {
    throw new CheckpointError(`cannot open ${what ? `${what} ` : ''}${file}: ${messageOf(error)}`, { cause: error });
  }
}

/** The small text encoder a checkpoint's text-encoder file describes (built from its metadata, weights not loaded). */
export function textEncoderFromCheckpoint(file: string, options: SmallTextEncoderOptions = {}): SmallTextEncoder {
  return smallTextEncoderFromMetadata(readMetadata(file, 'the text encoder'), options);
}

/** The Dimba config and objective recorded in a model.safetensors file's metadata. */
export function readModelMetadata(file: string): { config: DimbaConfig; objective: Objective; metadata: Readonly<Record<string, string>> } {
  const metadata = readMetadata(file);
  const text = metadata[DIMBA_CONFIG_KEY];
  if (text === undefined) throw new CheckpointError(`${file} has no '${DIMBA_CONFIG_KEY}' metadata: it was not written by dimba train, so its architecture is unknown`);
  let config: DimbaConfig;
  try {
    config = validateConfig(JSON.parse(text) as DimbaConfig);
  } catch (error) {
    const why = error instanceof ConfigError || error instanceof SyntaxError ? error.message : messageOf(error);
    throw new CheckpointError(`${file}: metadata '${DIMBA_CONFIG_KEY}' is not a valid Dimba config: ${why}`, { cause: error });
  }
  const objective = OBJECTIVES.find((o) => o === metadata[OBJECTIVE_KEY]);
  if (objective === undefined) throw new CheckpointError(`${file}: metadata '${OBJECTIVE_KEY}' must be one of ${OBJECTIVES.join(', ')}, got ${JSON.stringify(metadata[OBJECTIVE_KEY])}`);
  return { config, objective, metadata };
}

export function modelMetadata(config: DimbaConfig, objective: Objective): Record<string, string> {
  return { [DIMBA_CONFIG_KEY]: JSON.stringify(config), [OBJECTIVE_KEY]: objective };
}

export interface LoadWeightsOptions {
  /** Keys that may be missing from the file or differ in shape (recomputed buffers such as pos_embed). */
  recomputed?: readonly string[];
  /** Says which model the weights were meant for, in messages. */
  describe?: string;
}

/**
 * Loads a safetensors file into `module`. A file of another architecture is refused with every
 * missing, unexpected and mis-shaped key listed; nothing is written unless everything fits.
 */
export async function loadWeights(module: Module, file: string, options: LoadWeightsOptions = {}): Promise<void> {
  let tensors: Map<string, Tensor>;
  try {
    tensors = await loadStateDictFile(file);
  } catch (error) {
    throw new CheckpointError(`cannot read weights ${file}: ${messageOf(error)}`, { cause: error });
  }
  const recomputed = new Set(options.recomputed ?? []);
  for (const key of recomputed) tensors.delete(key);
  try {
    const result = module.loadStateDict(tensors, { strict: recomputed.size === 0 });
    const missing = result.missingKeys.filter((k) => !recomputed.has(k));
    if (missing.length > 0 || result.unexpectedKeys.length > 0) throw new StateDictError(module.constructor.name, missing, result.unexpectedKeys, []);
  } catch (error) {
    if (!(error instanceof StateDictError)) throw error;
    // Not strict, loadStateDict stops at shape mismatches without listing the missing and
    // unexpected keys: list every difference, so one message shows how the architectures differ.
    const own = new Set(module.stateDict().keys());
    const missing = [...own].filter((k) => !tensors.has(k) && !recomputed.has(k));
    const unexpected = [...tensors.keys()].filter((k) => !own.has(k));
    const full = new StateDictError(module.constructor.name, missing, unexpected, [...error.shapeMismatches]);
    const target = options.describe ? ` (${options.describe})` : '';
    throw new CheckpointError(`${file} holds weights of another architecture than this model${target}: ${full.message}`, { cause: error });
  }
}
