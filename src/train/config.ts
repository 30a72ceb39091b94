/**
 * Training configs: a JSON (or JSONC: comments and trailing commas allowed) file, read into plain
 * typed data and validated field by field before anything is built.
 *
 * A config is one stage, or a base plus a `stages` list. Each stage inherits the resolved
 * settings of the stage before it and overrides what it names (objects merge key by key; lists,
 * numbers and null replace), so a recipe reads as the paper's: base training, then resolution
 * adaptation (a larger `data.resolution`; the positional embedding is interpolated), then quality
 * tuning (`data.minScore` and a lower `optimizer.lr`).
 *
 * Relative paths (outputDir, data.path, initFrom) are taken from the current folder.
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
// jsonc-parser (Microsoft's, used by VS Code for settings files): JSON with comments and trailing
// commas, and syntax errors with an offset we turn into line:column.
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { PRESETS } from '../models/dimba/config.js';
import type { SmallTextEncoderConfig } from '../models/text/small-encoder.js';
import { OBJECTIVES, SAMPLERS, SAMPLERS_FOR, type Objective, type SamplerName } from '../pipeline/text-to-image.js';
import { Section, isPlainObject, type KeyLocator } from './config-reader.js';
import { TrainConfigError, messageOf } from './errors.js';

export type { Objective, SamplerName };
export type Precision = 'float32' | 'bf16';
export type StageKind = 'base' | 'resolution' | 'quality';
export type DataKind = 'emoji' | 'jsonl' | 'folder' | 'tar';


/** Dimba fields a config may set; sizes tied to the data and text encoder are set by the trainer. */
export interface ModelSection {
  preset: string;
  patchSize?: number;
  hiddenSize?: number;
  depth?: number;
  numHeads?: number;
  mlpRatio?: number;
  mambaRatio?: number;
  layers?: string;
  layerRepeats?: number;
  learnSigma?: boolean;
  classDropoutProb?: number;
  peInterpolation?: number;
  qkNorm?: boolean;
  dState?: number;
  dConv?: number;
  expand?: number;
  dropPath?: number;
  /** Recompute activations in backward (less memory, about a third more compute). */
  gradientCheckpointing: boolean;
}

/** The small text encoder's own sizes (width, depth, heads, MLP ratio, tokens, channels), plus the tokenizer. */
export interface TextEncoderSection extends SmallTextEncoderConfig {
  kind: 'small';
  tokenizer: 'bytes' | 'words';
  /** Word tokenizer: keep words seen at least this often in the training captions. */
  vocabMinCount: number;
}

export interface DataSection {
  kind: DataKind;
  /** emoji: the folder `dimba data emoji` wrote; jsonl: the manifest; folder: the image folder; tar: a shard or a folder of shards. */
  path: string;
  /** Manifest split to train on (emoji default 'train'; jsonl default all rows). */
  split: string | null;
  /** Keep only manifest rows with a score >= this (rows without a score are left out too). */
  minScore: number | null;
  /** Image side in pixels (the model trains in pixel space at this size). */
  resolution: number;
  /** PixArt aspect-ratio buckets around resolution² pixels instead of square crops. */
  buckets: boolean;
  shuffle: boolean;
}

export interface OptimizerSection {
  kind: 'adamw' | 'came';
  lr: number;
  weightDecay: number;
  /** AdamW: [beta1, beta2]; CAME: [beta1, beta2, beta3]. */
  betas: number[];
  /** AdamW: [eps]; CAME: [eps1, eps2]. */
  eps: number[];
}

export interface ScheduleSection {
  kind: 'constant' | 'cosine';
  warmupSteps: number;
  minLr: number;
}

export interface CheckpointSection {
  /** Save every this many optimizer steps (0: only at the end and on SIGINT/SIGTERM). */
  every: number;
  keepLast: number;
}

export interface SamplesSection {
  prompts: string[];
  /** Write a sample grid every this many steps (0: only at the end). */
  every: number;
  steps: number;
  sampler: SamplerName;
  guidanceScale: number;
  seed: number;
}

