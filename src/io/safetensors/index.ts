/**
 * Safetensors checkpoints (https://github.com/huggingface/safetensors): single files and
 * Hugging Face style sharded checkpoints, read tensor by tensor as raw little-endian bytes.
 */
export { SafetensorsError } from './errors.js';
export type { RawTensor, TensorInfo, TensorMapLike, TensorSource } from './types.js';
export { MAX_HEADER_BYTES } from './header.js';
export { SafetensorsFile, readSafetensors } from './reader.js';
export { writeSafetensors, writeSafetensorsSync } from './writer.js';
export {
  ShardedSafetensors,
  shardIndexName,
  writeShardedSafetensors,
  writeShardedSafetensorsSync,
  type ShardedWriteOptions,
  type ShardedWriteResult,
} from './sharded.js';
