import type { DType } from '../../tensor/dtype.js';

/**
 * A tensor as stored on disk: element type, shape, and exactly numel * itemSize bytes in
 * little-endian order. Readers return `data` as its own ArrayBuffer at byte offset 0, so it can
 * be viewed with `viewHost` without a copy whatever the dtype's alignment.
 */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  byteLength: number;
}

/** What a single file and a sharded checkpoint both offer, so loaders need not care which. */
export interface TensorSource {
  /** The .safetensors file, or the .index.json of a sharded checkpoint. */
  readonly path: string;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  read(name: string): RawTensor;
  readAsync(name: string): Promise<RawTensor>;
  close(): void;
}

/** Tensors to write, in the caller's order (sharding keeps that order). */
export type TensorMapLike = ReadonlyMap<string, RawTensor> | Readonly<Record<string, RawTensor>>;

export function tensorEntries(tensors: TensorMapLike): [string, RawTensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}