export interface StageConfig {
  name: string;
  kind: StageKind;
  /** Start from these weights (a checkpoint folder or model.safetensors) instead of the previous stage or fresh ones. */
  initFrom: string | null;
  model: ModelSection;
  textEncoder: TextEncoderSection;
  data: DataSection;
  objective: Objective;
  /** Min-SNR-γ loss weighting, or null for none. */
  minSnrGamma: number | null;
  optimizer: OptimizerSection;
  schedule: ScheduleSection;
  /** Optimizer steps of this stage. */
  steps: number;
  batchSize: number;
  gradAccumulation: number;
  /** Clip the global gradient norm to this, or null for no clipping. */
  gradClip: number | null;
  precision: Precision;
  emaDecay: number | null;
  checkpoint: CheckpointSection;
  samples: SamplesSection;
  /** Print and record metrics every this many steps. */
  logEvery: number;
  /** Stop after this many optimizer steps in a row whose loss was NaN or infinite. */
  maxNanSteps: number;
  /**
   * Replay each optimizer step from a CUDA graph (src/train/graphed-step.ts): 'auto' (default)
   * where the device and the step allow it, else eager steps (the reason printed once on CUDA);
   * true requires it; false never. The same values either way, so not part of the trajectory.
   */
  cudaGraphs: boolean | 'auto';
}

export interface TrainConfig {
  /** The file it came from, for messages (null when built in code). */
  file: string | null;
  outputDir: string;
  seed: number;
  stages: StageConfig[];
}

const MODEL_NUMBER_KEYS = ['patchSize', 'hiddenSize', 'depth', 'numHeads', 'mlpRatio', 'mambaRatio', 'layerRepeats', 'classDropoutProb',
  'peInterpolation', 'dState', 'dConv', 'expand', 'dropPath'] as const;
const MODEL_KEYS = ['preset', ...MODEL_NUMBER_KEYS, 'layers', 'learnSigma', 'qkNorm', 'gradientCheckpointing'];
const TEXT_KEYS = ['kind', 'tokenizer', 'width', 'depth', 'numHeads', 'mlpRatio', 'maxTokens', 'channels', 'vocabMinCount'];
const DATA_KEYS = ['kind', 'path', 'split', 'minScore', 'resolution', 'buckets', 'shuffle'];
const OPTIMIZER_KEYS = ['kind', 'lr', 'weightDecay', 'betas', 'eps'];
const SCHEDULE_KEYS = ['kind', 'warmupSteps', 'minLr'];
const CHECKPOINT_KEYS = ['every', 'keepLast'];
const SAMPLES_KEYS = ['prompts', 'every', 'steps', 'sampler', 'guidanceScale', 'seed'];
const STAGE_KEYS = ['name', 'kind', 'initFrom', 'model', 'textEncoder', 'data', 'objective', 'minSnrGamma', 'optimizer', 'schedule', 'steps',
  'batchSize', 'gradAccumulation', 'gradClip', 'precision', 'emaDecay', 'checkpoint', 'samples', 'logEvery', 'maxNanSteps', 'cudaGraphs'];
const TOP_KEYS = ['$schema', 'outputDir', 'seed', 'stages', ...STAGE_KEYS];

const SECTIONS: Readonly<Record<string, readonly string[]>> = {
  model: MODEL_KEYS, textEncoder: TEXT_KEYS, data: DATA_KEYS, optimizer: OPTIMIZER_KEYS, schedule: SCHEDULE_KEYS,
  checkpoint: CHECKPOINT_KEYS, samples: SAMPLES_KEYS,
};

/** A key put in the wrong section ('lr' at the top level) is pointed to where it belongs. */
const locateKey: KeyLocator = (key) => {
  if (STAGE_KEYS.includes(key) || key === 'outputDir' || key === 'seed') return key;
  for (const [section, keys] of Object.entries(SECTIONS)) if (keys.includes(key)) return `${section}.${key}`;
  return undefined;
};

