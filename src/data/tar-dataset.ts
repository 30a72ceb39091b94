/**
 * WebDataset-style shards: plain (or gzipped) tar files in which the files of one sample sit
 * next to each other and share a key — the path up to the first dot of the file name:
 *
 *   000017.jpg  000017.txt  000017.json      → key '000017', members jpg / txt / json
 *
 * The image is the png/jpg/jpeg/webp/svg member; the caption is the txt (or `caption`) member,
 * or the `caption`/`captions` field of the json member, which may also carry a `score`.
 *
 * Shards are read as streams, never whole. Shuffling is the WebDataset kind: the shard order
 * is permuted per epoch and samples pass through a fixed-size shuffle buffer, both driven by
 * (seed, epoch). Because a stream cannot seek to a sample, a resumed loader replays the
 * epoch's stream from the start and skips (without decoding) what it had already seen.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
// tar-stream: a small, widely used streaming tar parser (ustar, pax and GNU long names), so
// shards are parsed entry by entry as bytes arrive instead of being extracted to disk.
import tar from 'tar-stream';
import { captionFromBytes, decodeUtf8, normalizeCaption } from './caption-text.js';
import { DataError, SkipError, messageOf } from './errors.js';
import type { SkipEntry } from './skip-report.js';
import { STREAM_SHARD_ORDER, STREAM_SHUFFLE_BUFFER, epochPermutation, indexAt } from './shuffle.js';
import type { EpochRequest, LoadedSample, SampleRecord, SampleSource, SourceItem } from './source.js';

export interface TarDatasetOptions {
  /** Samples held for shuffling (default 256); larger mixes better and holds more bytes in memory. */
  shuffleBuffer?: number;
}

const IMAGE_EXTENSIONS = ['png', 'jpg', 'jpeg', 'webp', 'svg'];
const OTHER_IMAGE_EXTENSIONS = ['gif', 'bmp', 'tif', 'tiff', 'avif', 'heic', 'heif', 'jxl', 'ppm', 'pgm', 'jp2'];
const SHARD_PATTERN = /\.(tar|tar\.gz|tgz)$/;

export class TarShardDataset implements SampleSource {
  readonly shards: readonly string[];
  readonly shuffleBuffer: number;
  readonly indexSkips: readonly SkipEntry[] = [];

  private constructor(shards: string[], shuffleBuffer: number) {
    this.shards = shards;
    this.shuffleBuffer = shuffleBuffer;
  }

  /** `shards`: shard paths in their natural order, or a folder whose .tar/.tar.gz/.tgz files are taken in name order. */
  static async open(shards: string | readonly string[], options: TarDatasetOptions = {}): Promise<TarShardDataset> {
    const shuffleBuffer = options.shuffleBuffer ?? 256;
    if (!Number.isInteger(shuffleBuffer) || shuffleBuffer < 1) {
      throw new DataError(`TarShardDataset: shuffleBuffer must be a positive integer, got ${shuffleBuffer}`);
    }
    let list: string[];
    if (typeof shards === 'string') {
      let names: string[];
      try {
        names = await fs.promises.readdir(shards);
      } catch (cause) {
        throw new DataError(`TarShardDataset: cannot list shard folder ${shards}: ${messageOf(cause)}`, { cause });
      }
      list = names.filter((n) => SHARD_PATTERN.test(n)).sort().map((n) => join(shards, n));
    } else {
      list = [...shards];
    }
    if (list.length === 0) throw new DataError(`TarShardDataset: no shards given (${typeof shards === 'string' ? `no .tar files in ${shards}` : 'empty list'})`);
    return new TarShardDataset(list, shuffleBuffer);
  }

  get description(): string {
    return `tar shards ${this.shards[0]}${this.shards.length > 1 ? ` .. ${this.shards[this.shards.length - 1]}` : ''} (${this.shards.length} shards, buffer ${this.shuffleBuffer})`;
  }

  async *items(request: EpochRequest): AsyncGenerator<SourceItem> {
    const extra = new Set(request.extra);
    const wanted = (ordinal: number): boolean => ordinal >= request.from || extra.has(ordinal);
    const order = request.shuffle ? epochPermutation(this.shards.length, request.seed, request.epoch, STREAM_SHARD_ORDER) : null;
    const buffer: SampleRecord[] = [];
    let ordinal = 0;
    let draws = 0;
    const draw = (n: number): number => indexAt(request.seed, STREAM_SHUFFLE_BUFFER, draws++, request.epoch, n);

    for (let s = 0; s < this.shards.length; s++) {
      const shard = this.shards[order ? order[s]! : s]!;
      for await (const item of readShard(shard)) {
        if ('skip' in item) {
          const o = ordinal++;
          if (wanted(o)) yield { ordinal: o, skip: item.skip };
          continue;
        }
        let out: SampleRecord | undefined = item.record;
        if (request.shuffle) {
          if (buffer.length < this.shuffleBuffer) {
            buffer.push(item.record);
            out = undefined;
          } else {
            const j = draw(buffer.length);
            out = buffer[j]!;
            buffer[j] = item.record;
          }
        }
        if (out) {
          const o = ordinal++;
          if (wanted(o)) yield { ordinal: o, record: out };
        }
      }
    }
    while (buffer.length > 0) {
      const j = draw(buffer.length);
      const out = buffer[j]!;
      buffer[j] = buffer[buffer.length - 1]!;
      buffer.pop();
      const o = ordinal++;
      if (wanted(o)) yield { ordinal: o, record: out };
    }
  }
}

