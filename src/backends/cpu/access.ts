/**
 * Reading and writing CPU tensors as plain numbers. Kernels compute on Float32Array (float32 and
 * half types) or Float64Array (float64, integers, bool) and these helpers handle strides, half
 * decoding/encoding (round to nearest even) and integer conversion at the edges.
 */
import type { Tensor } from '../../tensor/tensor.js';
import type { HostArray } from '../../tensor/dtype.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../tensor/half.js';
import { hostOf } from './storage.js';
import { forEachRow } from './strided.js';

export type NumArray = Float32Array | Float64Array;

/** Calls fn(storageOffset, logicalIndex) for every element in row-major logical order. */
export function forEachOffset(shape: readonly number[], strides: readonly number[], offset: number, fn: (off: number, i: number) => void): void {
  const nd = shape.length;
  let n = 1;
  for (const s of shape) n *= s;
  if (n === 0) return;
  if (nd === 0) { fn(offset, 0); return; }
  const idx = new Array<number>(nd).fill(0);
  const last = nd - 1;
  const lastSize = shape[last]!;
  const lastStride = strides[last]!;
  let base = offset;
  for (let i = 0; i < n;) {
    for (let j = 0, off = base; j < lastSize; j++, off += lastStride) fn(off, i++);
    // Advance the odometer over the outer dims.
    let d = last - 1;
    while (d >= 0) {
      idx[d]!++;
      base += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      base -= strides[d]! * shape[d]!;
      idx[d] = 0;
      d--;
    }
  }
}

function decoder(t: Tensor, data: HostArray): (off: number) => number {
  if (data instanceof BigInt64Array) return (off) => Number(data[off]!);
  if (t.dtype === 'bfloat16') return (off) => bf16BitsToF32(data[off] as number);
  if (t.dtype === 'float16') return (off) => f16BitsToF32(data[off] as number);
  return (off) => data[off] as number;
}

function encoder(t: Tensor, data: HostArray): (off: number, v: number) => void {
  if (data instanceof BigInt64Array) return (off, v) => { data[off] = BigInt(Math.trunc(v)); };
  switch (t.dtype) {
    case 'bfloat16': return (off, v) => { data[off] = f32ToBf16Bits(v); };
    case 'float16': return (off, v) => { data[off] = f32ToF16Bits(v); };
    case 'bool': return (off, v) => { data[off] = v !== 0 ? 1 : 0; };
    case 'int32': return (off, v) => { data[off] = Math.trunc(v); };
    default: return (off, v) => { data[off] = v; };
  }
}

/** The number array type kernels compute in for this dtype. */
export function computeArray(t: Tensor, n: number): NumArray {
  return t.dtype === 'float32' || t.dtype === 'bfloat16' || t.dtype === 'float16' ? new Float32Array(n) : new Float64Array(n);
}

/**
 * The elements of t in logical order as numbers. Contiguous float32/float64 tensors are returned
 * as a view of their storage (callers must not write to it); everything else is gathered.
 */
export function readNumbers(t: Tensor): NumArray {
  const data = hostOf(t);
  const n = t.numel;
  if (t.isContiguous && (data instanceof Float32Array || data instanceof Float64Array)) {
    return data.subarray(t.offset, t.offset + n);
  }
  const out = computeArray(t, n);
  if (data instanceof Float32Array || data instanceof Float64Array) {
    let at = 0;
    forEachRow(t.shape, [t.strides], [t.offset], (starts, n, inner) => {
      const s = inner[0]!;
      for (let j = 0, i = starts[0]!; j < n; j++, i += s) out[at++] = data[i]!;
    });
  } else {
    const get = decoder(t, data);
    forEachOffset(t.shape, t.strides, t.offset, (off, i) => { out[i] = get(off); });
  }
  return out;
}

/** Writes values (logical order) into t, converting to t's dtype. */
export function writeNumbers(t: Tensor, values: ArrayLike<number>): void {
  const data = hostOf(t);
  if (t.isContiguous && (data instanceof Float32Array || data instanceof Float64Array)) {
    const same = ArrayBuffer.isView(values) && values.buffer === data.buffer && values.byteOffset === t.offset * data.BYTES_PER_ELEMENT;
    if (!same) data.set(values, t.offset);
    return;
  }
  if (data instanceof Float32Array || data instanceof Float64Array) {
    // Strided float storage: row by row along the innermost stride (as readNumbers gathers),
    // rather than one offset computation and encoder call per element.
    let at = 0;
    forEachRow(t.shape, [t.strides], [t.offset], (starts, n, inner) => {
      const s = inner[0]!;
      for (let j = 0, i = starts[0]!; j < n; j++, i += s) data[i] = values[at++]!;
    });
    return;
  }
  const put = encoder(t, data);
  forEachOffset(t.shape, t.strides, t.offset, (off, i) => put(off, values[i]!));
}

/**
 * Runs `fn` on an array it should fill with t's values: t's own storage when t is a contiguous
 * float32/float64 tensor, otherwise a scratch array that is then converted into t.
 */
export function withOutput(t: Tensor, fn: (dst: NumArray) => void): void {
  const data = hostOf(t);
  if (t.isContiguous && (data instanceof Float32Array || data instanceof Float64Array)) {
    fn(data.subarray(t.offset, t.offset + t.numel));
    return;
  }
  const tmp = computeArray(t, t.numel);
  fn(tmp);
  writeNumbers(t, tmp);
}

/**
 * Storage elements [t.offset, t.offset + extent) as numbers in their physical layout (for kernels
 * that follow strides themselves, like matmul). Float storage is returned as a view.
 */
export function readRange(t: Tensor, extent: number): NumArray {
  const data = hostOf(t);
  if (data instanceof Float32Array || data instanceof Float64Array) return data.subarray(t.offset, t.offset + extent);
  const out = computeArray(t, extent);
  const get = decoder(t, data);
  for (let i = 0; i < extent; i++) out[i] = get(t.offset + i);
  return out;
}

/** Index values of an int32/int64 tensor as numbers, checked against `size`. */
export function readIndices(index: Tensor, size: number, op: string): Int32Array {
  const raw = readNumbers(index);
  const out = new Int32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    let v = raw[i]!;
    if (v < 0) v += size;
    if (v < 0 || v >= size || !Number.isInteger(v)) throw new RangeError(`${op}: index ${raw[i]} is out of range for size ${size}`);
    out[i] = v;
  }
  return out;
}