const DEFAULT_PROMPTS = ['a red heart', 'a smiling face', 'a green tree'];

function readModel(s: Section): ModelSection {
  const preset = s.oneOf('preset', Object.keys(PRESETS));
  const out: ModelSection = { preset, gradientCheckpointing: s.boolean('gradientCheckpointing', false) };
  for (const key of MODEL_NUMBER_KEYS) {
    if (!s.has(key)) continue;
    const real = key === 'mlpRatio' || key === 'mambaRatio' || key === 'classDropoutProb' || key === 'peInterpolation' || key === 'dropPath';
    out[key] = s.number(key, real ? { min: 0 } : { integer: true, min: key === 'depth' ? 0 : 1 });
  }
  if (s.has('layers')) {
    out.layers = s.string('layers');
    if (!/^[AM]+$/.test(out.layers)) s.fail('layers', "a pattern of 'A' (Transformer) and 'M' (Mamba) blocks such as \"AM\" or \"AAM\"");
  }
  if (s.has('learnSigma')) out.learnSigma = s.boolean('learnSigma');
  if (s.has('qkNorm')) out.qkNorm = s.boolean('qkNorm');
  return out;
}

function readTextEncoder(s: Section): TextEncoderSection {
  const positive = { integer: true, min: 1 };
  return {
    kind: s.oneOf('kind', ['small'] as const, 'small'),
    tokenizer: s.oneOf('tokenizer', ['bytes', 'words'] as const, 'words'),
    width: s.number('width', positive, 64),
    depth: s.number('depth', { integer: true, min: 0 }, 1),
    numHeads: s.number('numHeads', positive, 4),
    mlpRatio: s.number('mlpRatio', { above: 0 }, 2),
    maxTokens: s.number('maxTokens', { integer: true, min: 2 }, 16),
    channels: s.number('channels', positive, 64),
    vocabMinCount: s.number('vocabMinCount', positive, 1),
  };
}

function readData(s: Section): DataSection {
  const kind = s.oneOf('kind', ['emoji', 'jsonl', 'folder', 'tar'] as const);
  const split = s.stringOrNull('split') ?? (kind === 'emoji' ? 'train' : null);
  if (split !== null && (kind === 'folder' || kind === 'tar')) s.fail('split', `left out for a ${kind} dataset (only manifests have splits)`);
  const minScore = s.numberOrNull('minScore');
  if (minScore !== null && kind !== 'jsonl' && kind !== 'emoji') s.fail('minScore', `left out for a ${kind} dataset (scores come from a manifest)`);
  return {
    kind,
    path: s.string('path'),
    split,
    minScore,
    resolution: s.number('resolution', { integer: true, min: 2 }),
    buckets: s.boolean('buckets', false),
    shuffle: s.boolean('shuffle', true),
  };
}

function readOptimizer(s: Section): OptimizerSection {
  const kind = s.oneOf('kind', ['adamw', 'came'] as const, 'adamw');
  const adam = kind === 'adamw';
  return {
    kind,
    lr: s.number('lr', { above: 0 }),
    weightDecay: s.number('weightDecay', { min: 0 }, 0),
    betas: s.has('betas') ? s.numbers('betas', { min: 0, max: 1 }, adam ? 2 : 3) : adam ? [0.9, 0.999] : [0.9, 0.999, 0.9999],
    eps: s.has('eps') ? s.numbers('eps', { min: 0 }, adam ? 1 : 2) : adam ? [1e-8] : [1e-30, 1e-16],
  };
}

function readSchedule(s: Section, steps: number): ScheduleSection {
  const out: ScheduleSection = {
    kind: s.oneOf('kind', ['constant', 'cosine'] as const, 'constant'),
    warmupSteps: s.number('warmupSteps', { integer: true, min: 0 }, 0),
    minLr: s.number('minLr', { min: 0 }, 0),
  };
  if (out.warmupSteps > steps) s.fail('warmupSteps', `at most steps (${steps})`);
  return out;
}

