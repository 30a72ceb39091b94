/**
 * Sharded checkpoints as Hugging Face writes them: shard files `<base>-00001-of-00003.safetensors`
 * and an index `<base>.safetensors.index.json`:
 *
 *   { "metadata": { "total_size": <data bytes of all tensors> },
 *     "weight_map": { "<tensor name>": "<shard file name>", ... } }
 *
 * Shard names in the index are relative to the index's directory.
 */
import fs from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { SafetensorsError, ioError } from './errors.js';
import { writeAtomic, writeAtomicSync } from './fileio.js';
import { MAX_HEADER_BYTES } from './header.js';
import { SafetensorsFile } from './reader.js';
import { tensorEntries, type RawTensor, type TensorInfo, type TensorMapLike, type TensorSource } from './types.js';
import { planFile, type FilePlan } from './writer.js';

export interface ShardedWriteOptions {
  /** Data bytes per shard; a tensor larger than this gets a shard of its own. */
  maxShardBytes: number;
  /** `__metadata__` written into every shard (e.g. {format: 'pt'}). */
  metadata?: Readonly<Record<string, string>>;
}

export interface ShardedWriteResult {
  indexPath: string;
  /** Shard file names, in order, relative to the directory. */
  shardFiles: string[];
  totalSize: number;
}

interface ShardPlan {
  file: string;
  names: string[];
  plan: FilePlan;
}

/** The index file name for a base name: "model" → "model.safetensors.index.json". */
export function shardIndexName(baseName: string): string {
  return `${stripExtension(baseName)}.safetensors.index.json`;
}

function stripExtension(baseName: string): string {
  return baseName.endsWith('.safetensors') ? baseName.slice(0, -'.safetensors'.length) : baseName;
}

/**
 * Packs tensors into shards greedily in the caller's order (state-dict order, as Hugging Face
 * does, so layers stay together) and plans every shard before anything is written, so invalid
 * input leaves no files behind.
 */
function planShards(dir: string, baseName: string, tensors: TensorMapLike, options: ShardedWriteOptions): ShardPlan[] {
  const base = stripExtension(baseName);
  const indexPath = join(dir, shardIndexName(base));
  if (base.length === 0 || base !== basename(base)) {
    throw new SafetensorsError(indexPath, `base name '${baseName}' must be a plain file name`);
  }
  const { maxShardBytes } = options;
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) {
    throw new SafetensorsError(indexPath, `maxShardBytes must be a positive integer, got ${maxShardBytes}`);
  }

  const groups: [string, RawTensor][][] = [];
  let current: [string, RawTensor][] = [];
  let currentBytes = 0;
  for (const entry of tensorEntries(tensors)) {
    const bytes = entry[1].data.byteLength;
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(entry);
    currentBytes += bytes;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);

  const count = String(groups.length).padStart(5, '0');
  return groups.map((group, i) => {
    const file = `${base}-${String(i + 1).padStart(5, '0')}-of-${count}.safetensors`;
    return { file, names: group.map(([name]) => name), plan: planFile(join(dir, file), group, options.metadata) };
  });
}

function encodeIndex(shards: readonly ShardPlan[]): { bytes: Uint8Array; totalSize: number } {
  const totalSize = shards.reduce((sum, s) => sum + s.plan.dataBytes, 0);
  const weightMap = shards.flatMap((s) => s.names.map((name): [string, string] => [name, s.file]));
  weightMap.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const index = { metadata: { total_size: totalSize }, weight_map: Object.fromEntries(weightMap) };
  return { bytes: new TextEncoder().encode(JSON.stringify(index, null, 2) + '\n'), totalSize };
}

/**
 * Writes the shards, then the index. Each file is written atomically and the index goes last,
 * so a reader never finds an index naming shards that are still being written.
 */
export async function writeShardedSafetensors(
  dir: string,
  baseName: string,
  tensors: TensorMapLike,
  options: ShardedWriteOptions,
): Promise<ShardedWriteResult> {
  const shards = planShards(dir, baseName, tensors, options);
  for (const shard of shards) await writeAtomic(join(dir, shard.file), shard.plan.chunks);
  const { bytes, totalSize } = encodeIndex(shards);
  const indexPath = join(dir, shardIndexName(baseName));
  await writeAtomic(indexPath, [bytes]);
  return { indexPath, shardFiles: shards.map((s) => s.file), totalSize };
}

export function writeShardedSafetensorsSync(
  dir: string,
  baseName: string,
  tensors: TensorMapLike,
  options: ShardedWriteOptions,
): ShardedWriteResult {
  const shards = planShards(dir, baseName, tensors, options);
  for (const shard of shards) writeAtomicSync(join(dir, shard.file), shard.plan.chunks);
  const { bytes, totalSize } = encodeIndex(shards);
  const indexPath = join(dir, shardIndexName(baseName));
  writeAtomicSync(indexPath, [bytes]);
  return { indexPath, shardFiles: shards.map((s) => s.file), totalSize };
}

/** A sharded checkpoint behind the same interface as one file. Shards are opened on first use. */
export class ShardedSafetensors implements TensorSource {
  /** The index file. */
  readonly path: string;
  /** The index's "metadata" object as written (Hugging Face puts total_size there). */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Tensor name → absolute shard path. */
  private readonly weightMap: Map<string, string>;
  private readonly shards = new Map<string, SafetensorsFile>();
  private readonly pending = new Map<string, Promise<SafetensorsFile>>();
  private closed = false;

  private constructor(path: string, metadata: Record<string, unknown>, weightMap: Map<string, string>) {
    this.path = path;
    this.metadata = metadata;
    this.weightMap = weightMap;
  }

