/**
 * A whole training run: its stages in order, each starting from the previous stage's final
 * checkpoint (or its own initFrom), and `--resume`: find the newest checkpoint and go on from
 * exactly there.
 */
import fs from 'node:fs';
import { join, resolve } from 'node:path';
import type { TrainConfig } from './config.js';
import { checkWritable, isCheckpointDir, listCheckpoints } from './checkpoint-store.js';
import { readTrainerState } from './checkpoint.js';
import { CheckpointError } from './errors.js';
import { MetricsLog } from './metrics.js';
import type { TrainReporter } from './reporter.js';
import { runStage, stageDir, type StageHooks, type StageResult, type StageStart } from './stage.js';

export const METRICS_FILE = 'metrics.jsonl';

export interface TrainOptions {
  config: TrainConfig;
  /** 'cpu' (default) or a CUDA device whose backend is loaded. */
  device?: string;
  /** true: the newest checkpoint under outputDir; a path: that checkpoint (a step-N folder, or a stage folder for its newest). */
  resume?: boolean | string;
  /** Aborting stops the run after the current step, with a checkpoint (SIGINT/SIGTERM in the CLI). */
  signal?: AbortSignal;
  reporter: TrainReporter;
  hooks?: StageHooks;
  /** Overrides every stage's cudaGraphs (true, false or 'auto'). */
  cudaGraphs?: boolean | 'auto';
}

export interface TrainResult {
  /** False when the run was stopped before its last step. */
  completed: boolean;
  stages: StageResult[];
  /** The newest checkpoint written. */
  checkpoint: string | null;
  metrics: string;
  seconds: number;
}

interface ResumePoint {
  stageIndex: number;
  checkpoint: string;
  step: number;
}

/** The newest complete checkpoint of the run, by stage order then step. */
function latestCheckpoint(config: TrainConfig): ResumePoint | null {
  for (let i = config.stages.length - 1; i >= 0; i--) {
    const last = listCheckpoints(stageDir(config, config.stages[i]!)).at(-1);
    if (last) return { stageIndex: i, checkpoint: last.path, step: last.step };
  }
  return null;
}

function resumePointAt(config: TrainConfig, path: string): ResumePoint {
  let dir = resolve(path);
  if (!fs.existsSync(dir)) throw new CheckpointError(`--resume ${path}: no such checkpoint folder`);
  if (!isCheckpointDir(dir)) {
    const newest = listCheckpoints(dir).at(-1);
    if (!newest) throw new CheckpointError(`--resume ${path}: not a checkpoint (a step-N folder with ${'trainer.json'}) nor a folder holding one`);
    dir = newest.path;
  }
  const state = readTrainerState(dir);
  const stageIndex = config.stages.findIndex((s) => s.name === state.stage.name);
  if (stageIndex < 0) {
    throw new CheckpointError(`--resume ${path}: the checkpoint is of stage '${state.stage.name}', which the config does not have (stages: ${config.stages.map((s) => s.name).join(', ')})`);
  }
  return { stageIndex, checkpoint: dir, step: state.step };
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const { config, reporter } = options;
  const started = performance.now();
  await checkWritable(config.outputDir);
  let point: ResumePoint | null = null;
  if (options.resume === true) {
    point = latestCheckpoint(config);
    if (point === null) reporter.warn(`--resume: no checkpoint under ${config.outputDir} yet; starting from the beginning`);
  } else if (typeof options.resume === 'string') {
    point = resumePointAt(config, options.resume);
  } else {
    const existing = latestCheckpoint(config);
    if (existing) {
      throw new CheckpointError(`${config.outputDir} already holds checkpoints (newest: ${existing.checkpoint}); pass --resume to continue that run, or choose another outputDir`);
    }
  }

  const metrics = new MetricsLog(join(config.outputDir, METRICS_FILE));
  const result: TrainResult = { completed: false, stages: [], checkpoint: point?.checkpoint ?? null, metrics: metrics.path, seconds: 0 };
  const first = point === null ? 0 : point.step >= config.stages[point.stageIndex]!.steps ? point.stageIndex + 1 : point.stageIndex;
  for (let index = first; index < config.stages.length; index++) {
    const stage = config.stages[index]!;
    let start: StageStart;
    if (point !== null && index === point.stageIndex) start = { resume: point.checkpoint };
    else if (stage.initFrom !== null) start = { from: stage.initFrom };
    else if (index > 0) {
      const previous = config.stages[index - 1]!;
      const last = listCheckpoints(stageDir(config, previous)).at(-1);
      if (!last || last.step < previous.steps) throw new CheckpointError(`stage '${stage.name}' starts from stage '${previous.name}', which has no final checkpoint (step ${previous.steps}) in ${stageDir(config, previous)}`);
      start = { from: last.path };
    } else start = { from: null };
    if (index === first && point !== null && !('resume' in start)) metrics.truncateAfter(index, 0);
    const stageResult = await runStage({
      config, stage, index, device: options.device ?? 'cpu', reporter, metrics, signal: options.signal, hooks: options.hooks, cudaGraphs: options.cudaGraphs,
    }, start);
    result.stages.push(stageResult);
    result.checkpoint = stageResult.checkpoint ?? result.checkpoint;
    if (!stageResult.completed) break;
  }
  // Nothing ran when --resume found the last stage already finished.
  result.completed = result.stages.length > 0 ? result.stages.at(-1)!.completed && result.stages.at(-1)!.name === config.stages.at(-1)!.name : point !== null;
  if (result.stages.length === 0 && point !== null) reporter.info(`nothing to do: ${point.checkpoint} is the end of the run`);
  result.seconds = (performance.now() - started) / 1000;
  return result;
}