function readSamples(s: Section, objective: Objective): SamplesSection {
  const prompts = s.strings('prompts', DEFAULT_PROMPTS);
  const usable = SAMPLERS_FOR[objective];
  const sampler = s.oneOf('sampler', SAMPLERS, usable.includes('dpm++') ? 'dpm++' : usable[0]!);
  if (!usable.includes(sampler)) s.fail('sampler', `one of ${usable.map((n) => `'${n}'`).join(', ')} for objective '${objective}'`);
  return {
    prompts,
    every: s.number('every', { integer: true, min: 0 }, 0),
    steps: s.number('steps', { integer: true, min: 1 }, 20),
    sampler,
    guidanceScale: s.number('guidanceScale', { min: 0 }, 4.5),
    seed: s.number('seed', { integer: true, min: 0 }, 0),
  };
}

function readStage(raw: Record<string, unknown>, path: string, index: number, previous: StageConfig | null): StageConfig {
  const s = Section.of(raw, path, index === 0 && path === 'config' ? TOP_KEYS : STAGE_KEYS, locateKey);
  const steps = s.number('steps', { integer: true, min: 1 });
  const kind = s.oneOf('kind', ['base', 'resolution', 'quality'] as const, index === 0 ? 'base' : previous?.kind === 'base' ? 'resolution' : 'quality');
  const name = s.string('name', index === 0 ? kind : `${kind}-${index}`);
  if (!/^[A-Za-z0-9._-]+$/.test(name)) s.fail('name', 'letters, digits, ".", "_" or "-" (it names a folder)');
  const sub = (key: string) => s.section(key, SECTIONS[key]!, locateKey);
  const objective = s.oneOf('objective', OBJECTIVES, 'epsilon');
  const stage: StageConfig = {
    name,
    kind,
    initFrom: s.stringOrNull('initFrom'),
    model: readModel(sub('model')),
    textEncoder: readTextEncoder(sub('textEncoder')),
    data: readData(sub('data')),
    objective,
    minSnrGamma: s.numberOrNull('minSnrGamma', { above: 0 }),
    optimizer: readOptimizer(sub('optimizer')),
    schedule: readSchedule(sub('schedule'), steps),
    steps,
    batchSize: s.number('batchSize', { integer: true, min: 1 }),
    gradAccumulation: s.number('gradAccumulation', { integer: true, min: 1 }, 1),
    gradClip: s.numberOrNull('gradClip', { above: 0 }, 1),
    precision: s.oneOf('precision', ['float32', 'bf16'] as const, 'float32'),
    emaDecay: s.numberOrNull('emaDecay', { min: 0, max: 1 }),
    checkpoint: readCheckpoint(sub('checkpoint')),
    samples: readSamples(sub('samples'), objective),
    logEvery: s.number('logEvery', { integer: true, min: 1 }, 10),
    maxNanSteps: s.number('maxNanSteps', { integer: true, min: 1 }, 5),
    cudaGraphs: readGraphSetting(s, 'cudaGraphs'),
  };
  if (stage.kind === 'resolution' && previous === null && stage.initFrom === null) {
    s.fail('kind', "'base' for the first stage, unless initFrom names the lower-resolution checkpoint to adapt");
  }
  if (stage.kind === 'resolution' && previous !== null && stage.data.resolution <= previous.data.resolution && !s.has('initFrom')) {
    throw new TrainConfigError(`${path}.data.resolution must be larger than the previous stage's (${previous.data.resolution}) for a resolution stage, got ${stage.data.resolution}`);
  }
  return stage;
}

function readGraphSetting(s: Section, key: string): boolean | 'auto' {
  const v = s.raw(key);
  if (v === undefined) return 'auto';
  if (v === true || v === false || v === 'auto') return v;
  return s.fail(key, "true, false or 'auto'");
}

