/**
 * fp32 GEMM for the CPU backend: C[M,N] = alpha * op(A) @ op(B) + beta * C on row-major
 * storage with leading dimensions, op(X) = X or X^T.
 *
 * Paths, by work M*N*K:
 *   tiny      plain JS loop (reference.ts): setting up the wasm path would cost more;
 *   medium    on the calling thread: copy A and B into the shared wasm heap, pack them into
 *             micro-panels and run the SIMD kernel (kernel.ts, pack-kernel.ts, blocked.ts);
 *   large     the same, with packing and then tiles of C claimed by every pool thread (the
 *             caller too).
 * Batched calls of small matrices instead hand whole batch entries to the threads.
 * C is computed into a buffer in the heap; alpha/beta are applied while copying it back, so
 * beta = 0 never reads C (NaN there is ignored, as in BLAS).
 *
 * The heap only grows (a wasm memory cannot shrink): it stays as large as the largest call's
 * operands + C so far, at most 2 GiB; bigger problems are split into parts that fit.
 */

import { runSgemm, runSgemmBatched, type GemmCall } from './driver.js';

export { dgemmReference } from './reference.js';
export { PARALLEL_WORK, SMALL_WORK } from './driver.js';

export class GemmArgumentError extends Error {
  override name = 'GemmArgumentError';
}

function checkSize(op: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new GemmArgumentError(`${op}: ${name} must be a non-negative integer, got ${value}`);
}

/** Checks that a matrix stored as rows x cols (leading dimension ld) fits in its array. */
function checkMatrix(
  op: string, name: string, X: Float32Array, off: number, ld: number, rows: number, cols: number,
  batch = 1, stride = 0,
): void {
  checkSize(op, `off${name}`, off);
  checkSize(op, `ld${name.toLowerCase()}`, ld);
  checkSize(op, `stride${name}`, stride);
  if (ld < cols) throw new GemmArgumentError(`${op}: ld${name.toLowerCase()} = ${ld} is less than the ${cols} columns of ${name} as stored`);
  if (rows === 0 || cols === 0 || batch === 0) return;
  const end = off + (batch - 1) * stride + (rows - 1) * ld + cols;
  if (end > X.length) {
    throw new GemmArgumentError(`${op}: ${name} needs ${end} elements (offset ${off}, ${rows}x${cols}, ld ${ld}${batch > 1 ? `, ${batch} x stride ${stride}` : ''}) but has ${X.length}`);
  }
}

function checkCall(
  op: string, { transA, transB, M, N, K, A, offA, lda, B, offB, ldb, C, offC, ldc }: GemmCall,
  batch = 1, strideA = 0, strideB = 0, strideC = 0,
): void {
  checkSize(op, 'M', M);
  checkSize(op, 'N', N);
  checkSize(op, 'K', K);
  checkMatrix(op, 'A', A, offA, lda, transA ? K : M, transA ? M : K, batch, strideA);
  checkMatrix(op, 'B', B, offB, ldb, transB ? N : K, transB ? K : N, batch, strideB);
  checkMatrix(op, 'C', C, offC, ldc, M, N, batch, strideC);
}

/** C[M,N] = alpha * op(A) @ op(B) + beta * C, row-major with leading dimensions, fp32. */
export function sgemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, offA: number, lda: number, B: Float32Array, offB: number, ldb: number,
  beta: number, C: Float32Array, offC: number, ldc: number,
): void {
  const call: GemmCall = { transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc };
  checkCall('sgemm', call);
  runSgemm(call);
}

/**
 * Batched fp32 GEMM: for b in [0, batch): C_b = alpha * op(A_b) @ op(B_b) + beta * C_b where
 * X_b starts at offX + b * strideX (a stride of 0 reuses one matrix for every entry). Small
 * entries are spread over the thread pool; large ones run one after the other, each threaded.
 */
export function sgemmBatched(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, offA: number, lda: number, strideA: number,
  B: Float32Array, offB: number, ldb: number, strideB: number,
  beta: number, C: Float32Array, offC: number, ldc: number, strideC: number, batch: number,
): void {
  const call: GemmCall = { transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc };
  checkSize('sgemmBatched', 'batch', batch);
  checkCall('sgemmBatched', call, batch, strideA, strideB, strideC);
  runSgemmBatched(call, { strideA, strideB, strideC, batch });
}
