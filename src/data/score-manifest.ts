/**
 * Writes a `score` into every row of a JSONL manifest, computed from the row's image by one of
 * the proxies in score.ts, so that the quality-tuning stage (data.minScore) has a curated subset
 * to train on.
 *
 * The manifest is otherwise kept as it was: every field and every row stays, in order (rows are
 * re-serialised as JSON, so only insignificant whitespace can change). A row whose image cannot
 * be read or decoded loses its `score` (so a minScore filter leaves it out) and is named in the
 * skip report; a line that is not a JSON object with an `image` is copied unchanged and reported.
 *
 * The result is written atomically: a temporary file next to the target, fsynced, then renamed
 * over it (and the folder fsynced), so a crash or a full disk leaves the old manifest intact.
 * Writing to another folder (`out`) rewrites relative image paths so they still resolve.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { DataError, SkipError, errorCode, messageOf } from './errors.js';
import { readFileOrSkip } from './folder-dataset.js';
import { SkipReport } from './skip-report.js';
import { DEFAULT_SCORE_MAX_SIDE, scoreImage, type ScoreMetric } from './score.js';

export interface ScoreManifestOptions {
  /** A manifest .jsonl file, or a folder holding manifest.jsonl (what `dimba data emoji` writes). */
  input: string;
  metric: ScoreMetric;
  /** Where to write the scored manifest (default: over the input manifest). */
  out?: string;
  /** Images are reduced to this longest side before scoring (never enlarged). */
  maxSide?: number;
  /** Images decoded at once. */
  concurrency?: number;
  log?: (message: string) => void;
  /** Test seam: runs after the temporary file is complete, before it replaces the target. */
  beforeRename?: (temporary: string) => void | Promise<void>;
}

export interface ScoreSummary {
  count: number;
  min: number;
  p10: number;
  p25: number;
  median: number;
  p75: number;
  p90: number;
  max: number;
}

export interface ScoreManifestResult {
  manifest: string;
  out: string;
  metric: ScoreMetric;
  /** Manifest lines that hold a row (blank lines aside). */
  rows: number;
  scored: number;
  skipped: SkipReport;
  /** Distribution of the scores written, to choose data.minScore from; null when none was. */
  summary: ScoreSummary | null;
  seconds: number;
}

/** The manifest file an `input` names: the file itself, or manifest.jsonl in a folder. */
export function manifestPathOf(input: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(input);
  } catch (cause) {
    throw new DataError(`dimba data score: cannot read --in ${input}: ${messageOf(cause)}`, { cause });
  }
  const path = stat.isDirectory() ? join(input, 'manifest.jsonl') : input;
  if (stat.isDirectory() && !fs.existsSync(path)) throw new DataError(`dimba data score: ${input} is a folder without a manifest.jsonl`);
  return path;
}

/** The value at fraction q of sorted values (nearest rank: always one of the scores). */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function summarizeScores(scores: readonly number[]): ScoreSummary | null {
  if (scores.length === 0) return null;
  const s = [...scores].sort((a, b) => a - b);
  return {
    count: s.length, min: s[0]!, p10: quantile(s, 0.1), p25: quantile(s, 0.25), median: quantile(s, 0.5),
    p75: quantile(s, 0.75), p90: quantile(s, 0.9), max: s.at(-1)!,
  };
}

interface Line {
  number: number;
  text: string;
}

/** What one manifest line becomes: its output text, and the score it got (null: none). */
async function scoreLine(line: Line, manifest: string, root: string, outDir: string, options: Required<Pick<ScoreManifestOptions, 'metric' | 'maxSide'>>,
  skipped: SkipReport): Promise<{ text: string; score: number | null; row: boolean }> {
  const where = `${manifest}:${line.number}`;
  if (line.text.trim().length === 0) return { text: line.text, score: null, row: false };
  let row: unknown;
  try {
    row = JSON.parse(line.text);
  } catch (cause) {
    skipped.add({ file: where, reason: 'bad-manifest-line', detail: `not valid JSON (${messageOf(cause)}); copied unchanged` });
    return { text: line.text, score: null, row: true };
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row) || typeof Reflect.get(row, 'image') !== 'string' || Reflect.get(row, 'image') === '') {
    skipped.add({ file: where, reason: 'bad-manifest-line', detail: "not a JSON object with a non-empty 'image'; copied unchanged" });
    return { text: line.text, score: null, row: true };
  }
  const fields = row as Record<string, unknown>;
  const image = fields['image'] as string;
  const imagePath = isAbsolute(image) ? image : join(root, image);
  if (!isAbsolute(image) && resolve(outDir) !== resolve(root)) fields['image'] = relative(outDir, imagePath);
  try {
    const bytes = await readFileOrSkip(imagePath, 'missing-image');
    const score = await scoreImage(bytes, imagePath, options.metric, options.maxSide);
    fields['score'] = score;
    return { text: JSON.stringify(fields), score, row: true };
  } catch (error) {
    if (!(error instanceof SkipError)) throw error;
    skipped.add({ file: error.file, reason: error.reason, detail: `${error.detail} (row ${where}; its score was removed)` });
    delete fields['score'];
    return { text: JSON.stringify(fields), score: null, row: true };
  }
}

