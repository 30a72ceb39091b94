/**
 * The training data loader: a source's items in (seed, epoch) order → decoded, resized images
 * grouped into batches of equal size → float32 tensors [B, 3, H, W] in [-1, 1] with captions.
 *
 * Decoding happens in the background through sharp's own threadpool (libvips on libuv
 * worker threads) behind an ordered prefetch queue, not in worker_threads: libvips already
 * decodes off the main thread, and worker_threads would add a copy of every image across
 * threads plus a second sharp instance per worker for no gain. Only the uint8 → float32
 * conversion runs on the main thread.
 *
 * Position: every batch carries the loader state after it — (epoch, cursor = items consumed,
 * pending = items waiting in partly-filled buckets). A loader built with `resume: state`
 * yields exactly the batches an uninterrupted one would have yielded after that batch: the
 * order is a pure function of (seed, epoch), and the pending items are reloaded by ordinal.
 */
import { Tensor } from '../tensor/tensor.js';
import { closestBucket, type AspectRatioTable } from './buckets.js';
import { DataError } from './errors.js';
import { decodeImage, type DecodeOptions, type ImageInfo, type TargetSize } from './image-decode.js';
import { rgbToCHW } from './pixels.js';
import { prefetchOrdered } from './prefetch.js';
import { STREAM_CAPTION, indexAt } from './shuffle.js';
import { SkipReport, type SkipEntry } from './skip-report.js';
import { skipFromError, type SampleSource, type SourceItem } from './source.js';

/** Square images, a fixed size, or PixArt-style aspect-ratio buckets. */
export type LoaderResolution = { size: number } | { height: number; width: number } | { buckets: AspectRatioTable };

export interface DataLoaderOptions {
  source: SampleSource;
  batchSize: number;
  resolution: LoaderResolution;
  seed?: number;
  /** Shuffle each epoch (default true); false keeps the source's natural order. */
  shuffle?: boolean;
  /** Samples decoded ahead of the consumer (default 2 × batchSize). */
  prefetch?: number;
  decode?: DecodeOptions;
  /** Device of the batch tensors (default 'cpu'). */
  device?: string;
  /** Continue from a batch's `state`. */
  resume?: LoaderState;
  /** Called for every skip as it happens. */
  onSkip?: (entry: SkipEntry) => void;
  /** Where the end-of-epoch summary of new skips goes (default console.warn; null for none). */
  log?: ((message: string) => void) | null;
}

/** A loader position; plain JSON, saved with training checkpoints. */
export interface LoaderState {
  source: string;
  seed: number;
  shuffle: boolean;
  epoch: number;
  /** Items of this epoch's order consumed (decoded or skipped). */
  cursor: number;
  /** Ordinals (< cursor) decoded but waiting in partly-filled buckets, ascending. */
  pending: number[];
}

export interface Batch {
  /** [B, 3, height, width], float32 in [-1, 1]. */
  images: Tensor;
  captions: string[];
  keys: string[];
  scores: (number | null)[];
  height: number;
  width: number;
  epoch: number;
  /** The loader position after this batch. */
  state: LoaderState;
}

interface Sample {
  ordinal: number;
  key: string;
  caption: string;
  score: number | null;
  pixels: Float32Array;
  height: number;
  width: number;
}

type Processed = { ordinal: number; sample: Sample } | { ordinal: number; skip: SkipEntry };

export class DataLoader {
  readonly source: SampleSource;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  /** Every input skipped so far, with its file and reason. */
  readonly report = new SkipReport();
  private readonly resolution: LoaderResolution;
  private readonly prefetch: number;
  private readonly decode: DecodeOptions;
  private readonly device: string;
  private readonly onSkip: ((entry: SkipEntry) => void) | undefined;
  private readonly log: ((message: string) => void) | null;
  private position: { epoch: number; cursor: number; pending: number[] };
  private indexSkipsReported = false;

