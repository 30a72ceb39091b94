/**
 * fp32 GEMM for the CPU backend: C[M,N] = alpha * op(A) @ op(B) + beta * C on row-major
 * storage with leading dimensions, op(X) = X or X^T.
 *
 * Paths, by work M*N*K:
 *   tiny      plain JS loop (reference.ts): setting up the wasm path would cost more;
 *   medium    on the calling thread: pack op(A), op(B) into the shared wasm heap and run the
 *             SIMD kernel (kernel.ts, blocked.ts);
 *   large     same packing, then every pool thread (the caller too) claims tiles of C.
 * Batched calls of small matrices instead hand whole batch entries to the threads.
 * C is computed into a buffer in the heap; alpha/beta are applied while copying it back, so
 * beta = 0 never reads C (NaN there is ignored, as in BLAS).
 */

import { threadPool, defaultThreadCount } from '../threads/index.js';
import { copyIn, gemmOnThread, layoutArgs, packItemCount, planGemm, roundUp, storedShapes } from './blocked.js';
import { gemmHeap, MAX_WORKSPACE_BYTES } from './heap.js';
import { sgemmSmall } from './reference.js';
import { batchArgs, gemmBatch, gemmPack, gemmTiles } from './tasks.js';

export { dgemmReference } from './reference.js';

export class GemmArgumentError extends Error {
  override name = 'GemmArgumentError';
}

/** Work (M*N*K) up to which the plain JS loop is used. */
export const SMALL_WORK = 8 * 8 * 8;
/**
 * Work from which a problem (or a batch) is split across threads. Below it, waking a worker
 * (tens of microseconds, more when the other cores are busy) costs more than it saves.
 */
export const PARALLEL_WORK = 128 * 128 * 128;
/** First byte of the heap used for operands (the start is kept free). */
const HEAP_BASE = 64;

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

function checkArgs(
  op: string, transA: boolean, transB: boolean, M: number, N: number, K: number,
  A: Float32Array, offA: number, lda: number, B: Float32Array, offB: number, ldb: number,
  C: Float32Array, offC: number, ldc: number, batch = 1, strideA = 0, strideB = 0, strideC = 0,
): void {
  checkSize(op, 'M', M);
  checkSize(op, 'N', N);
  checkSize(op, 'K', K);
  checkMatrix(op, 'A', A, offA, lda, transA ? K : M, transA ? M : K, batch, strideA);
  checkMatrix(op, 'B', B, offB, ldb, transB ? N : K, transB ? K : N, batch, strideB);
  checkMatrix(op, 'C', C, offC, ldc, M, N, batch, strideC);
}

/** C = beta * C (alpha = 0 or K = 0); beta = 0 writes zeros without reading C. */
function scaleC(M: number, N: number, beta: number, C: Float32Array, offC: number, ldc: number): void {
  for (let i = 0; i < M; i++) {
    const c0 = offC + i * ldc;
    if (beta === 0) C.fill(0, c0, c0 + N);
    else if (beta !== 1) for (let j = 0; j < N; j++) C[c0 + j]! *= beta;
  }
}

/** Copies the heap's C buffer into the caller's C applying alpha and beta. */
function storeC(
  heap: Float32Array, cAddr: number, ldcHeap: number, M: number, N: number,
  alpha: number, beta: number, C: Float32Array, offC: number, ldc: number,
): void {
  for (let i = 0; i < M; i++) {
    const s = cAddr / 4 + i * ldcHeap;
    const d = offC + i * ldc;
    if (beta === 0 && alpha === 1) C.set(heap.subarray(s, s + N), d);
    else if (beta === 0) for (let j = 0; j < N; j++) C[d + j] = alpha * heap[s + j]!;
    else for (let j = 0; j < N; j++) C[d + j] = alpha * heap[s + j]! + beta * C[d + j]!;
  }
}

/** C[M,N] = alpha * op(A) @ op(B) + beta * C, row-major with leading dimensions, fp32. */
export function sgemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, offA: number, lda: number, B: Float32Array, offB: number, ldb: number,
  beta: number, C: Float32Array, offC: number, ldc: number,
): void {
  checkArgs('sgemm', transA, transB, M, N, K, A, offA, lda, B, offB, ldb, C, offC, ldc);
  gemmChecked(transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc, true);
}

function gemmChecked(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, offA: number, lda: number, B: Float32Array, offB: number, ldb: number,
  beta: number, C: Float32Array, offC: number, ldc: number, allowThreads: boolean,
): void {
  if (M === 0 || N === 0) return;
  if (K === 0 || alpha === 0) {
    scaleC(M, N, beta, C, offC, ldc);
    return;
  }
  const work = M * N * K;
  if (work <= SMALL_WORK) {
    sgemmSmall(transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc);
    return;
  }
  const threads = allowThreads && work >= PARALLEL_WORK ? defaultThreadCount() : 1;
  const heap = gemmHeap();
  const p = planGemm(transA, transB, M, N, K, HEAP_BASE, { minTiles: threads > 1 ? 4 * threads : 1 });
  if (HEAP_BASE + p.bytes > MAX_WORKSPACE_BYTES) {
    splitHuge(transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc);
    return;
  }
  heap.reserve(HEAP_BASE + p.bytes);
  const f32 = heap.view();
  const shapes = storedShapes(transA, transB, M, N, K);
  copyIn(f32, p.rawA / 4, A, offA, lda, ...shapes.a);
  copyIn(f32, p.rawB / 4, B, offB, ldb, ...shapes.b);
  if (threads > 1) {
    const pool = threadPool();
    const args = layoutArgs(p);
    pool.run(gemmPack, args, packItemCount(p));
    pool.run(gemmTiles, args, p.mTiles * p.nTiles);
  } else {
    gemmOnThread(heap.kernel, p);
  }
  storeC(f32, p.cBase, p.ldc, M, N, alpha, beta, C, offC, ldc);
}

