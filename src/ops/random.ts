/** Random tensors and dropout, drawn from a counter-based Generator (same numbers on every backend). */
import { isFloating, type DType } from '../tensor/dtype.js';
import type { Backend } from '../backends/backend.js';
import type { Shape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { defaultDevice, getBackend } from '../backends/registry.js';
import { defaultGenerator, type Generator } from '../random/generator.js';
import type { CreateOptions } from './create.js';
import { add, mul, lt, floor } from './elementwise.js';
import { cast } from './layout.js';

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

/**
 * Sees every draw while installed (interceptDraws) and may return the tensor to use instead of
 * drawing (null: draw as usual). A captured training step (src/train/graphed-step.ts) records
 * the draws of its eager warm-up and, during capture, hands out copies of tensors it fills
 * outside the graph before each replay: a draw's seed and offset would otherwise be baked in.
 */
export type DrawInterceptor = (shape: Shape, dist: 'uniform' | 'normal', dtype: DType, backend: Backend, generator: Generator) => Tensor | null;

let interceptor: DrawInterceptor | null = null;

/** Runs fn with `draws` seeing every random draw (nested calls: the innermost only). */
export function interceptDraws<T>(draws: DrawInterceptor, fn: () => T): T {
  const outer = interceptor;
  interceptor = draws;
  try {
    return fn();
  } finally {
    interceptor = outer;
  }
}

function draw(shape: Shape, dist: 'uniform' | 'normal', options: RandomOptions): Tensor {
  const dtype = options.dtype ?? 'float32';
  if (!isFloating(dtype)) throw new TypeError(`random ${dist}: dtype must be floating, got ${dtype}`);
  const backend = getBackend(options.device ?? defaultDevice());
  const gen = options.generator ?? defaultGenerator;
  const substitute = interceptor?.(shape, dist, dtype, backend, gen) ?? null;
  if (substitute !== null) {
    if (options.requiresGrad) substitute.requiresGrad_(true);
    return substitute;
  }
  const raw = Tensor.empty(shape, dtype, backend);
  const offset = gen.reserve(raw.numel);
  if (raw.numel > 0) backend.kernels.random(raw, dist, gen.seed, offset);
  if (options.requiresGrad) raw.requiresGrad_(true);
  return raw;
}

/** Standard normal samples. */
export function randn(shape: Shape, options: RandomOptions = {}): Tensor {
  return draw(shape, 'normal', options);
}

/** Uniform samples in [0, 1). */
export function rand(shape: Shape, options: RandomOptions = {}): Tensor {
  return draw(shape, 'uniform', options);
}

export function randnLike(t: Tensor, options: RandomOptions = {}): Tensor {
  return randn(t.shape, { dtype: t.dtype, device: t.device, ...options });
}

/** Uniform samples in [low, high). */
export function uniform(shape: Shape, low: number, high: number, options: RandomOptions = {}): Tensor {
  return add(mul(rand(shape, { ...options, requiresGrad: false }), high - low), low);
}

/** Integers uniformly in [low, high) as int32. */
export function randint(low: number, high: number, shape: Shape, options: RandomOptions = {}): Tensor {
  if (!(Number.isInteger(low) && Number.isInteger(high) && high > low)) throw new RangeError(`randint: need integers low < high, got ${low}, ${high}`);
  const u = rand(shape, { ...options, dtype: 'float64', requiresGrad: false });
  return cast(add(floor(mul(u, high - low)), low), options.dtype ?? 'int32');
}

/** Zeroes each element with probability p and scales the rest by 1/(1-p) (training only). */
export function dropout(x: Tensor, p: number, training = true, generator?: Generator): Tensor {
  if (p < 0 || p > 1) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  if (p === 1) return mul(x, 0);
  const keep = lt(rand(x.shape, { device: x.device, generator }), 1 - p);
  return mul(x, mul(cast(keep, x.dtype), 1 / (1 - p)));
}
