/**
 * A JSONL manifest: one JSON object per line,
 *
 *   {"image": "imgs/0001.jpg", "caption": "a red bicycle", "score": 6.2}
 *
 * `image` is relative to the manifest's folder (or absolute); `caption` is a string or an array
 * of alternatives (`captions` is accepted too); `score` is optional, for curation (`minScore`).
 * Other fields are kept out of the way, except `split` when a split is asked for.
 *
 * Opening streams through the file once, checking every line and keeping only the byte offset
 * and length of the good ones, so a manifest of millions of rows costs 12 bytes a row; each
 * row is read again from disk when the loader asks for it.
 */
import fs from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { decodeUtf8, normalizeCaption } from './caption-text.js';
import { DataError, SkipError, messageOf } from './errors.js';
import { readFileOrSkip } from './folder-dataset.js';
import type { SkipEntry } from './skip-report.js';
import { indexedItems, type EpochRequest, type SampleRecord, type SampleSource, type SourceItem } from './source.js';

export interface JsonlDatasetOptions {
  /** Folder that relative `image` paths start from (default: the manifest's folder). */
  root?: string;
  /** Keep only rows whose `split` field equals this. */
  split?: string;
  /** Keep only rows with a `score` of at least this (rows without a score are kept). */
  minScore?: number;
}

export interface ManifestRow {
  image: string;
  captions: string[];
  score?: number;
  split?: string;
}

/** Rows left out by `split` / `minScore` on purpose (not bad input, so not in the skip report). */
export interface ManifestFilterCounts {
  otherSplit: number;
  belowMinScore: number;
}

const NEWLINE = 0x0a;

export class JsonlDataset implements SampleSource {
  readonly path: string;
  readonly root: string;
  readonly indexSkips: readonly SkipEntry[];
  readonly filtered: Readonly<ManifestFilterCounts>;
  private readonly offsets: Float64Array;
  private readonly lengths: Uint32Array;
  private readonly lineNumbers: Uint32Array;
  private readonly count: number;

  private constructor(path: string, root: string, index: LineIndex, skips: SkipEntry[], filtered: ManifestFilterCounts) {
    this.path = path;
    this.root = root;
    this.offsets = index.offsets;
    this.lengths = index.lengths;
    this.lineNumbers = index.lineNumbers;
    this.count = index.count;
    this.indexSkips = skips;
    this.filtered = filtered;
  }

  static async open(path: string, options: JsonlDatasetOptions = {}): Promise<JsonlDataset> {
    const index = new LineIndex();
    const skips: SkipEntry[] = [];
    const filtered: ManifestFilterCounts = { otherSplit: 0, belowMinScore: 0 };
    try {
      await scanLines(path, (bytes, offset, lineNumber) => {
        let row: ManifestRow;
        try {
          row = parseRow(bytes, `${path}:${lineNumber}`);
        } catch (error) {
          if (!(error instanceof SkipError)) throw error;
          skips.push({ file: error.file, reason: error.reason, detail: error.detail });
          return;
        }
        if (options.split !== undefined && row.split !== options.split) filtered.otherSplit += 1;
        else if (options.minScore !== undefined && row.score !== undefined && row.score < options.minScore) filtered.belowMinScore += 1;
        else index.push(offset, bytes.length, lineNumber);
      });
    } catch (cause) {
      if (cause instanceof DataError) throw cause;
      throw new DataError(`JsonlDataset: cannot read manifest ${path}: ${messageOf(cause)}`, { cause });
    }
    return new JsonlDataset(path, options.root ?? dirname(path), index, skips, filtered);
  }

  get size(): number {
    return this.count;
  }

  get description(): string {
    return `manifest ${this.path} (${this.count} rows)`;
  }

  recordAt(index: number): SampleRecord {
    if (!(index >= 0 && index < this.count)) throw new DataError(`JsonlDataset.recordAt: index ${index} is outside [0, ${this.count})`);
    const where = `${this.path}:${this.lineNumbers[index]!}`;
    const offset = this.offsets[index]!;
    const length = this.lengths[index]!;
    return {
      key: where,
      file: where,
      load: async () => {
        const row = parseRow(await this.readLine(offset, length, where), where);
        const imagePath = isAbsolute(row.image) ? row.image : join(this.root, row.image);
        const image = await readFileOrSkip(imagePath, 'missing-image');
        return row.score === undefined ? { image, captions: row.captions } : { image, captions: row.captions, score: row.score };
      },
    };
  }

  /** The parsed row at `index` (captions and score without the image). */
  async rowAt(index: number): Promise<ManifestRow> {
    const where = `${this.path}:${this.lineNumbers[index]!}`;
    return parseRow(await this.readLine(this.offsets[index]!, this.lengths[index]!, where), where);
  }

  items(request: EpochRequest): AsyncIterable<SourceItem> {
    return indexedItems(this.count, (i) => this.recordAt(i), request);
  }