/**
 * A problem whose packed operands exceed the wasm memory: halve its largest dimension and
 * recurse (splitting K accumulates the second half with beta = 1).
 */
function splitHuge(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, offA: number, lda: number, B: Float32Array, offB: number, ldb: number,
  beta: number, C: Float32Array, offC: number, ldc: number,
): void {
  const run = (m0: number, m: number, n0: number, n: number, k0: number, k: number, b: number): void => gemmChecked(
    transA, transB, m, n, k, alpha,
    A, offA + (transA ? k0 * lda + m0 : m0 * lda + k0), lda,
    B, offB + (transB ? n0 * ldb + k0 : k0 * ldb + n0), ldb,
    b, C, offC + m0 * ldc + n0, ldc, true);
  if (M >= N && M >= K) {
    const h = roundUp(M / 2, 8);
    run(0, h, 0, N, 0, K, beta);
    run(h, M - h, 0, N, 0, K, beta);
  } else if (N >= K) {
    const h = roundUp(N / 2, 8);
    run(0, M, 0, h, 0, K, beta);
    run(0, M, h, N - h, 0, K, beta);
  } else {
    const h = roundUp(K / 2, 256);
    run(0, M, 0, N, 0, h, beta);
    run(0, M, 0, N, h, K - h, 1);
  }
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
  checkSize('sgemmBatched', 'batch', batch);
  checkArgs('sgemmBatched', transA, transB, M, N, K, A, offA, lda, B, offB, ldb, C, offC, ldc, batch, strideA, strideB, strideC);
  const work = M * N * K;
  const threads = work * batch >= PARALLEL_WORK && work < PARALLEL_WORK ? defaultThreadCount() : 1;
  if (threads > 1 && batch > 1 && work > SMALL_WORK && !(K === 0 || alpha === 0)) {
    if (batchOnThreads(transA, transB, M, N, K, alpha, A, offA, lda, strideA, B, offB, ldb, strideB, beta, C, offC, ldc, strideC, batch)) return;
  }
  for (let b = 0; b < batch; b++) {
    gemmChecked(transA, transB, M, N, K, alpha, A, offA + b * strideA, lda, B, offB + b * strideB, ldb,
      beta, C, offC + b * strideC, ldc, true);
  }
}

/** Copies the batch's operands into the heap and lets the threads claim entries. */
function batchOnThreads(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, offA: number, lda: number, strideA: number,
  B: Float32Array, offB: number, ldb: number, strideB: number,
  beta: number, C: Float32Array, offC: number, ldc: number, strideC: number, batch: number,
): boolean {
  const heap = gemmHeap();
  const pool = threadPool();
  const tpl = planGemm(transA, transB, M, N, K, 0, { withoutRaw: true });
  const shapes = storedShapes(transA, transB, M, N, K);
  const entryA = 4 * shapes.a[0] * shapes.a[1];
  const entryB = 4 * shapes.b[0] * shapes.b[1];
  const rawStrideA = strideA === 0 ? 0 : roundUp(entryA, 64);
  const rawStrideB = strideB === 0 ? 0 : roundUp(entryB, 64);
  const rawA = HEAP_BASE;
  const rawB = roundUp(rawA + (strideA === 0 ? entryA : batch * rawStrideA), 64);
  const scratch = roundUp(rawB + (strideB === 0 ? entryB : batch * rawStrideB), 64);
  const scratchBytes = roundUp(tpl.cBase, 64);
  const cRegion = scratch + pool.threads * scratchBytes;
  const cBytes = tpl.bytes - tpl.cBase;
  const end = cRegion + batch * cBytes;
  if (end > MAX_WORKSPACE_BYTES) return false;
  heap.reserve(end);
  const f32 = heap.view();
  for (let b = 0; b < (strideA === 0 ? 1 : batch); b++) copyIn(f32, (rawA + b * rawStrideA) / 4, A, offA + b * strideA, lda, ...shapes.a);
  for (let b = 0; b < (strideB === 0 ? 1 : batch); b++) copyIn(f32, (rawB + b * rawStrideB) / 4, B, offB + b * strideB, ldb, ...shapes.b);
  const args = batchArgs({ rawA, rawStrideA, rawB, rawStrideB, scratch, scratchBytes, cRegion, cBytes });
  pool.run(gemmBatch, [...layoutArgs(tpl), ...args], batch);
  for (let b = 0; b < batch; b++) storeC(f32, cRegion + b * cBytes, tpl.ldc, M, N, alpha, beta, C, offC + b * strideC, ldc);
  return true;
}
