/**
 * In-place updates for optimizer state and parameters, built from engine ops so they run on any
 * backend. Modules and hooks hold parameter Tensor objects, so an update must write into the
 * existing storage (through the backend's copy kernel) instead of rebinding a new tensor. Each
 * helper releases its temporaries at once: they are as large as the parameter, and on a GPU
 * waiting for garbage collection to return them would double the optimizer's memory.
 * Call these under noGrad.
 */
import type { DType } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, mul, sub } from '../ops/elementwise.js';
import { to } from '../ops/layout.js';
import { OptimizerError } from './errors.js';

/** Float64 stays float64 (for exact tests); everything else is computed in float32. */
export function stateDType(dtype: DType): 'float32' | 'float64' {
  return dtype === 'float64' ? 'float64' : 'float32';
}

/** Releases temporaries now. Never pass a tensor that something else still uses. */
export function free(...temps: Tensor[]): void {
  for (const t of temps) t.dispose();
}

/** dst <- value (cast to dst's dtype), then releases `value`, which must be a temporary. */
export function assign(dst: Tensor, value: Tensor): void {
  if (value === dst) return;
  writeInto(dst, value, 'assign');
  value.dispose();
}

/** dst <- src (cast, moved to dst's device), leaving src alone. */
export function copyInto(dst: Tensor, src: Tensor, what = 'copyInto'): void {
  const moved = to(src, dst.deviceName);
  writeInto(dst, moved, what);
  if (moved !== src) moved.dispose();
}

function writeInto(dst: Tensor, src: Tensor, what: string): void {
  if (!shapesEqual(dst.shape, src.shape)) {
    throw new OptimizerError(`${what}: shape ${formatShape(src.shape)} does not match the target ${formatShape(dst.shape)}`);
  }
  if (dst.numel > 0) dst.backend.kernels.copy(src, dst);
}

/** dst <- dst * c. */
export function scaleInPlace(dst: Tensor, c: number): void {
  assign(dst, mul(dst, c));
}

/** dst <- dst + alpha * x (torch's add_(x, alpha=alpha)). */
export function addScaledInPlace(dst: Tensor, x: Tensor, alpha: number): void {
  const scaled = mul(x, alpha);
  assign(dst, add(dst, scaled));
  free(scaled);
}

/** dst <- beta * dst + (1 - beta) * x: an exponential moving average, written as CAME and EMA do. */
export function emaInPlace(dst: Tensor, x: Tensor, beta: number): void {
  const kept = mul(dst, beta);
  const fresh = mul(x, 1 - beta);
  assign(dst, add(kept, fresh));
  free(kept, fresh);
}

/**
 * dst <- lerp(dst, x, weight): torch.lerp_, which AdamW uses for its first moment. Like torch it
 * starts from the nearer end, so weight near 1 does not lose the small (1 - weight) term.
 */
export function lerpInPlace(dst: Tensor, x: Tensor, weight: number): void {
  const diff = sub(x, dst);
  if (weight < 0.5) {
    addScaledInPlace(dst, diff, weight);
  } else {
    const back = mul(diff, 1 - weight);
    assign(dst, sub(x, back));
    free(back);
  }
  free(diff);
}
