/** Tensor constructors: from JS data, constants, ranges. */
import { allocHost, isHalf, type DType, type HostArray } from '../tensor/dtype.js';
import type { Device } from '../tensor/device.js';
import { numelOf, type Shape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { defaultDevice, getBackend } from '../backends/registry.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../tensor/half.js';

export interface CreateOptions {
  dtype?: DType;
  device?: string | Device;
  requiresGrad?: boolean;
}

export type NestedNumbers = number | boolean | readonly NestedNumbers[];

function finish(t: Tensor, options: CreateOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad_(true);
  return t;
}

export function empty(shape: Shape, options: CreateOptions = {}): Tensor {
  return finish(Tensor.empty(shape, options.dtype ?? 'float32', getBackend(options.device ?? defaultDevice())), options);
}

export function full(shape: Shape, value: number, options: CreateOptions = {}): Tensor {
  const t = Tensor.empty(shape, options.dtype ?? 'float32', getBackend(options.device ?? defaultDevice()));
  if (t.numel > 0) t.backend.kernels.fill(t, value);
  return finish(t, options);
}

export function zeros(shape: Shape, options: CreateOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: Shape, options: CreateOptions = {}): Tensor {
  return full(shape, 1, options);
}

export function zerosLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, device: t.device, ...options });
}

export function onesLike(t: Tensor, options: CreateOptions = {}): Tensor {
  return full(t.shape, 1, { dtype: t.dtype, device: t.device, ...options });
}

export function fullLike(t: Tensor, value: number, options: CreateOptions = {}): Tensor {
  return full(t.shape, value, { dtype: t.dtype, device: t.device, ...options });
}

/** A 0-d tensor holding `value`, matching `like`'s device (and dtype unless given). */
export function scalarLike(like: Tensor, value: number, dtype: DType = like.dtype): Tensor {
  return full([], value, { dtype, device: like.device });
}

/** Values start, start+step, ... below end (like torch.arange). */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  const [lo, hi] = end === undefined ? [0, start] : [start, end];
  if (step === 0) throw new RangeError('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((hi - lo) / step));
  const allInts = Number.isInteger(lo) && Number.isInteger(step);
  const t = Tensor.empty([n], options.dtype ?? (allInts ? 'int32' : 'float32'), getBackend(options.device ?? defaultDevice()));
  if (n > 0) t.backend.kernels.arange(t, lo, step);
  return finish(t, options);
}

export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  const step = steps > 1 ? (end - start) / (steps - 1) : 0;
  const t = Tensor.empty([steps], options.dtype ?? 'float32', getBackend(options.device ?? defaultDevice()));
  if (steps > 0) t.backend.kernels.arange(t, start, step);
  return finish(t, options);
}

function inferNestedShape(data: NestedNumbers): number[] {
  const shape: number[] = [];
  let cur: NestedNumbers = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0] as NestedNumbers;
  }
  return shape;
}

function flattenNested(data: NestedNumbers, shape: readonly number[], depth: number, out: number[]): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new TypeError('tensor: ragged nested array (too deep)');
    out.push(typeof data === 'boolean' ? Number(data) : (data as number));
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new TypeError(`tensor: ragged nested array at depth ${depth}: expected length ${shape[depth]}`);
  }
  for (const item of data) flattenNested(item, shape, depth + 1, out);
}

/** Converts JS numbers to host storage of `dtype` (rounding to nearest-even for half types). */
export function numbersToHost(values: ArrayLike<number>, dtype: DType): HostArray {
  const host = allocHost(dtype, values.length);
  if (host instanceof BigInt64Array) {
    for (let i = 0; i < values.length; i++) host[i] = BigInt(Math.trunc(values[i]!));
  } else if (isHalf(dtype)) {
    const enc = dtype === 'bfloat16' ? f32ToBf16Bits : f32ToF16Bits;
    for (let i = 0; i < values.length; i++) host[i] = enc(values[i]!);
  } else if (dtype === 'bool') {
    for (let i = 0; i < values.length; i++) host[i] = values[i] ? 1 : 0;
  } else {
    for (let i = 0; i < values.length; i++) host[i] = values[i]!;
  }
  return host;
}

/**
 * Builds a tensor from nested arrays, a flat array plus `shape`, or a typed array.
 * Typed arrays of the matching host type are taken bit for bit (Uint16Array as half bits).
 */
export function tensor(data: NestedNumbers | HostArray | readonly number[], options: CreateOptions & { shape?: Shape } = {}): Tensor {
  const device = options.device ?? defaultDevice();
  if (ArrayBuffer.isView(data)) {
    const dtype = options.dtype ?? defaultDTypeFor(data);
    const shape = options.shape ?? [data.length];
    const hostOk = allocHost(dtype, 0).constructor === data.constructor;
    const host = hostOk ? data : numbersToHost(Array.from(data as ArrayLike<number>, Number), dtype);
    return finish(Tensor.fromHost(host, shape, dtype, device), options);
  }
  const shape = options.shape ?? inferNestedShape(data);
  const flat: number[] = [];
  if (options.shape) flattenNested(data, [numelOf(shape)], 0, flat);
  else flattenNested(data, shape, 0, flat);
  const isBool = typeof firstLeaf(data) === 'boolean';
  const dtype = options.dtype ?? (isBool ? 'bool' : 'float32');
  return finish(Tensor.fromHost(numbersToHost(flat, dtype), shape, dtype, device), options);
}

function firstLeaf(data: NestedNumbers): NestedNumbers {
  let cur = data;
  while (Array.isArray(cur) && cur.length > 0) cur = cur[0] as NestedNumbers;
  return cur;
}

function defaultDTypeFor(data: HostArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint8Array) return 'bool';
  throw new TypeError('tensor: a Uint16Array needs an explicit dtype (bfloat16 or float16)');
}