  static openSync(indexPath: string): ShardedSafetensors {
    let text: string;
    try {
      checkIndexSize(indexPath, fs.statSync(indexPath).size);
      text = fs.readFileSync(indexPath, 'utf8');
    } catch (cause) {
      throw cause instanceof SafetensorsError ? cause : ioError(indexPath, 'read the index', cause);
    }
    const { metadata, weightMap } = parseIndex(indexPath, text);
    for (const shard of new Set(weightMap.values())) {
      if (!fs.existsSync(shard)) throw missingShard(indexPath, shard);
    }
    return new ShardedSafetensors(indexPath, metadata, weightMap);
  }

  static async open(indexPath: string): Promise<ShardedSafetensors> {
    let text: string;
    try {
      checkIndexSize(indexPath, (await fs.promises.stat(indexPath)).size);
      text = await fs.promises.readFile(indexPath, 'utf8');
    } catch (cause) {
      throw cause instanceof SafetensorsError ? cause : ioError(indexPath, 'read the index', cause);
    }
    const { metadata, weightMap } = parseIndex(indexPath, text);
    for (const shard of new Set(weightMap.values())) {
      const exists = await fs.promises.access(shard).then(() => true, () => false);
      if (!exists) throw missingShard(indexPath, shard);
    }
    return new ShardedSafetensors(indexPath, metadata, weightMap);
  }

  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** Absolute path of the shard holding `name`. */
  shardOf(name: string): string {
    const shard = this.weightMap.get(name);
    if (shard === undefined) {
      throw new SafetensorsError(this.path, `no tensor named '${name}' in the weight_map (${this.weightMap.size} tensors)`);
    }
    return shard;
  }

  info(name: string): TensorInfo {
    return this.shardSync(this.shardOf(name)).info(name);
  }

  read(name: string): RawTensor {
    return this.shardSync(this.shardOf(name)).read(name);
  }

  async readAsync(name: string): Promise<RawTensor> {
    const shard = this.shardOf(name);
    return (await this.shardAsync(shard)).readAsync(name);
  }

  /** Closes every opened shard; calling it twice is harmless. */
  close(): void {
    this.closed = true;
    for (const file of this.shards.values()) file.close();
    this.shards.clear();
  }

  private shardSync(shardPath: string): SafetensorsFile {
    this.checkOpen();
    const existing = this.shards.get(shardPath);
    if (existing !== undefined) return existing;
    return this.adopt(shardPath, SafetensorsFile.openSync(shardPath));
  }

  private async shardAsync(shardPath: string): Promise<SafetensorsFile> {
    this.checkOpen();
    const existing = this.shards.get(shardPath);
    if (existing !== undefined) return existing;
    // Concurrent readAsync calls on one shard share a single open.
    let opening = this.pending.get(shardPath);
    if (opening === undefined) {
      opening = SafetensorsFile.open(shardPath);
      this.pending.set(shardPath, opening);
    }
    try {
      return this.adopt(shardPath, await opening);
    } finally {
      this.pending.delete(shardPath);
    }
  }

  /**
   * Registers a freshly opened shard after checking that it holds every tensor the index maps
   * to it. A sync read may have opened the same shard while an async open was in flight; the
   * first one registered wins and the duplicate is closed.
   */
  private adopt(shardPath: string, file: SafetensorsFile): SafetensorsFile {
    if (this.closed) {
      file.close();
      this.checkOpen();
    }
    const existing = this.shards.get(shardPath);
    if (existing !== undefined) {
      // Awaiters of one shared open get the same file; only a true duplicate is closed.
      if (existing !== file) file.close();
      return existing;
    }
    for (const [name, mapped] of this.weightMap) {
      if (mapped === shardPath && !file.has(name)) {
        file.close();
        throw new SafetensorsError(
          this.path,
          `weight_map puts tensor '${name}' in ${relative(dirname(this.path), shardPath)}, but that shard has no such tensor`,
        );
      }
    }
    this.shards.set(shardPath, file);
    return file;
  }

  private checkOpen(): void {
    if (this.closed) throw new SafetensorsError(this.path, 'sharded checkpoint is already closed');
  }
}

function checkIndexSize(indexPath: string, size: number): void {
  if (size > MAX_HEADER_BYTES) {
    throw new SafetensorsError(indexPath, `index is ${size} bytes, more than the ${MAX_HEADER_BYTES}-byte limit`);
  }
}

function missingShard(indexPath: string, shard: string): SafetensorsError {
  return new SafetensorsError(indexPath, `shard file ${shard} named in weight_map does not exist (missing shard)`);
}

function parseIndex(indexPath: string, text: string): { metadata: Record<string, unknown>; weightMap: Map<string, string> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new SafetensorsError(indexPath, `index is not valid JSON: ${reason}`, { cause });
  }
  if (!isObject(parsed)) throw new SafetensorsError(indexPath, 'index JSON must be an object');
  const rawMap = parsed['weight_map'];
  if (!isObject(rawMap)) throw new SafetensorsError(indexPath, 'index has no "weight_map" object');
  const metadata = parsed['metadata'] ?? {};
  if (!isObject(metadata)) throw new SafetensorsError(indexPath, 'index "metadata" must be an object');

  const dir = resolve(dirname(indexPath));
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(rawMap)) {
    if (typeof shard !== 'string' || shard.length === 0) {
      throw new SafetensorsError(indexPath, `weight_map entry for '${name}' must be a shard file name`);
    }
    // A hostile index must not make us open files outside the checkpoint's directory.
    const shardPath = resolve(dir, shard);
    const inside = relative(dir, shardPath);
    if (isAbsolute(shard) || inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
      throw new SafetensorsError(indexPath, `weight_map entry for '${name}' points outside the index directory: ${shard}`);
    }
    weightMap.set(name, shardPath);
  }
  return { metadata, weightMap };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
