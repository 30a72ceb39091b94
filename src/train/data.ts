/**
 * The data section of a stage → a sample source and the loader over it, plus the captions a word
 * tokenizer counts.
 *
 * Quality tuning trains on a curated subset: manifest rows with a score of at least
 * data.minScore. Unlike JsonlDataset's own minScore (which keeps unscored rows), rows without a
 * score are left out here: a curated set is what was scored well, not what was never looked at.
 */
import { join } from 'node:path';
import { DataLoader, type LoaderState } from '../data/loader.js';
import { FolderDataset } from '../data/folder-dataset.js';
import { JsonlDataset } from '../data/jsonl-dataset.js';
import { TarShardDataset } from '../data/tar-dataset.js';
import { aspectRatioTable } from '../data/buckets.js';
import { indexedItems, type EpochRequest, type SampleSource, type SourceItem } from '../data/source.js';
import type { SkipEntry } from '../data/skip-report.js';
import type { DataSection } from './config.js';
import { TrainConfigError } from './errors.js';

/** A JSONL manifest restricted to rows scored at least `minScore`. */
class ScoredSubset implements SampleSource {
  constructor(private readonly manifest: JsonlDataset, private readonly rows: readonly number[], private readonly minScore: number) {}

  get description(): string {
    return `${this.manifest.description}, score >= ${this.minScore} (${this.rows.length} rows)`;
  }

  get indexSkips(): readonly SkipEntry[] {
    return this.manifest.indexSkips;
  }

  get size(): number {
    return this.rows.length;
  }

  items(request: EpochRequest): AsyncIterable<SourceItem> {
    return indexedItems(this.rows.length, (i) => this.manifest.recordAt(this.rows[i]!), request);
  }
}

export interface OpenedData {
  source: SampleSource;
  /** Every caption of the (filtered) dataset, alternatives included, for vocabulary building. */
  captions(): AsyncIterable<string>;
}

async function* manifestCaptions(manifest: JsonlDataset, rows: readonly number[] | null): AsyncGenerator<string> {
  const count = rows?.length ?? manifest.size;
  for (let i = 0; i < count; i++) {
    const row = await manifest.rowAt(rows ? rows[i]! : i);
    yield* row.captions;
  }
}

async function openManifest(path: string, data: DataSection): Promise<OpenedData> {
  const manifest = await JsonlDataset.open(path, data.split === null ? {} : { split: data.split });
  if (data.minScore === null) return { source: manifest, captions: () => manifestCaptions(manifest, null) };
  const rows: number[] = [];
  for (let i = 0; i < manifest.size; i++) {
    const score = (await manifest.rowAt(i)).score;
    if (score !== undefined && score >= data.minScore) rows.push(i);
  }
  if (rows.length === 0) {
    throw new TrainConfigError(`config.data.minScore ${data.minScore} leaves no rows of ${path} (rows need a 'score' field of at least that)`);
  }
  return { source: new ScoredSubset(manifest, rows, data.minScore), captions: () => manifestCaptions(manifest, rows) };
}

async function* folderCaptions(folder: FolderDataset): AsyncGenerator<string> {
  for (let i = 0; i < folder.size; i++) {
    try {
      yield* (await folder.recordAt(i).load()).captions;
    } catch {
      // A bad sample is reported by the loader when it is reached; the vocabulary just lacks it.
    }
  }
}

export async function openData(data: DataSection): Promise<OpenedData> {
  switch (data.kind) {
    case 'emoji': return openManifest(join(data.path, 'manifest.jsonl'), data);
    case 'jsonl': return openManifest(data.path, data);
    case 'folder': {
      const folder = await FolderDataset.open(data.path);
      return { source: folder, captions: () => folderCaptions(folder) };
    }
    case 'tar': {
      const shards = await TarShardDataset.open(data.path.endsWith('.tar') || data.path.endsWith('.tgz') || data.path.endsWith('.tar.gz') ? [data.path] : data.path);
      return {
        source: shards,
        captions: () => { throw new TrainConfigError('config.textEncoder.tokenizer "words" cannot count the captions of tar shards; use "bytes"'); },
      };
    }
  }
}

export interface LoaderSettings {
  source: SampleSource;
  data: DataSection;
  batchSize: number;
  /** Multiple that bucket sides are rounded to (the patch size). */
  multiple: number;
  seed: number;
  device: string;
  resume: LoaderState | null;
  log: (message: string) => void;
}

export function makeLoader(s: LoaderSettings): DataLoader {
  const resolution = s.data.buckets ? { buckets: aspectRatioTable(s.data.resolution, s.multiple) } : { size: s.data.resolution };
  return new DataLoader({
    source: s.source,
    batchSize: s.batchSize,
    resolution,
    seed: s.seed,
    shuffle: s.data.shuffle,
    device: s.device,
    log: s.log,
    ...(s.resume ? { resume: s.resume } : {}),
  });
}
