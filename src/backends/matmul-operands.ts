/**
 * The operand layout MatmulArgs describes, resolved and checked once for every backend's matmul
 * kernel: leading dimensions (dense when omitted) and the storage span each operand reads.
 */
import type { MatmulArgs } from './backend.js';
import type { Tensor } from '../tensor/tensor.js';

export interface MatmulOperandLayout {
  /** Elements between consecutive stored rows. */
  readonly ld: number;
  /** Storage elements read from the tensor's offset: 0 when nothing is read. */
  readonly extent: number;
}

/**
 * Operand `name` of a matmul as args store it, checked: an integer leading dimension at least as
 * long as a stored row (a smaller one would read rows overlapping), a non-negative batch stride,
 * and a span inside the tensor's storage (a wrong ld would otherwise read past it silently).
 */
export function matmulOperand(name: 'a' | 'b', t: Tensor, args: MatmulArgs): MatmulOperandLayout {
  const { batch, m, n, k } = args;
  const isA = name === 'a';
  const trans = isA ? args.transA : args.transB;
  const rows = isA ? (trans ? k : m) : (trans ? n : k);
  const cols = isA ? (trans ? m : k) : (trans ? k : n);
  const ld = (isA ? args.ldA : args.ldB) ?? cols;
  const stride = isA ? args.strideA : args.strideB;
  const L = isA ? 'A' : 'B';
  if (!Number.isInteger(ld) || ld < cols) {
    throw new RangeError(`matmul: ld${L} must be an integer >= ${cols}, the elements in each stored row of ${name} `
      + `(${rows} rows of ${cols}, trans${L} ${trans}); got ${ld}`);
  }
  if (!Number.isInteger(stride) || stride < 0) throw new RangeError(`matmul: stride${L} must be a non-negative integer, got ${stride}`);
  if (batch === 0 || rows === 0 || cols === 0) return { ld, extent: 0 };
  const extent = (batch - 1) * stride + (rows - 1) * ld + cols;
  const held = t.storage.numel - t.offset;
  if (extent > held) {
    throw new RangeError(`matmul: ${name} spans ${extent} elements (${batch} x stride${L} ${stride}, ${rows} rows of ${cols}, `
      + `ld${L} ${ld}) but its storage holds ${held} from offset ${t.offset}`);
  }
  return { ld, extent };
}
