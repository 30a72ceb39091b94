/**
 * `dimba data emoji --out DIR [--size 64] [--limit N]`: builds the emoji dataset.
 * `dimba data score --in MANIFEST [--by colorfulness|contrast|sharpness] [--out FILE]`: writes a
 * quality-proxy score into every manifest row, for the quality-tuning stage's data.minScore.
 */
import { parseArgs } from 'node:util';
import { buildEmojiDataset } from '../data/emoji/build.js';
import { DataError } from '../data/errors.js';
import { DEFAULT_SCORE_MAX_SIDE, SCORE_METRICS, isScoreMetric } from '../data/score.js';
import { scoreManifest, type ScoreManifestResult } from '../data/score-manifest.js';
import { closestMatch } from '../train/suggest.js';
import { UsageError } from './errors.js';

const EMOJI_USAGE = [
  'Usage: dimba data emoji --out DIR [--size 64] [--limit N]',
  '',
  'Builds the emoji text-to-image dataset (Noto, Twemoji, OpenMoji) from the installed npm packages:',
  'PNG images, manifest.jsonl with captions and train/validation/test splits, and license notes.',
  '',
  '  --out DIR     output folder (created if missing)',
  '  --size N      image side in pixels (default 64)',
  '  --limit N     only the first N emoji (all styles and tones of each), for a quick look',
].join('\n');

const SCORE_USAGE = [
  'Usage: dimba data score --in MANIFEST [--by METRIC] [--out FILE] [--max-side N] [--json]',
  '',
  'Writes a "score" into every row of a JSONL manifest, computed from the row\'s image, so that a',
  'quality-tuning stage can train on the best-scored rows (config data.minScore). The scores are',
  'simple image-quality PROXIES, not an aesthetic model: they rank images by one measurable',
  'property. Deterministic; transparent pixels are composited onto white, as in training.',
  '',
  '  --in PATH       a manifest .jsonl, or a folder holding manifest.jsonl (e.g. data/emoji)',
  '  --by METRIC     colorfulness (default): Hasler-Süsstrunk colourfulness, 0 for grey images,',
  '                    ~33 moderately, ~59 quite, ~82 highly colourful',
  '                  contrast: RMS contrast, the standard deviation of luma (0..127.5)',
  '                  sharpness: variance of the Laplacian of luma (depends on the image size)',
  '  --out FILE      write the scored manifest here (default: replace the input manifest)',
  `  --max-side N    reduce images to this longest side before scoring (default ${DEFAULT_SCORE_MAX_SIDE})`,
  '  --json          print the result as JSON',
  '',
  'Every other field and row is kept; the file is replaced atomically. A row whose image cannot be',
  'read loses its score and is named in the skip report. The printed quantiles help pick minScore.',
  '',
  'Example:',
  '  dimba data score --in data/emoji-32',
  '  # then, in a training config\'s quality stage: "data": { "minScore": 40 }',
].join('\n');

const USAGE = [
  'Usage: dimba data <emoji|score> [options]',
  '',
  '  emoji    build the emoji text-to-image dataset',
  '  score    write an image-quality proxy score into every manifest row (for data.minScore)',
  '',
  EMOJI_USAGE,
  '',
  SCORE_USAGE,
].join('\n');

function integerOption(command: string, name: string, value: string | undefined, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UsageError(`dimba data ${command}: --${name} must be an integer, got '${value}'`);
  return n;
}

async function runEmoji(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { out: { type: 'string' }, size: { type: 'string' }, limit: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    console.log(EMOJI_USAGE);
    return 0;
  }
  if (values.out === undefined) throw new DataError('dimba data emoji: --out DIR is required');
  const result = await buildEmojiDataset({
    outDir: values.out,
    size: integerOption('emoji', 'size', values.size, 64),
    limit: integerOption('emoji', 'limit', values.limit, undefined),
  });
  return result.images > 0 ? 0 : 1;
}

function formatScoreResult(r: ScoreManifestResult): string {
  const lines = [`scored ${r.scored} of ${r.rows} rows of ${r.manifest} by ${r.metric}; wrote ${r.out} (${r.seconds.toFixed(1)} s)`];
  const s = r.summary;
  if (s) {
    const f = (v: number) => String(Number(v.toFixed(2)));
    lines.push(`  ${r.metric}: min ${f(s.min)}, p10 ${f(s.p10)}, p25 ${f(s.p25)}, median ${f(s.median)}, p75 ${f(s.p75)}, p90 ${f(s.p90)}, max ${f(s.max)}`);
    lines.push(`  data.minScore ${f(s.p75)} keeps about the top quarter, ${f(s.median)} about half`);
  }
  lines.push(`  ${r.skipped.summary(20).split('\n').join('\n  ')}`);
  return lines.join('\n');
}

async function runScore(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      in: { type: 'string' }, by: { type: 'string' }, out: { type: 'string' }, 'max-side': { type: 'string' },
      json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(SCORE_USAGE);
    return 0;
  }
  if (values.in === undefined) throw new UsageError('dimba data score: --in MANIFEST is required');
  const metric = values.by ?? 'colorfulness';
  if (!isScoreMetric(metric)) {
    const near = closestMatch(metric, SCORE_METRICS);
    throw new UsageError(`dimba data score: --by must be one of ${SCORE_METRICS.join(', ')}, got '${metric}'${near ? ` (did you mean '${near}'?)` : ''}`);
  }
  const maxSide = integerOption('score', 'max-side', values['max-side'], DEFAULT_SCORE_MAX_SIDE)!;
  if (maxSide < 1) throw new UsageError(`dimba data score: --max-side must be at least 1, got ${maxSide}`);
  const json = values.json ?? false;
  const result = await scoreManifest({
    input: values.in, metric, maxSide, ...(values.out === undefined ? {} : { out: values.out }),
    log: json ? undefined : (m) => console.error(m),
  });
  if (json) {
    const { skipped, ...rest } = result;
    console.log(JSON.stringify({ ...rest, skipped: { total: skipped.total, byReason: skipped.counts(), files: skipped.list() } }));
  } else {
    console.log(formatScoreResult(result));
  }
  return result.scored > 0 ? 0 : 1;
}

export async function runDataCommand(args: string[]): Promise<number> {
  const [dataset, ...rest] = args;
  if (dataset === undefined || dataset === '--help' || dataset === '-h') {
    console.log(USAGE);
    return dataset === undefined ? 2 : 0;
  }
  const commands: Record<string, { run: (a: string[]) => Promise<number>; usage: string }> = {
    emoji: { run: runEmoji, usage: EMOJI_USAGE },
    score: { run: runScore, usage: SCORE_USAGE },
  };
  const command = commands[dataset];
  if (!command) {
    const near = closestMatch(dataset, Object.keys(commands));
    console.error(`dimba data: unknown command '${dataset}' (known: emoji, score)${near ? `; did you mean '${near}'?` : ''}\n\n${USAGE}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    // Bad options (and the emoji builder's checks of them) are usage errors; a failure while
    // scoring (an unreadable manifest, a full disk) is not, and the usage text would hide it.
    const usage = error instanceof UsageError || (error instanceof TypeError && 'code' in error) || (error instanceof DataError && dataset === 'emoji');
    if (usage) {
      console.error(`${error.message}\n\n${command.usage}`);
      return 2;
    }
    if (error instanceof DataError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }
}

export const dataCommand = {
  summary: 'build and score datasets (dimba data emoji --out DIR; dimba data score --in DIR)',
  run: runDataCommand,
};