type ShardItem = { record: SampleRecord } | { skip: SkipEntry };

/** The samples of one shard in file order; a shard that cannot be read (fully) ends with a skip. */
async function* readShard(shard: string): AsyncGenerator<ShardItem> {
  const input = fs.createReadStream(shard);
  const extract = tar.extract();
  const streams: Readable[] = [input];
  let upstream: Readable = input;
  if (!shard.endsWith('.tar')) {
    const gunzip = createGunzip();
    upstream = input.pipe(gunzip);
    streams.push(gunzip);
  }
  for (const s of streams) s.on('error', (error: Error) => extract.destroy(error));
  upstream.pipe(extract);

  let key: string | null = null;
  let members = new Map<string, Uint8Array>();
  let samples = 0;
  try {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) {
        if (!(chunk instanceof Uint8Array)) throw new DataError(`TarShardDataset: ${shard}: tar-stream gave ${typeof chunk}, not bytes`);
        chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      }
      const type = entry.header.type ?? 'file';
      if (type !== 'file' && type !== 'contiguous-file') continue;
      const { key: entryKey, ext } = splitMemberName(entry.header.name);
      if (entryKey !== key) {
        if (key !== null) {
          samples += 1;
          yield { record: tarRecord(shard, key, members) };
        }
        key = entryKey;
        members = new Map();
      }
      members.set(ext, new Uint8Array(Buffer.concat(chunks)));
    }
    if (key !== null) yield { record: tarRecord(shard, key, members) };
  } catch (error) {
    const lost = key !== null ? `; the sample '${key}' being read is lost` : '';
    yield { skip: { file: shard, reason: 'unreadable-shard', detail: `${messageOf(error)} after ${samples} complete samples${lost}` } };
  } finally {
    for (const s of streams) s.destroy();
    extract.destroy();
  }
}

/** WebDataset's rule: key = directory + file name up to its first dot; the rest is the extension. */
function splitMemberName(name: string): { key: string; ext: string } {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot < 0) return { key: name, ext: '' };
  return { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() };
}

function tarRecord(shard: string, key: string, members: ReadonlyMap<string, Uint8Array>): SampleRecord {
  const imageExt = IMAGE_EXTENSIONS.find((e) => members.has(e));
  const file = `${shard}:${key}.${imageExt ?? [...members.keys()].join('|')}`;
  return {
    key: `${shard}:${key}`,
    file,
    load: async (): Promise<LoadedSample> => {
      if (imageExt === undefined) {
        const other = OTHER_IMAGE_EXTENSIONS.find((e) => members.has(e));
        if (other !== undefined) throw new SkipError('unsupported-format', file, `.${other} is not one of ${IMAGE_EXTENSIONS.join(', ')}`);
        throw new SkipError('missing-image', file, `no image member (members: ${[...members.keys()].join(', ') || 'none'})`);
      }
      const image = members.get(imageExt)!;
      const { captions, score } = tarCaptions(shard, key, members);
      return score === undefined ? { image, captions } : { image, captions, score };
    },
  };
}

function tarCaptions(shard: string, key: string, members: ReadonlyMap<string, Uint8Array>): { captions: string[]; score?: number } {
  for (const ext of ['txt', 'caption']) {
    const bytes = members.get(ext);
    if (bytes !== undefined) return { captions: [captionFromBytes(bytes, `${shard}:${key}.${ext}`)], ...jsonScore(shard, key, members) };
  }
  const json = members.get('json');
  if (json !== undefined) {
    const where = `${shard}:${key}.json`;
    const fields = parseJsonObject(json, where);
    const raw = fields['caption'] ?? fields['captions'];
    const list = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw.filter((c): c is string => typeof c === 'string') : [];
    if (raw === undefined) throw new SkipError('missing-caption', where, "no txt member and no 'caption' in the json member");
    const captions = list.map(normalizeCaption).filter((c) => c.length > 0);
    if (captions.length === 0) throw new SkipError('empty-caption', where, "the json member's caption is empty");
    const score = fields['score'];
    return typeof score === 'number' && Number.isFinite(score) ? { captions, score } : { captions };
  }
  throw new SkipError('missing-caption', `${shard}:${key}`, `no txt or json member (members: ${[...members.keys()].join(', ')})`);
}

function jsonScore(shard: string, key: string, members: ReadonlyMap<string, Uint8Array>): { score?: number } {
  const json = members.get('json');
  if (json === undefined) return {};
  const score = parseJsonObject(json, `${shard}:${key}.json`)['score'];
  return typeof score === 'number' && Number.isFinite(score) ? { score } : {};
}

function parseJsonObject(bytes: Uint8Array, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decodeUtf8(bytes, where));
  } catch (cause) {
    if (cause instanceof SkipError) throw cause;
    throw new SkipError('bad-manifest-line', where, `not valid JSON: ${messageOf(cause)}`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SkipError('bad-manifest-line', where, 'the json member must be an object');
  return value as Record<string, unknown>;
}
