/**
 * `dimba train --config FILE [--resume [PATH]] [--device cpu|cuda|auto] [--json]`.
 *
 * Options are parsed with node's util.parseArgs: built in (no dependency), strict about unknown
 * options, and enough for flat sub-command options.
 */
import { parseArgs } from 'node:util';
import { loadTrainConfig } from '../train/config.js';
import { train, type TrainResult } from '../train/train.js';
import { ProgressLine, formatDuration } from '../train/progress.js';
import type { TrainEvent, TrainReporter } from '../train/reporter.js';
import { resolveDevice } from './device.js';
import { UsageError, isUserError, reportError } from './errors.js';

export const TRAIN_USAGE = [
  'Usage: dimba train --config FILE [--resume [PATH]] [--device cpu|cuda|auto] [--cuda-graphs on|off|auto] [--json]',
  '',
  'Trains a Dimba text-to-image model as the config says (stages, data, optimizer, checkpoints,',
  'sample grids). Ctrl-C (SIGINT) or SIGTERM saves a checkpoint at the end of the current step.',
  '',
  '  --config FILE    training config (JSON; comments allowed), e.g. examples/emoji-tiny.json',
  '  --resume [PATH]  continue exactly from the newest checkpoint of the run, or from PATH',
  '                   (a step-N folder, or a stage folder for its newest checkpoint)',
  '  --device D       cpu (default), cuda, or auto (CUDA when a GPU is usable)',
  '  --cuda-graphs G  replay each training step from a CUDA graph: auto (default; the config\'s',
  '                   cudaGraphs, which defaults to auto: where the device allows), on (required), off',
  '  --json           one JSON object per line on stdout (events and the summary), no progress bar',
  '',
  'Writes under the config\'s outputDir: <stage>/step-N/ checkpoints, <stage>/samples/*.png,',
  'metrics.jsonl.',
  '',
  'Example:',
  '  dimba data emoji --out data/emoji --size 16',
  '  dimba train --config examples/emoji-tiny.json',
  '  dimba train --config examples/emoji-tiny.json --resume',
].join('\n');

/** `--resume` may stand alone: give it the value 'latest' so parseArgs can treat it as a string option. */
function normalizeResume(args: readonly string[]): string[] {
  const out: string[] = [];
  args.forEach((arg, i) => {
    const next = args[i + 1];
    out.push(arg === '--resume' && (next === undefined || next.startsWith('-')) ? '--resume=latest' : arg);
  });
  return out;
}

function cliReporter(json: boolean): TrainReporter & { line: ProgressLine } {
  const line = new ProgressLine(process.stderr, 10);
  return {
    line,
    event(e: TrainEvent): void {
      if (json) {
        process.stdout.write(`${JSON.stringify(e)}\n`);
        return;
      }
      switch (e.event) {
        case 'stage':
          line.message(`stage '${e.stage}' (${e.index + 1}): ${e.steps} steps, ${(e.params / 1e6).toFixed(2)}M parameters on ${e.device}, `
            + (e.resumed ? `resuming from ${e.from}` : e.from ? `starting from ${e.from}` : 'starting from scratch'));
          break;
        case 'checkpoint': line.message(`checkpoint ${e.path}${e.pruned.length > 0 ? ` (removed ${e.pruned.length} older)` : ''}`); break;
        case 'samples': line.message(`samples ${e.path}`); break;
        case 'stopped': line.message(`stopping at step ${e.step} (${e.reason}); saving a checkpoint`); break;
        default: break;
      }
    },
    progress(info): void {
      if (!json) line.update(info);
    },
    info(message: string): void {
      if (json) process.stdout.write(`${JSON.stringify({ event: 'info', message })}\n`);
      else line.message(message);
    },
    warn(message: string): void {
      line.message(`warning: ${message}`);
    },
  };
}

function summaryLines(result: TrainResult): string[] {
  const lines = [result.completed ? 'training finished' : 'training stopped (resume with --resume)'];
  for (const s of result.stages) {
    lines.push(`  ${s.name}: ${s.steps} steps, final loss ${s.loss === null ? 'n/a' : s.loss.toFixed(4)}, ${s.imagesSeen} images, `
      + `${s.skippedSteps} skipped, ${formatDuration(s.seconds)} training time`);
  }
  lines.push(`  checkpoint: ${result.checkpoint ?? 'none'}`, `  metrics:    ${result.metrics}`, `  wall time:  ${formatDuration(result.seconds)}`);
  const lastSamples = result.stages.at(-1)?.samples.at(-1);
  if (lastSamples) lines.push(`  samples:    ${lastSamples}`);
  return lines;
}

export async function runTrainCommand(args: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: normalizeResume(args),
      options: {
        config: { type: 'string', short: 'c' }, resume: { type: 'string' }, device: { type: 'string' }, 'cuda-graphs': { type: 'string' },
        json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
    if (values.help) {
      console.log(TRAIN_USAGE);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (values.config === undefined) throw new UsageError('--config FILE is required');
    const graphs = values['cuda-graphs'];
    if (graphs !== undefined && !['on', 'off', 'auto'].includes(graphs)) throw new UsageError(`--cuda-graphs must be on, off or auto, got '${graphs}'`);
    // auto on the command line leaves each stage's own setting.
    const cudaGraphs = graphs === 'on' ? true : graphs === 'off' ? false : undefined;
    const config = loadTrainConfig(values.config);
    const json = values.json ?? false;
    const reporter = cliReporter(json);
    const device = await resolveDevice(values.device ?? 'cpu', (m) => reporter.info(m));
    const controller = new AbortController();
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) {
        reporter.warn(`${signal} again: exiting without saving`);
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      reporter.warn(`${signal}: finishing the current step and saving a checkpoint (send it again to quit at once)`);
      controller.abort(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const result = await train({
        config, device, reporter, signal: controller.signal, cudaGraphs,
        resume: values.resume === undefined ? false : values.resume === 'latest' ? true : values.resume,
      });
      reporter.line.end();
      if (json) process.stdout.write(`${JSON.stringify({ event: 'summary', ...result })}\n`);
      else console.log(summaryLines(result).join('\n'));
      if (controller.signal.aborted) return controller.signal.reason === 'SIGTERM' ? 143 : 130;
      return 0;
    } finally {
      reporter.line.end();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  } catch (error) {
    if (isUserError(error)) return reportError('train', error, TRAIN_USAGE);
    throw error;
  }
}

export const trainCommand = {
  summary: 'train a model from a config (dimba train --config examples/emoji-tiny.json [--resume])',
  run: runTrainCommand,
};
