/**
 * State dicts to and from safetensors files (src/io/safetensors), single-file or sharded the way
 * Hugging Face shards (`<base>-00001-of-0000N.safetensors` + `<base>.safetensors.index.json`).
 * Bytes are written as the host holds them, which the format requires to be little-endian.
 */
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import {
  SafetensorsFile, ShardedSafetensors, writeSafetensors, writeSafetensorsSync, writeShardedSafetensors,
  writeShardedSafetensorsSync, type RawTensor, type TensorSource,
} from '../io/safetensors/index.js';
import { cast } from '../ops/layout.js';
import { noGrad } from '../autograd/grad-mode.js';
import type { Device } from '../tensor/device.js';
import { isFloating, viewHost, itemSize, type DType } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

export interface SaveStateDictOptions {
  /** Split into shards of at most this many data bytes (a larger tensor gets its own shard). */
  maxShardBytes?: number;
  /** Cast floating tensors to this dtype on the way out (e.g. 'bfloat16' for release weights). */
  dtype?: DType;
}

export interface SavedStateDict {
  /** What loadStateDictFile takes: the .safetensors file, or the shard index. */
  path: string;
  /** Every file written. */
  files: string[];
}

export interface LoadStateDictFileOptions {
  /** Device of the returned tensors (default 'cpu'). */
  device?: string | Device;
  /** Cast floating tensors to this dtype (default: as stored). */
  dtype?: DType;
}

const INDEX_SUFFIX = '.index.json';

function checkEndianness(): void {
  if (os.endianness() !== 'LE') throw new Error('safetensors: this host is big-endian; safetensors data is little-endian and no byte swapping is implemented');
}

/** A Tensor as raw bytes (a copy; the host array is fresh from toHost()). */
export function toRawTensor(t: Tensor, dtype?: DType): RawTensor {
  const out = dtype && isFloating(t.dtype) && t.dtype !== dtype ? noGrad(() => cast(t, dtype)) : t;
  const host = out.toHost();
  return { dtype: out.dtype, shape: [...out.shape], data: new Uint8Array(host.buffer, host.byteOffset, host.byteLength) };
}

/** Raw bytes as a Tensor on `device`. */
export function fromRawTensor(raw: RawTensor, device: string | Device = 'cpu'): Tensor {
  const numel = raw.shape.reduce((p, d) => p * d, 1);
  // Typed-array views need an offset aligned to the item size; readers give offset 0, others may not.
  const bytes = raw.data.byteOffset % itemSize(raw.dtype) === 0 ? raw.data : raw.data.slice();
  return Tensor.fromHost(viewHost(raw.dtype, bytes.buffer, bytes.byteOffset, numel), raw.shape, raw.dtype, device);
}

function rawEntries(source: Module | ReadonlyMap<string, Tensor>, dtype: DType | undefined): Map<string, RawTensor> {
  checkEndianness();
  const map = source instanceof Module ? source.stateDict() : source;
  return new Map([...map].map(([name, t]): [string, RawTensor] => [name, toRawTensor(t, dtype)]));
}

/** `dir/model.safetensors` → ['dir', 'model'] for the sharded writer (an index path works too). */
function shardBase(path: string): [string, string] {
  const name = basename(path);
  return [dirname(path), name.endsWith(INDEX_SUFFIX) ? name.slice(0, -INDEX_SUFFIX.length) : name];
}

function withFormat(metadata: Readonly<Record<string, string>>): Record<string, string> {
  // Hugging Face loaders look for format=pt in files written from PyTorch state dicts.
  return { format: 'pt', ...metadata };
}

/**
 * Writes a module's stateDict() (or any name → tensor map) to `path`. With maxShardBytes, writes
 * shards and an index next to `path` and returns the index path. Files appear atomically.
 */
export async function saveStateDict(path: string, source: Module | ReadonlyMap<string, Tensor>,
  metadata: Readonly<Record<string, string>> = {}, options: SaveStateDictOptions = {}): Promise<SavedStateDict> {
  const tensors = rawEntries(source, options.dtype);
  if (options.maxShardBytes === undefined) {
    await writeSafetensors(path, tensors, withFormat(metadata));
    return { path, files: [path] };
  }
  const [dir, base] = shardBase(path);
  const result = await writeShardedSafetensors(dir, base, tensors, { maxShardBytes: options.maxShardBytes, metadata: withFormat(metadata) });
  return { path: result.indexPath, files: [...result.shardFiles.map((f) => join(dir, f)), result.indexPath] };
}

export function saveStateDictSync(path: string, source: Module | ReadonlyMap<string, Tensor>,
  metadata: Readonly<Record<string, string>> = {}, options: SaveStateDictOptions = {}): SavedStateDict {
  const tensors = rawEntries(source, options.dtype);
  if (options.maxShardBytes === undefined) {
    writeSafetensorsSync(path, tensors, withFormat(metadata));
    return { path, files: [path] };
  }
  const [dir, base] = shardBase(path);
  const result = writeShardedSafetensorsSync(dir, base, tensors, { maxShardBytes: options.maxShardBytes, metadata: withFormat(metadata) });
  return { path: result.indexPath, files: [...result.shardFiles.map((f) => join(dir, f)), result.indexPath] };
}

/** Opens a checkpoint for reading tensor by tensor: a shard index (`*.index.json`) or one file. */
export function openCheckpoint(path: string): TensorSource {
  return path.endsWith(INDEX_SUFFIX) ? ShardedSafetensors.openSync(path) : SafetensorsFile.openSync(path);
}

function toTensor(raw: RawTensor, options: LoadStateDictFileOptions): Tensor {
  const t = fromRawTensor(raw, options.device ?? 'cpu');
  const dtype = options.dtype;
  return dtype && isFloating(t.dtype) ? noGrad(() => cast(t, dtype)) : t;
}

/** Reads every tensor of a checkpoint (single file or shard index) into a name → Tensor map. */
export async function loadStateDictFile(path: string, options: LoadStateDictFileOptions = {}): Promise<Map<string, Tensor>> {
  checkEndianness();
  const source = path.endsWith(INDEX_SUFFIX) ? await ShardedSafetensors.open(path) : await SafetensorsFile.open(path);
  try {
    const out = new Map<string, Tensor>();
    for (const name of source.names()) out.set(name, toTensor(await source.readAsync(name), options));
    return out;
  } finally {
    source.close();
  }
}

export function loadStateDictFileSync(path: string, options: LoadStateDictFileOptions = {}): Map<string, Tensor> {
  checkEndianness();
  const source = openCheckpoint(path);
  try {
    return new Map(source.names().map((name) => [name, toTensor(source.read(name), options)]));
  } finally {
    source.close();
  }
}
