/**
 * Helpers for the multi-tensor paths: optimizers, EMA and clipGradNorm hand whole parameter
 * lists to a backend's FusedKernels (src/backends/backend.ts) where it has them, one launch for
 * many tensors instead of a dozen small ops per tensor. The kernels round every step to float32
 * as the engine's ops do, and take their scalars rounded the way the engine rounds a scalar
 * operand (to the tensor's dtype: Math.fround for float32), so a backend whose kernels follow
 * their documented formulas gives the composed path's results. Backends without them (the CPU)
 * keep the composed path, whose results the tests pin bit for bit.
 */
import type { FusedKernels } from '../backends/backend.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast, contiguous } from '../ops/layout.js';

/** Dtypes the multi-tensor kernels read and write directly (float64 keeps the composed path). */
export function isFusedDType(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'bfloat16' || dtype === 'float16';
}

/** A scalar operand of a float32 op, as the engine rounds it. */
export const f32 = Math.fround;

/**
 * `t` in a form the kernels read: contiguous, float32/bfloat16/float16 (other float dtypes cast
 * to float32, as the composed path casts gradients). Returns t itself when it already is.
 */
export function kernelInput(t: Tensor): Tensor {
  return isFusedDType(t.dtype) ? contiguous(t) : cast(t, 'float32');
}

/** Releases the temporaries kernelInput made. */
export function releaseInputs(made: readonly Tensor[], originals: readonly Tensor[]): void {
  made.forEach((t, i) => {
    if (t !== originals[i]) t.dispose();
  });
}

/**
 * Stable objects to key the backends' cached tables on (one per owner and list), so a list that
 * comes back each step finds its table instead of building one.
 */
export class CacheKeys {
  private readonly keys = new Map<string, object>();

  get(name: string): object {
    let key = this.keys.get(name);
    if (!key) {
      key = { name };
      this.keys.set(name, key);
    }
    return key;
  }
}

export type { FusedKernels };