async function syncFolder(dir: string): Promise<void> {
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(dir, 'r');
    await handle.sync();
  } catch {
    // Some filesystems refuse to fsync a folder; the rename itself is still atomic there.
  } finally {
    await handle?.close();
  }
}

function writeHint(error: unknown): string {
  switch (errorCode(error)) {
    case 'ENOSPC': case 'EDQUOT': return ' (the disk is full)';
    case 'EACCES': case 'EPERM': case 'EROFS': return ' (the folder is not writable)';
    case 'ENOTDIR': case 'EEXIST': return ' (a file is in the way of the output folder)';
    default: return '';
  }
}

export async function scoreManifest(options: ScoreManifestOptions): Promise<ScoreManifestResult> {
  const started = performance.now();
  const maxSide = options.maxSide ?? DEFAULT_SCORE_MAX_SIDE;
  if (!(Number.isInteger(maxSide) && maxSide >= 1)) throw new DataError(`dimba data score: --max-side must be an integer >= 1, got ${maxSide}`);
  const concurrency = options.concurrency ?? 8;
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new DataError(`dimba data score: concurrency must be an integer >= 1, got ${concurrency}`);
  const manifest = manifestPathOf(options.input);
  const out = options.out ?? manifest;
  const outDir = dirname(out);
  const root = dirname(manifest);
  const temporary = join(outDir, `.${basename(out)}.tmp-${process.pid}`);
  const skipped = new SkipReport();
  const scores: number[] = [];
  let rows = 0;

  let handle: fs.promises.FileHandle;
  try {
    await fs.promises.mkdir(outDir, { recursive: true });
    handle = await fs.promises.open(temporary, 'w');
  } catch (cause) {
    throw new DataError(`dimba data score: cannot write ${out}: ${messageOf(cause)}${writeHint(cause)}`, { cause });
  }
  let renamed = false;
  try {
    const input = fs.createReadStream(manifest);
    const lines = readline.createInterface({ input, crlfDelay: Infinity });
    let batch: Line[] = [];
    let number = 0;
    let nextLog = 2000;
    const flush = async (): Promise<void> => {
      // Lines of a batch are scored at once (sharp decodes on the libuv pool) and written in order.
      const done = await Promise.all(batch.map((line) => scoreLine(line, manifest, root, outDir, { metric: options.metric, maxSide }, skipped)));
      for (const d of done) {
        if (d.row) rows += 1;
        if (d.score !== null) scores.push(d.score);
      }
      if (done.length > 0) await handle.write(`${done.map((d) => d.text).join('\n')}\n`);
      batch = [];
      if (rows >= nextLog) {
        options.log?.(`  ${rows} rows`);
        nextLog += 2000;
      }
    };
    try {
      for await (const text of lines) {
        batch.push({ number: ++number, text });
        if (batch.length >= concurrency) await flush();
      }
    } catch (cause) {
      if (cause instanceof DataError) throw cause;
      throw new DataError(`dimba data score: cannot read manifest ${manifest}: ${messageOf(cause)}`, { cause });
    }
    await flush();
    await handle.sync();
    await handle.close();
    await options.beforeRename?.(temporary);
    await fs.promises.rename(temporary, out);
    renamed = true;
    await syncFolder(outDir);
  } catch (error) {
    if (!renamed) {
      await handle.close().catch(() => {});
      await fs.promises.rm(temporary, { force: true });
    }
    if (error instanceof DataError) throw error;
    throw new DataError(`dimba data score: cannot write ${out}: ${messageOf(error)}${writeHint(error)}; ${out === manifest ? 'the manifest is unchanged' : 'nothing was written'}`, { cause: error });
  }
  return {
    manifest, out, metric: options.metric, rows, scored: scores.length, skipped, summary: summarizeScores(scores),
    seconds: (performance.now() - started) / 1000,
  };
}
