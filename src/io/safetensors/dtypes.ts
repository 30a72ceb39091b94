import type { DType } from '../../tensor/dtype.js';

/** Safetensors dtype names dimba can load, and the engine dtype each becomes. */
const SUPPORTED: Readonly<Record<string, DType>> = {
  F32: 'float32',
  F64: 'float64',
  BF16: 'bfloat16',
  F16: 'float16',
  I32: 'int32',
  I64: 'int64',
  BOOL: 'bool',
};

const TO_SAFETENSORS: Readonly<Record<DType, string>> = {
  float32: 'F32',
  float64: 'F64',
  bfloat16: 'BF16',
  float16: 'F16',
  int32: 'I32',
  int64: 'I64',
  bool: 'BOOL',
};

/**
 * Dtypes the format defines but the engine has no storage for. Listed so that such a file gets
 * "unsupported" (the file is fine, dimba is not) rather than "unknown" (the file is wrong).
 */
const UNSUPPORTED: ReadonlySet<string> = new Set([
  'U8', 'I8', 'U16', 'I16', 'U32', 'U64',
  'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64',
]);

export type DTypeLookup =
  | { kind: 'supported'; dtype: DType }
  | { kind: 'unsupported' }
  | { kind: 'unknown' };

export function lookupDType(name: string): DTypeLookup {
  if (Object.hasOwn(SUPPORTED, name)) return { kind: 'supported', dtype: SUPPORTED[name] };
  if (UNSUPPORTED.has(name)) return { kind: 'unsupported' };
  return { kind: 'unknown' };
}

export function safetensorsDTypeName(dtype: DType): string {
  return TO_SAFETENSORS[dtype];
}

export const SUPPORTED_DTYPE_NAMES: readonly string[] = Object.keys(SUPPORTED);
