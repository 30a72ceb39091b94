/**
 * Temporary tensors for launchers whose kernels take one storage type per operand group: inputs
 * are cast (or made contiguous) into the type a kernel instantiation expects, outputs of another
 * dtype are written to a temporary and copied (with a cast) into place, and everything made here
 * is disposed once, in finish(). Accumulators start zeroed.
 */
import type { DType } from '../../../tensor/dtype.js';
import type { Shape } from '../../../tensor/shape.js';
import { Tensor } from '../../../tensor/tensor.js';
import type { CudaRuntime } from '../runtime.js';
import { castOn, contiguousOn, copyInto, copyKernels } from './copy.js';

export class Scratch {
  private readonly temps: Tensor[] = [];
  private readonly writeBacks: [Tensor, Tensor][] = [];
  private readonly fill: (out: Tensor, value: number) => void;

  constructor(private readonly rt: CudaRuntime) {
    this.fill = copyKernels(rt).fill;
  }

  /** `t` as a contiguous tensor of `dtype` (t itself when it already is one). */
  input(t: Tensor, dtype: DType = t.dtype): Tensor {
    const c = t.dtype === dtype ? contiguousOn(this.rt, t) : castOn(this.rt, t, dtype);
    if (c !== t) this.temps.push(c);
    return c;
  }

  /** A contiguous tensor of `dtype` to write `out`'s values into; copied into `out` by finish(). */
  output(out: Tensor, dtype: DType, zero = false): Tensor {
    let target = out;
    if (out.dtype !== dtype || !out.isContiguous) {
      target = Tensor.empty(out.shape, dtype, out.backend);
      this.temps.push(target);
      this.writeBacks.push([target, out]);
    }
    if (zero) this.fill(target, 0);
    return target;
  }

  /** A new uninitialised (or zeroed) tensor, disposed by finish(). */
  buffer(like: Tensor, shape: Shape, dtype: DType, zero = false): Tensor {
    const t = Tensor.empty(shape, dtype, like.backend);
    this.temps.push(t);
    if (zero) this.fill(t, 0);
    return t;
  }

  /** Zero-fills `t`. */
  zero(t: Tensor): void {
    this.fill(t, 0);
  }

  /** Copies temporary outputs into their destinations and releases every temporary. */
  finish(): void {
    for (const [src, dst] of this.writeBacks) copyInto(this.rt, src, dst);
    for (const t of this.temps) t.dispose();
    this.temps.length = 0;
    this.writeBacks.length = 0;
  }
}

/** float64 when any operand is float64 (the CPU reference computes in double), else float32. */
export function computeType(...ts: (Tensor | null)[]): 'float32' | 'float64' {
  return ts.some((t) => t !== null && t.dtype === 'float64') ? 'float64' : 'float32';
}

/**
 * The storage type for a kernel instantiation over `ts`: the one dtype they share, or the compute
 * type when they differ (kernels take one storage type per group). float64 compute always stores
 * float64, since each storage type has a fixed compute type (common.cuh's Ty<T>::C).
 */
export function sharedType(compute: DType, ...ts: (Tensor | null)[]): DType {
  if (compute === 'float64') return 'float64';
  const present = ts.filter((t): t is Tensor => t !== null);
  const first = present[0]!.dtype;
  return present.every((t) => t.dtype === first) ? first : compute;
}
