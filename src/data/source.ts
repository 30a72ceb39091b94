/**
 * What every dataset offers the loader: for a given epoch order, a stream of numbered items,
 * each either a record to load or a skip found while listing. The number (ordinal) is the
 * item's place in that epoch's order, bad items included, so a loader position is one integer
 * plus the ordinals it holds back in partly-filled buckets.
 */
import { SkipError } from './errors.js';
import type { SkipEntry } from './skip-report.js';
import { epochPermutation } from './shuffle.js';

export interface LoadedSample {
  image: Uint8Array;
  /** One or more alternative captions; the loader picks one per epoch. */
  captions: string[];
  score?: number;
}

export interface SampleRecord {
  /** Stable identifier (relative path or WebDataset key), used for caches and reports. */
  key: string;
  /** File named in skip reports. */
  file: string;
  /** Reads the bytes and captions; throws SkipError for bad input. */
  load(): Promise<LoadedSample>;
}

export type SourceItem = { ordinal: number; record: SampleRecord } | { ordinal: number; skip: SkipEntry };

export interface EpochRequest {
  seed: number;
  epoch: number;
  shuffle: boolean;
  /** First ordinal wanted. */
  from: number;
  /** Ordinals below `from` wanted as well (a resumed loader's partly-filled buckets), ascending; yielded first. */
  extra: readonly number[];
}

export interface SampleSource {
  /** Says what the data is (path, item count); a resumed loader checks it is unchanged. */
  readonly description: string;
  /** Problems found while listing the dataset, reported once rather than every epoch. */
  readonly indexSkips: readonly SkipEntry[];
  items(request: EpochRequest): AsyncIterable<SourceItem>;
}

/** Items of a dataset with random access: ordinal i is entry permutation[i]. */
export async function* indexedItems(
  size: number,
  recordAt: (index: number) => SampleRecord,
  request: EpochRequest,
): AsyncGenerator<SourceItem> {
  const order = request.shuffle ? epochPermutation(size, request.seed, request.epoch) : null;
  const at = (ordinal: number): SourceItem => ({ ordinal, record: recordAt(order ? order[ordinal]! : ordinal) });
  for (const ordinal of request.extra) {
    if (ordinal < size) yield at(ordinal);
  }
  for (let ordinal = Math.max(0, request.from); ordinal < size; ordinal++) yield at(ordinal);
}

/** Turns what a record's load threw into a skip entry, or rethrows what is not bad input. */
export function skipFromError(error: unknown): SkipEntry {
  if (error instanceof SkipError) return { file: error.file, reason: error.reason, detail: error.detail };
  throw error;
}
