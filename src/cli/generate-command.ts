/**
 * `dimba generate "PROMPT" --model PATH [...]`: PNG files whose text chunks record the prompt,
 * seed and settings, so any image can be made again. Image i uses seed + i on its own, so one
 * image of a batch is reproduced by its own seed and -n 1.
 */
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { SAMPLERS, SAMPLERS_FOR } from '../pipeline/text-to-image.js';
import { loadTrainedModel } from '../train/load-model.js';
import { batchToRgb, encodePng, gridOf, type RgbImage } from '../train/images.js';
import { ProgressLine, RateMeter } from '../train/progress.js';
import { previewScale } from '../train/samples.js';
import { resolveDevice } from './device.js';
import { UsageError, isUserError, reportError } from './errors.js';

export const GENERATE_USAGE = [
  'Usage: dimba generate "PROMPT" --model PATH [options]',
  '',
  'Generates images from a trained checkpoint (EMA weights when present).',
  '',
  '  --model PATH     a run folder (its newest checkpoint), a stage or step-N folder, or model.safetensors',
  '  --sampler S      dpm++ (default), ddim, or euler (flow models)',
  '  --steps N        sampling steps (default 20)',
  '  --cfg S          classifier-free guidance scale (default 4.5; 1 = off)',
  '  --seed N         seed of the first image (default 0); image i uses seed + i',
  '  --size WxH       image size in pixels (default: the model\'s training size)',
  '  -n N             number of images (default 1)',
  '  --out PATH       output file (.png) or folder (default dimba.png; with -n > 1, dimba-<i>.png)',
  '  --grid           also write all images as one grid (<out>-grid.png)',
  '  --scale K        enlarge the PNGs K times (nearest neighbour) for viewing tiny models (default 1)',
  '  --raw            use the raw training weights even when EMA weights exist',
  '  --device D       cpu (default), cuda, or auto',
  '  --precision P    float32 or bf16 (default: bf16 on CUDA, float32 on the CPU)',
  '  --json           print the written files and settings as JSON',
  '',
  'Example:',
  '  dimba generate "red heart, Noto emoji" --model runs/emoji-tiny -n 4 --grid --scale 8',
].join('\n');

function intOption(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return n;
}

function parseSize(value: string | undefined, fallback: number): { width: number; height: number } {
  if (value === undefined) return { width: fallback, height: fallback };
  const m = /^(\d+)(?:x(\d+))?$/i.exec(value);
  if (!m) throw new UsageError(`--size must be WxH or N (pixels), got '${value}'`);
  const width = Number(m[1]);
  return { width, height: m[2] === undefined ? width : Number(m[2]) };
}

/** Output paths: a .png file name for one image, numbered names for several, or a folder. */
function outputPaths(out: string, n: number): { images: string[]; grid: string } {
  const isFile = out.toLowerCase().endsWith('.png');
  const stem = isFile ? out.slice(0, -4) : join(out, 'dimba');
  const images = n === 1 && isFile ? [out] : Array.from({ length: n }, (_, i) => `${stem}-${i}.png`);
  return { images, grid: `${stem}-grid.png` };
}

export async function runGenerateCommand(args: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        model: { type: 'string', short: 'm' }, sampler: { type: 'string' }, steps: { type: 'string' }, cfg: { type: 'string' },
        seed: { type: 'string' }, size: { type: 'string' }, n: { type: 'string', short: 'n' }, out: { type: 'string', short: 'o' },
        grid: { type: 'boolean' }, scale: { type: 'string' }, raw: { type: 'boolean' }, device: { type: 'string' }, precision: { type: 'string' }, json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
    if (values.help) {
      console.log(GENERATE_USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'a PROMPT is required' : `one PROMPT expected (quote it), got ${positionals.length} arguments`);
    const prompt = positionals[0]!;
    if (values.model === undefined) throw new UsageError('--model PATH is required');
    const json = values.json ?? false;
    const device = await resolveDevice(values.device ?? 'cpu', (m) => console.error(m));
    const precision = values.precision ?? (device === 'cpu' ? 'float32' : 'bf16');
    if (precision !== 'float32' && precision !== 'bf16') throw new UsageError(`--precision must be float32 or bf16, got '${precision}'`);
    if (precision === 'bf16' && device === 'cpu') throw new UsageError('--precision bf16 needs a CUDA device (--device cuda); the CPU samples in float32');
    const loaded = await loadTrainedModel(values.model, { ema: !(values.raw ?? false), device, precision });
    const usable = SAMPLERS_FOR[loaded.objective];
    const sampler = values.sampler ?? (usable.includes('dpm++') ? 'dpm++' : usable[0]!);
    const known = SAMPLERS.find((s) => s === sampler);
    if (known === undefined) throw new UsageError(`--sampler must be one of ${SAMPLERS.join(', ')}, got '${sampler}'`);
    if (!usable.includes(known)) throw new UsageError(`--sampler ${known} cannot sample this '${loaded.objective}' model; use ${usable.join(' or ')}`);
    const steps = intOption('steps', values.steps, 20, 1);
    const cfg = values.cfg === undefined ? 4.5 : Number(values.cfg);
    if (!Number.isFinite(cfg)) throw new UsageError(`--cfg must be a number, got '${values.cfg}'`);
    const seed = intOption('seed', values.seed, 0, 0);
    const count = intOption('n', values.n, 1, 1);
    const scale = intOption('scale', values.scale, 1, 1);
    const { width, height } = parseSize(values.size, loaded.config.inputSize);
    const paths = outputPaths(values.out ?? 'dimba.png', count);

    const line = new ProgressLine(process.stderr, Math.max(1, steps));
    const rate = new RateMeter();
    const images: RgbImage[] = [];
    const written: string[] = [];
    for (let i = 0; i < count; i++) {
      const out = loaded.pipeline.generate({
        prompts: [prompt], steps, sampler: known, guidanceScale: cfg, seed: seed + i, height, width,
        onStep: json ? undefined : (done, total) => {
          rate.tick();
          line.update({ label: `image ${i + 1}/${count} step`, step: done, total, itPerSec: rate.perSecond });
        },
      });
      const image = batchToRgb(out)[0]!;
      images.push(image);
      const text = {
        prompt, seed: String(seed + i), sampler: known, steps: String(steps), cfg: String(cfg), size: `${width}x${height}`,
        model: loaded.checkpoint, weights: loaded.weights, precision, Software: 'dimba',
      };
      fs.mkdirSync(dirname(paths.images[i]!), { recursive: true });
      fs.writeFileSync(paths.images[i]!, await encodePng(image, text, scale));
      written.push(paths.images[i]!);
    }
    line.end();
    let grid: string | null = null;
    if (values.grid) {
      const g = gridOf(images);
      fs.writeFileSync(paths.grid, await encodePng(g, { prompt, seed: String(seed), count: String(count), sampler: known, steps: String(steps), cfg: String(cfg), Software: 'dimba' }, scale > 1 ? scale : previewScale(Math.max(width, height))));
      grid = paths.grid;
    }
    if (json) console.log(JSON.stringify({ files: written, grid, prompt, seed, sampler: known, steps, cfg, width, height, checkpoint: loaded.checkpoint, weights: loaded.weights, precision, device }));
    else console.log([...written, ...(grid ? [grid] : [])].join('\n'));
    return 0;
  } catch (error) {
    if (isUserError(error)) return reportError('generate', error, GENERATE_USAGE);
    throw error;
  }
}

export const generateCommand = {
  summary: 'generate PNGs from a trained model (dimba generate "a red heart" --model runs/emoji-tiny)',
  run: runGenerateCommand,
};
