/**
 * The selective scan's A operand given as A_log (ScanInputs.aLog): A = -exp(A_log) for the
 * recurrence, and the chain rule back to A_log for the gradient. Shared by the reference loops
 * (../kernels/scan.ts) and the thread-pool path (index.ts), so both form A the same way.
 */

import type { ScanInputs } from '../../backend.js';
import { readNumbers, type NumArray } from '../access.js';

/**
 * A [D, N] as the recurrence uses it. From A_log, -exp is rounded to float32 unless A_log is
 * float64 (map keeps readNumbers' array type): the compute type the CUDA kernels form it in, and
 * for float32/float64 A_log exactly what neg(exp(A_log)) would hold.
 */
export function scanA(inputs: ScanInputs): NumArray {
  const stored = readNumbers(inputs.A);
  return inputs.aLog ? stored.map((v) => -Math.exp(v)) : stored;
}

/**
 * ∂loss/∂A, summed in float64, taken in place to ∂loss/∂A_log = ∂loss/∂A · A when the operand is
 * A_log (A from scanA); returned as is otherwise.
 */
export function chainALog(inputs: ScanInputs, dA: Float64Array, A: ArrayLike<number>): Float64Array {
  if (inputs.aLog) for (let i = 0; i < dA.length; i++) dA[i] *= A[i]!;
  return dA;
}