  /**
   * Each read opens the manifest anew: the cost is small beside reading and decoding an image,
   * and no file handle outlives the call, so a dataset needs no closing.
   */
  private async readLine(offset: number, length: number, where: string): Promise<Uint8Array> {
    let handle: fs.promises.FileHandle | undefined;
    try {
      handle = await fs.promises.open(this.path, 'r');
      const bytes = new Uint8Array(length);
      const { bytesRead } = await handle.read(bytes, 0, length, offset);
      if (bytesRead !== length) throw new Error(`read ${bytesRead} of ${length} bytes (the manifest changed since it was opened?)`);
      return bytes;
    } catch (cause) {
      throw new SkipError('unreadable-file', where, messageOf(cause), { cause });
    } finally {
      await handle?.close();
    }
  }
}

class LineIndex {
  offsets = new Float64Array(1024);
  lengths = new Uint32Array(1024);
  lineNumbers = new Uint32Array(1024);
  count = 0;

  push(offset: number, length: number, lineNumber: number): void {
    if (this.count === this.offsets.length) {
      const grow = <T extends Float64Array | Uint32Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.offsets = grow(this.offsets, (n) => new Float64Array(n));
      this.lengths = grow(this.lengths, (n) => new Uint32Array(n));
      this.lineNumbers = grow(this.lineNumbers, (n) => new Uint32Array(n));
    }
    this.offsets[this.count] = offset;
    this.lengths[this.count] = length;
    this.lineNumbers[this.count] = lineNumber;
    this.count += 1;
  }
}

/** Calls `onLine` for every non-blank line with its bytes (no newline), byte offset and 1-based number. */
async function scanLines(path: string, onLine: (bytes: Uint8Array, offset: number, lineNumber: number) => void): Promise<void> {
  let position = 0; // offset of the current chunk's first byte
  let lineStart = 0;
  let lineNumber = 0;
  let carry: Uint8Array[] = []; // the current line's bytes from earlier chunks
  const emit = (bytes: Uint8Array): void => {
    lineNumber += 1;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end -= 1; // CRLF files
    const line = bytes.subarray(0, end);
    if (line.some((b) => b !== 0x20 && b !== 0x09)) onLine(line, lineStart, lineNumber);
  };
  for await (const chunk of fs.createReadStream(path, { highWaterMark: 1 << 20 })) {
    if (!Buffer.isBuffer(chunk)) throw new DataError(`JsonlDataset: ${path}: the stream gave ${typeof chunk}, not bytes`);
    const data = chunk;
    let start = 0;
    for (let i = data.indexOf(NEWLINE); i >= 0; i = data.indexOf(NEWLINE, start)) {
      const piece = data.subarray(start, i);
      emit(carry.length > 0 ? concat([...carry, piece]) : piece);
      carry = [];
      start = i + 1;
      lineStart = position + start;
    }
    if (start < data.length) carry.push(data.subarray(start));
    position += data.length;
  }
  if (carry.length > 0) emit(concat(carry));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Checks one manifest line; every problem is a SkipError naming `where` (path:line). */
export function parseRow(bytes: Uint8Array, where: string): ManifestRow {
  const text = decodeUtf8(bytes, where);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new SkipError('bad-manifest-line', where, `not valid JSON: ${messageOf(cause)}`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SkipError('bad-manifest-line', where, 'a line must be a JSON object');
  }
  const fields = value as Record<string, unknown>;
  const image = fields['image'];
  if (typeof image !== 'string' || image.length === 0) {
    throw new SkipError(image === undefined ? 'missing-image' : 'bad-manifest-line', where, `'image' must be a non-empty string, got ${JSON.stringify(image) ?? 'nothing'}`);
  }
  const captions = collectCaptions(fields['caption'], fields['captions'], where);
  const row: ManifestRow = { image, captions };
  const score = fields['score'];
  if (score !== undefined && score !== null) {
    if (typeof score !== 'number' || !Number.isFinite(score)) throw new SkipError('bad-manifest-line', where, `'score' must be a finite number, got ${JSON.stringify(score)}`);
    row.score = score;
  }
  const split = fields['split'];
  if (typeof split === 'string') row.split = split;
  return row;
}

function collectCaptions(caption: unknown, captions: unknown, where: string): string[] {
  if (caption === undefined && captions === undefined) throw new SkipError('missing-caption', where, "the row has no 'caption'");
  const raw: unknown[] = [];
  for (const [name, value] of [['caption', caption], ['captions', captions]] as const) {
    if (value === undefined || value === null) continue;
    if (typeof value === 'string') raw.push(value);
    else if (Array.isArray(value)) raw.push(...(value as unknown[]));
    else throw new SkipError('bad-manifest-line', where, `'${name}' must be a string or an array of strings, got ${typeof value}`);
  }
  const out: string[] = [];
  for (const c of raw) {
    if (typeof c !== 'string') throw new SkipError('bad-manifest-line', where, `captions must be strings, got ${JSON.stringify(c)}`);
    const text = normalizeCaption(c);
    if (text.length > 0 && !out.includes(text)) out.push(text);
  }
  if (out.length === 0) throw new SkipError('empty-caption', where, 'every caption is empty');
  return out;
}