  constructor(options: DataLoaderOptions) {
    const { source, batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new DataError(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    this.source = source;
    this.batchSize = batchSize;
    this.seed = options.seed ?? 0;
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new DataError(`DataLoader: seed must be a non-negative safe integer, got ${this.seed}`);
    this.shuffle = options.shuffle ?? true;
    this.resolution = checkResolution(options.resolution);
    this.prefetch = options.prefetch ?? 2 * batchSize;
    if (!Number.isInteger(this.prefetch) || this.prefetch < 1) throw new DataError(`DataLoader: prefetch must be a positive integer, got ${this.prefetch}`);
    this.decode = options.decode ?? {};
    this.device = options.device ?? 'cpu';
    this.onSkip = options.onSkip;
    this.log = options.log === undefined ? (message) => console.warn(message) : options.log;
    this.position = { epoch: 0, cursor: 0, pending: [] };
    if (options.resume) this.position = this.checkResume(options.resume);
  }

  /** The position after the last batch handed out. */
  get state(): LoaderState {
    const { epoch, cursor, pending } = this.position;
    return { source: this.source.description, seed: this.seed, shuffle: this.shuffle, epoch, cursor, pending: [...pending] };
  }

  /** Batches from the current position to the end of its epoch; the position then moves to the next epoch. */
  async *epoch(): AsyncGenerator<Batch> {
    this.reportIndexSkips();
    const { epoch, pending } = this.position;
    let cursor = this.position.cursor;
    const restoring = new Set(pending);
    const buckets = new Map<string, Sample[]>();
    const newSkips = new SkipReport();
    const items = this.source.items({ seed: this.seed, epoch, shuffle: this.shuffle, from: cursor, extra: pending });

    for await (const result of prefetchOrdered(items, (item) => this.process(item, epoch), this.prefetch)) {
      const restored = restoring.delete(result.ordinal);
      if (!restored) cursor = result.ordinal + 1;
      if ('skip' in result) {
        this.addSkip(result.skip, newSkips);
        continue;
      }
      const { sample } = result;
      const key = `${sample.height}x${sample.width}`;
      const bucket = buckets.get(key) ?? [];
      bucket.push(sample);
      buckets.set(key, bucket);
      if (bucket.length < this.batchSize) continue;
      if (restored) throw new DataError(`DataLoader: resume state has ${bucket.length} pending items in bucket ${key}, more than batchSize - 1 (${this.batchSize - 1})`);
      buckets.delete(key);
      this.position = { epoch, cursor, pending: pendingOrdinals(buckets) };
      yield this.makeBatch(bucket, epoch);
    }

    // The stream is over: partly-filled buckets go out in the order their first item arrived.
    const leftovers = [...buckets.entries()].sort(([, a], [, b]) => a[0]!.ordinal - b[0]!.ordinal);
    for (let i = 0; i < leftovers.length; i++) {
      const [key, bucket] = leftovers[i]!;
      buckets.delete(key);
      const last = i === leftovers.length - 1;
      this.position = last ? { epoch: epoch + 1, cursor: 0, pending: [] } : { epoch, cursor, pending: pendingOrdinals(buckets) };
      yield this.makeBatch(bucket, epoch);
    }
    this.position = { epoch: epoch + 1, cursor: 0, pending: [] };
    if (newSkips.total > 0) this.log?.(`DataLoader epoch ${epoch}: ${newSkips.summary()}`);
  }

  /** Batches across epochs, `epochs` of them (default: without end). */
  async *batches(epochs = Infinity): AsyncGenerator<Batch> {
    for (let n = 0; n < epochs; n++) {
      const fresh = this.position.cursor === 0 && this.position.pending.length === 0;
      let count = 0;
      for await (const batch of this.epoch()) {
        count += 1;
        yield batch;
      }
      if (fresh && count === 0) {
        throw new DataError(`DataLoader: ${this.source.description} gave no usable samples in a whole epoch\n${this.report.summary()}`);
      }
    }
  }

  /** The skip report as text (also returned as an object in `report`). */
  summary(): string {
    return this.report.summary();
  }

  private async process(item: SourceItem, epoch: number): Promise<Processed> {
    if ('skip' in item) return item;
    const { record, ordinal } = item;
    try {
      const loaded = await record.load();
      const image = await decodeImage(loaded.image, record.file, (info) => this.targetSize(info), this.decode);
      const caption = loaded.captions.length === 1 ? loaded.captions[0]! : loaded.captions[indexAt(this.seed, STREAM_CAPTION, ordinal, epoch, loaded.captions.length)]!;
      const pixels = rgbToCHW(image.pixels, image.height, image.width);
      return { ordinal, sample: { ordinal, key: record.key, caption, score: loaded.score ?? null, pixels, height: image.height, width: image.width } };
    } catch (error) {
      return { ordinal, skip: skipFromError(error) };
    }
  }

  private targetSize(info: ImageInfo): TargetSize {
    const r = this.resolution;
    if ('buckets' in r) return closestBucket(r.buckets, info.height, info.width);
    if ('size' in r) return { width: r.size, height: r.size };
    return { width: r.width, height: r.height };
  }

  private makeBatch(samples: readonly Sample[], epoch: number): Batch {
    const { height, width } = samples[0]!;
    const per = 3 * height * width;
    const data = new Float32Array(samples.length * per);
    samples.forEach((s, i) => data.set(s.pixels, i * per));
    return {
      images: Tensor.fromHost(data, [samples.length, 3, height, width], 'float32', this.device),
      captions: samples.map((s) => s.caption),
      keys: samples.map((s) => s.key),
      scores: samples.map((s) => s.score),
      height,
      width,
      epoch,
      state: this.state,
    };
  }

  private addSkip(entry: SkipEntry, epochReport: SkipReport): void {
    if (this.report.add(entry)) epochReport.add(entry);
    this.onSkip?.(entry);
  }

  private reportIndexSkips(): void {
    if (this.indexSkipsReported) return;
    this.indexSkipsReported = true;
    const fresh = new SkipReport();
    for (const entry of this.source.indexSkips) this.addSkip(entry, fresh);
    if (fresh.total > 0) this.log?.(`DataLoader (listing ${this.source.description}): ${fresh.summary()}`);
  }

  private checkResume(state: LoaderState): { epoch: number; cursor: number; pending: number[] } {
    const bad = (field: string, value: unknown, expected: string): DataError =>
      new DataError(`DataLoader: resume.${field} is ${JSON.stringify(value)}, expected ${expected}`);
    if (state.source !== this.source.description) throw bad('source', state.source, JSON.stringify(this.source.description));
    if (state.seed !== this.seed) throw bad('seed', state.seed, String(this.seed));
    if (state.shuffle !== this.shuffle) throw bad('shuffle', state.shuffle, String(this.shuffle));
    if (!Number.isInteger(state.epoch) || state.epoch < 0) throw bad('epoch', state.epoch, 'a non-negative integer');
    if (!Number.isInteger(state.cursor) || state.cursor < 0) throw bad('cursor', state.cursor, 'a non-negative integer');
    const pending = [...state.pending];
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i]!;
      if (!Number.isInteger(p) || p < 0 || p >= state.cursor || (i > 0 && p <= pending[i - 1]!)) {
        throw bad('pending', state.pending, `ascending integers below cursor ${state.cursor}`);
      }
    }
    return { epoch: state.epoch, cursor: state.cursor, pending };
  }
}

function pendingOrdinals(buckets: ReadonlyMap<string, readonly Sample[]>): number[] {
  const out: number[] = [];
  for (const bucket of buckets.values()) for (const s of bucket) out.push(s.ordinal);
  return out.sort((a, b) => a - b);
}

function checkResolution(r: LoaderResolution): LoaderResolution {
  const positive = (name: string, v: number): void => {
    if (!Number.isInteger(v) || v < 1) throw new DataError(`DataLoader: resolution.${name} must be a positive integer, got ${v}`);
  };
  if ('buckets' in r) {
    if (r.buckets.length === 0) throw new DataError('DataLoader: resolution.buckets is empty');
  } else if ('size' in r) positive('size', r.size);
  else {
    positive('height', r.height);
    positive('width', r.width);
  }
  return r;
}
