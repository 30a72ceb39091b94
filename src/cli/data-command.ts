/** `dimba data emoji --out DIR [--size 64] [--limit N]`: builds the emoji dataset. */
import { parseArgs } from 'node:util';
import { buildEmojiDataset } from '../data/emoji/build.js';
import { DataError } from '../data/errors.js';

const USAGE = [
  'Usage: dimba data emoji --out DIR [--size 64] [--limit N]',
  '',
  'Builds the emoji text-to-image dataset (Noto, Twemoji, OpenMoji) from the installed npm packages:',
  'PNG images, manifest.jsonl with captions and train/validation/test splits, and license notes.',
  '',
  '  --out DIR     output folder (created if missing)',
  '  --size N      image side in pixels (default 64)',
  '  --limit N     only the first N emoji (all styles and tones of each), for a quick look',
].join('\n');

function integerOption(name: string, value: string | undefined, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new DataError(`dimba data: --${name} must be an integer, got '${value}'`);
  return n;
}

export async function runDataCommand(args: string[]): Promise<number> {
  const [dataset, ...rest] = args;
  if (dataset === undefined || dataset === '--help' || dataset === '-h') {
    console.log(USAGE);
    return dataset === undefined ? 2 : 0;
  }
  if (dataset !== 'emoji') {
    console.error(`dimba data: unknown dataset '${dataset}' (known: emoji)\n\n${USAGE}`);
    return 2;
  }
  try {
    const { values } = parseArgs({
      args: rest,
      options: { out: { type: 'string' }, size: { type: 'string' }, limit: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (values.out === undefined) throw new DataError('dimba data emoji: --out DIR is required');
    const result = await buildEmojiDataset({
      outDir: values.out,
      size: integerOption('size', values.size, 64),
      limit: integerOption('limit', values.limit, undefined),
    });
    return result.images > 0 ? 0 : 1;
  } catch (error) {
    if (error instanceof DataError || (error instanceof TypeError && 'code' in error)) {
      console.error(`${error.message}\n\n${USAGE}`);
      return 2;
    }
    throw error;
  }
}

export const dataCommand = {
  summary: 'build datasets (dimba data emoji --out DIR [--size 64])',
  run: runDataCommand,
};