function readCheckpoint(s: Section): CheckpointSection {
  return { every: s.number('every', { integer: true, min: 0 }, 0), keepLast: s.number('keepLast', { integer: true, min: 1 }, 3) };
}

/** Objects merge key by key; anything else in `overlay` replaces. */
export function mergeConfig(base: Record<string, unknown>, overlay: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overlay)) {
    const old = out[key];
    out[key] = isPlainObject(old) && isPlainObject(value) ? mergeConfig(old, value) : value;
  }
  return out;
}

/** Validates a parsed config object; `file` only labels messages. */
export function parseTrainConfig(value: unknown, file: string | null = null): TrainConfig {
  const top = Section.of(value, 'config', TOP_KEYS, locateKey);
  const outputDir = top.string('outputDir');
  const seed = top.number('seed', { integer: true, min: 0 }, 0);
  const base: Record<string, unknown> = { ...top.value };
  for (const key of ['$schema', 'outputDir', 'seed', 'stages']) delete base[key];
  const stages: StageConfig[] = [];
  if (!top.has('stages')) stages.push(readStage({ ...top.value }, 'config', 0, null));
  else {
    const list = top.raw('stages');
    if (!Array.isArray(list) || list.length === 0) top.fail('stages', 'a non-empty list of stage objects');
    let merged = base;
    (list as unknown[]).forEach((overlay, i) => {
      const path = `config.stages[${i}]`;
      Section.of(overlay, path, STAGE_KEYS, locateKey);
      // A stage's name and initFrom belong to it alone; everything else carries forward.
      const { name: _name, initFrom: _from, kind: _kind, ...inherited } = merged;
      merged = mergeConfig(i === 0 ? merged : inherited, overlay as Record<string, unknown>);
      stages.push(readStage(merged, path, i, stages[i - 1] ?? null));
    });
  }
  const names = new Set<string>();
  for (const [i, stage] of stages.entries()) {
    if (names.has(stage.name)) throw new TrainConfigError(`config.stages[${i}].name '${stage.name}' is used by an earlier stage; stage names must differ (they name folders)`);
    names.add(stage.name);
  }
  return { file, outputDir, seed, stages };
}

/** Reads and validates a config file (JSON; comments and trailing commas allowed). */
export function loadTrainConfig(path: string): TrainConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new TrainConfigError(`cannot read config ${path}: ${messageOf(cause)}`, { cause });
  }
  const errors: ParseError[] = [];
  const value: unknown = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const first = errors[0]!;
    const before = text.slice(0, first.offset);
    const line = before.split('\n').length;
    const column = first.offset - before.lastIndexOf('\n');
    throw new TrainConfigError(`${path}:${line}:${column}: invalid JSON (${printParseErrorCode(first.error)})`);
  }
  try {
    return parseTrainConfig(value, path);
  } catch (error) {
    if (error instanceof TrainConfigError) throw new TrainConfigError(`${path}: ${error.message}`, { cause: error });
    throw error;
  }
}

/**
 * The settings that decide a stage's training trajectory (not where or how often it reports),
 * with a digest: a checkpoint records both, and resuming under a different trajectory is refused.
 */
export function trajectoryOf(config: TrainConfig, stage: StageConfig): Record<string, unknown> {
  // cudaGraphs: a replayed step computes what the eager one does (the same kernels and arithmetic).
  const { checkpoint: _c, samples: _s, logEvery: _l, cudaGraphs: _cg, ...rest } = stage;
  // Activation checkpointing changes memory and time, not one value computed (bitwise on the CPU,
  // test/train/gradient-checkpointing), so a run that ran out of memory may resume with it on.
  const { gradientCheckpointing: _g, ...model } = rest.model;
  return { seed: config.seed, ...rest, model };
}

export function digestOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/** Top-level fields whose values differ, for messages ('optimizer', 'steps', ...). */
export function changedFields(saved: Record<string, unknown>, current: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(saved), ...Object.keys(current)]);
  return [...keys].filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(current[k]));
}
