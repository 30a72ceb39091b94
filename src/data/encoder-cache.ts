/**
 * A cache of encoder outputs per sample — text embeddings from T5, VAE latents — so training
 * need not run the frozen encoders every epoch. Stored as safetensors shards plus a Hugging
 * Face style index (`<base>.safetensors.index.json`), written shard by shard as entries come
 * in, so a cache larger than memory can be built; it opens with ShardedSafetensors.
 *
 * Tensor names are `<field>/<sample key>`, e.g. `latent/images/0001.png`.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import { ShardedSafetensors, shardIndexName, writeSafetensors, type RawTensor } from '../io/safetensors/index.js';
import { viewHost } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { DataError } from './errors.js';

export interface EncoderCacheWriterOptions {
  /** File name stem (default 'cache'). */
  baseName?: string;
  /** Data bytes per shard before a new one is started (default 1 GiB). */
  maxShardBytes?: number;
}

const FIELD = /^[A-Za-z0-9_.-]+$/;

function tensorName(field: string, key: string): string {
  if (!FIELD.test(field)) throw new DataError(`encoder cache: field '${field}' must match ${FIELD}`);
  if (key.length === 0) throw new DataError('encoder cache: sample key must not be empty');
  return `${field}/${key}`;
}

export function tensorToRaw(tensor: Tensor): RawTensor {
  const host = tensor.toHost();
  const data = new Uint8Array(host.byteLength);
  data.set(new Uint8Array(host.buffer, host.byteOffset, host.byteLength));
  return { dtype: tensor.dtype, shape: [...tensor.shape], data };
}

export function rawToTensor(raw: RawTensor, device = 'cpu'): Tensor {
  const numel = raw.shape.reduce((a, b) => a * b, 1);
  return Tensor.fromHost(viewHost(raw.dtype, raw.data.buffer, raw.data.byteOffset, numel), raw.shape, raw.dtype, device);
}

export class EncoderCacheWriter {
  readonly dir: string;
  readonly baseName: string;
  readonly maxShardBytes: number;
  private current = new Map<string, RawTensor>();
  private currentBytes = 0;
  private readonly weightMap = new Map<string, string>();
  private readonly shardFiles: string[] = [];
  private totalSize = 0;
  private finished = false;

  constructor(dir: string, options: EncoderCacheWriterOptions = {}) {
    this.dir = dir;
    this.baseName = options.baseName ?? 'cache';
    this.maxShardBytes = options.maxShardBytes ?? 1 << 30;
    if (!Number.isSafeInteger(this.maxShardBytes) || this.maxShardBytes < 1) {
      throw new DataError(`EncoderCacheWriter: maxShardBytes must be a positive integer, got ${this.maxShardBytes}`);
    }
    fs.mkdirSync(dir, { recursive: true });
  }

  /** Adds one sample's outputs, e.g. add('img/1.png', {latent, text_embedding}). */
  async add(key: string, outputs: Readonly<Record<string, Tensor>>): Promise<void> {
    if (this.finished) throw new DataError('EncoderCacheWriter.add: the cache is already finished');
    for (const [field, tensor] of Object.entries(outputs)) {
      const name = tensorName(field, key);
      if (this.weightMap.has(name) || this.current.has(name)) throw new DataError(`EncoderCacheWriter.add: '${name}' was already added`);
      const raw = tensorToRaw(tensor);
      if (this.current.size > 0 && this.currentBytes + raw.data.byteLength > this.maxShardBytes) await this.flush();
      this.current.set(name, raw);
      this.currentBytes += raw.data.byteLength;
    }
  }

  /** Writes the last shard and the index; returns the index path. */
  async finish(): Promise<string> {
    if (this.finished) throw new DataError('EncoderCacheWriter.finish: called twice');
    if (this.current.size > 0 || this.shardFiles.length === 0) await this.flush();
    this.finished = true;
    const names = [...this.weightMap.keys()].sort();
    const index = { metadata: { total_size: this.totalSize, format: 'dimba-encoder-cache' }, weight_map: Object.fromEntries(names.map((n) => [n, this.weightMap.get(n)!])) };
    const indexPath = join(this.dir, shardIndexName(this.baseName));
    await fs.promises.writeFile(`${indexPath}.tmp`, JSON.stringify(index, null, 2) + '\n');
    await fs.promises.rename(`${indexPath}.tmp`, indexPath);
    return indexPath;
  }

  private async flush(): Promise<void> {
    // Shard count is unknown while streaming, so shards are numbered without the "-of-N" part.
    const file = `${this.baseName}-${String(this.shardFiles.length + 1).padStart(5, '0')}.safetensors`;
    await writeSafetensors(join(this.dir, file), this.current);
    for (const name of this.current.keys()) this.weightMap.set(name, file);
    this.shardFiles.push(file);
    this.totalSize += this.currentBytes;
    this.current = new Map();
    this.currentBytes = 0;
  }
}

export class EncoderCache {
  private readonly store: ShardedSafetensors;

  private constructor(store: ShardedSafetensors) {
    this.store = store;
  }

  static async open(dir: string, baseName = 'cache'): Promise<EncoderCache> {
    return new EncoderCache(await ShardedSafetensors.open(join(dir, shardIndexName(baseName))));
  }

  has(key: string, field: string): boolean {
    return this.store.has(tensorName(field, key));
  }

  /** Sample keys that have `field`. */
  keys(field: string): string[] {
    const prefix = `${field}/`;
    if (!FIELD.test(field)) throw new DataError(`EncoderCache.keys: field '${field}' must match ${FIELD}`);
    return this.store.names().filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
  }

  async get(key: string, field: string, device = 'cpu'): Promise<Tensor> {
    const name = tensorName(field, key);
    if (!this.store.has(name)) throw new DataError(`EncoderCache.get: no '${field}' cached for sample '${key}'`);
    return rawToTensor(await this.store.readAsync(name), device);
  }

  /** The `field` of several samples stacked into [keys.length, ...shape]; all must share shape and dtype. */
  async batch(keys: readonly string[], field: string, device = 'cpu'): Promise<Tensor> {
    if (keys.length === 0) throw new DataError('EncoderCache.batch: keys is empty');
    const raws: RawTensor[] = [];
    for (const key of keys) {
      const name = tensorName(field, key);
      if (!this.store.has(name)) throw new DataError(`EncoderCache.batch: no '${field}' cached for sample '${key}'`);
      raws.push(await this.store.readAsync(name));
    }
    const first = raws[0]!;
    raws.forEach((r, i) => {
      if (r.dtype !== first.dtype || r.shape.join(',') !== first.shape.join(',')) {
        throw new DataError(`EncoderCache.batch: '${field}' of '${keys[i]}' is ${r.dtype}[${r.shape.join(', ')}], but of '${keys[0]}' ${first.dtype}[${first.shape.join(', ')}]`);
      }
    });
    const data = new Uint8Array(raws.length * first.data.byteLength);
    raws.forEach((r, i) => data.set(r.data, i * first.data.byteLength));
    return rawToTensor({ dtype: first.dtype, shape: [raws.length, ...first.shape], data }, device);
  }

  close(): void {
    this.store.close();
  }
}
