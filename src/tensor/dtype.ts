/**
 * Element types the engine knows. `float64` exists for the CPU backend's gradient checks
 * (finite differences need more precision than float32 gives); the model never uses it.
 *
 * Host storage per dtype: float32 → Float32Array, float64 → Float64Array,
 * bfloat16/float16 → Uint16Array of raw bits, int32 → Int32Array,
 * int64 → BigInt64Array, bool → Uint8Array (0 or 1).
 */
export type DType = 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int32' | 'int64' | 'bool';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int64', 'bool'];

export type HostArray = Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;

/** Bytes per element. */
export function itemSize(dtype: DType): number {
  switch (dtype) {
    case 'float64': case 'int64': return 8;
    case 'float32': case 'int32': return 4;
    case 'bfloat16': case 'float16': return 2;
    case 'bool': return 1;
  }
}

export function isFloating(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16' || dtype === 'float16';
}

/** Half-width float types, stored as raw 16-bit patterns on the host. */
export function isHalf(dtype: DType): dtype is 'bfloat16' | 'float16' {
  return dtype === 'bfloat16' || dtype === 'float16';
}

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && (DTYPES as readonly string[]).includes(value);
}

/** Allocates zeroed host storage of `numel` elements. */
export function allocHost(dtype: DType, numel: number): HostArray {
  switch (dtype) {
    case 'float32': return new Float32Array(numel);
    case 'float64': return new Float64Array(numel);
    case 'bfloat16': case 'float16': return new Uint16Array(numel);
    case 'int32': return new Int32Array(numel);
    case 'int64': return new BigInt64Array(numel);
    case 'bool': return new Uint8Array(numel);
  }
}

/** Views `bytes` (which must be aligned to the item size) as host storage of `dtype`. */
export function viewHost(dtype: DType, buffer: ArrayBufferLike, byteOffset: number, numel: number): HostArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer, byteOffset, numel);
    case 'float64': return new Float64Array(buffer, byteOffset, numel);
    case 'bfloat16': case 'float16': return new Uint16Array(buffer, byteOffset, numel);
    case 'int32': return new Int32Array(buffer, byteOffset, numel);
    case 'int64': return new BigInt64Array(buffer, byteOffset, numel);
    case 'bool': return new Uint8Array(buffer, byteOffset, numel);
  }
}

/** Result dtype of a binary arithmetic op (PyTorch-like promotion, simplified). */
export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  const rank: Record<DType, number> = { bool: 0, int32: 1, int64: 2, float16: 3, bfloat16: 3, float32: 4, float64: 5 };
  if ((a === 'float16' && b === 'bfloat16') || (a === 'bfloat16' && b === 'float16')) return 'float32';
  return rank[a] >= rank[b] ? a : b;
}
