/**
 * Chooses how to run a (validated) fp32 GEMM call and runs it; see index.ts for the paths.
 * A call travels as one struct; `workspaceLimit` caps the heap bytes one step may use (the
 * wasm memory's size in production, small in tests to exercise the splitting).
 */

import { defaultThreadCount, threadPool } from '../threads/index.js';
import { copyIn, gemmOnThread, layoutArgs, packItemCount, planGemm, roundUp, storedShapes } from './blocked.js';
import { gemmHeap, MAX_WORKSPACE_BYTES } from './heap.js';
import { sgemmSmall } from './reference.js';
import { batchArgs, gemmBatch, gemmPack, gemmTiles } from './tasks.js';

/** C[M,N] = alpha * op(A) @ op(B) + beta * C on row-major storage with leading dimensions. */
export interface GemmCall {
  transA: boolean; transB: boolean; M: number; N: number; K: number;
  alpha: number; A: Float32Array; offA: number; lda: number;
  B: Float32Array; offB: number; ldb: number;
  beta: number; C: Float32Array; offC: number; ldc: number;
}

/** Entry b of a batch starts at offX + b * strideX. */
export interface BatchStrides { strideA: number; strideB: number; strideC: number; batch: number }

export interface DriverOptions { workspaceLimit: number }

export const DEFAULT_OPTIONS: DriverOptions = { workspaceLimit: MAX_WORKSPACE_BYTES };

/** Work (M*N*K) up to which the plain JS loop is used. */
export const SMALL_WORK = 8 * 8 * 8;
/**
 * Work from which a problem (or a batch) is split across threads. Below it, waking a worker
 * (tens of microseconds, more when the other cores are busy) costs more than it saves.
 */
export const PARALLEL_WORK = 128 * 128 * 128;
/**
 * Largest tile handed to one thread of a threaded call (multiply-adds): ~0.5 ms of kernel time,
 * so the end of a job waits little for the slowest thread.
 */
const MAX_TILE_WORK = 1 << 23;
/** First byte of the heap used for operands (the start is kept free). */
const HEAP_BASE = 64;

/** C = beta * C (alpha = 0 or K = 0); beta = 0 writes zeros without reading C. */
function scaleC({ M, N, beta, C, offC, ldc }: GemmCall): void {
  for (let i = 0; i < M; i++) {
    const c0 = offC + i * ldc;
    if (beta === 0) C.fill(0, c0, c0 + N);
    else if (beta !== 1) for (let j = 0; j < N; j++) C[c0 + j]! *= beta;
  }
}

/** Copies a C buffer of the heap (byte address, row stride in floats) into the caller's C, applying alpha and beta. */
function storeC(heap: Float32Array, cAddr: number, ldcHeap: number, { M, N, alpha, beta, C, offC, ldc }: GemmCall): void {
  for (let i = 0; i < M; i++) {
    const s = cAddr / 4 + i * ldcHeap;
    const d = offC + i * ldc;
    if (beta === 0 && alpha === 1) C.set(heap.subarray(s, s + N), d);
    else if (beta === 0) for (let j = 0; j < N; j++) C[d + j] = alpha * heap[s + j]!;
    else for (let j = 0; j < N; j++) C[d + j] = alpha * heap[s + j]! + beta * C[d + j]!;
  }
}

/** The sub-problem C[m0.., n0..] (m x n) over K range [k0, k0 + k). */
function part(c: GemmCall, m0: number, m: number, n0: number, n: number, k0: number, k: number, beta: number): GemmCall {
  return {
    ...c, M: m, N: n, K: k, beta,
    offA: c.offA + (c.transA ? k0 * c.lda + m0 : m0 * c.lda + k0),
    offB: c.offB + (c.transB ? n0 * c.ldb + k0 : k0 * c.ldb + n0),
    offC: c.offC + m0 * c.ldc + n0,
  };
}

export function runSgemm(c: GemmCall, options: DriverOptions = DEFAULT_OPTIONS): void {
  const { M, N, K } = c;
  if (M === 0 || N === 0) return;
  if (K === 0 || c.alpha === 0) {
    scaleC(c);
    return;
  }
  const work = M * N * K;
  if (work <= SMALL_WORK) {
    sgemmSmall(c.transA, c.transB, M, N, K, c.alpha, c.A, c.offA, c.lda, c.B, c.offB, c.ldb, c.beta, c.C, c.offC, c.ldc);
    return;
  }
  const threads = work >= PARALLEL_WORK ? defaultThreadCount() : 1;
  const p = planGemm(c.transA, c.transB, M, N, K, HEAP_BASE, threads > 1 ? { minTiles: 4 * threads, maxTileWork: MAX_TILE_WORK } : {});
  if (HEAP_BASE + p.bytes > options.workspaceLimit) {
    splitLarge(c, options);
    return;
  }
  const heap = gemmHeap();
  heap.reserve(HEAP_BASE + p.bytes);
  const f32 = heap.view();
  const shapes = storedShapes(c.transA, c.transB, M, N, K);
  copyIn(f32, p.rawA / 4, c.A, c.offA, c.lda, ...shapes.a);
  copyIn(f32, p.rawB / 4, c.B, c.offB, c.ldb, ...shapes.b);
  if (threads > 1) {
    const pool = threadPool();
    const args = layoutArgs(p);
    pool.run(gemmPack, args, packItemCount(p));
    pool.run(gemmTiles, args, p.mTiles * p.nTiles);
  } else {
    gemmOnThread(heap.kernel, p);
  }
  storeC(f32, p.cBase, p.ldc, c);
}

/**
 * A problem too large for the workspace: halve its largest dimension and recurse (the second
 * half of a K split accumulates onto the first with beta = 1).
 */
function splitLarge(c: GemmCall, options: DriverOptions): void {
  const { M, N, K, beta } = c;
  if (M >= N && M >= K && M > 1) {
    const h = Math.min(roundUp(M / 2, 8), M - 1);
    runSgemm(part(c, 0, h, 0, N, 0, K, beta), options);
    runSgemm(part(c, h, M - h, 0, N, 0, K, beta), options);
  } else if (N >= K && N > 1) {
    const h = Math.min(roundUp(N / 2, 8), N - 1);
    runSgemm(part(c, 0, M, 0, h, 0, K, beta), options);
    runSgemm(part(c, 0, M, h, N - h, 0, K, beta), options);
  } else if (K > 1) {
    const h = Math.min(roundUp(K / 2, 8), K - 1);
    runSgemm(part(c, 0, M, 0, N, 0, h, beta), options);
    runSgemm(part(c, 0, M, 0, N, h, K - h, 1), options);
  } else {
    throw new RangeError(`sgemm: even a 1x1x1 problem exceeds the ${options.workspaceLimit}-byte GEMM workspace`);
  }
}

/** One entry of a batch. */
function entry(c: GemmCall, s: BatchStrides, b: number): GemmCall {
  return { ...c, offA: c.offA + b * s.strideA, offB: c.offB + b * s.strideB, offC: c.offC + b * s.strideC };
}

export function runSgemmBatched(c: GemmCall, s: BatchStrides, options: DriverOptions = DEFAULT_OPTIONS): void {
  const work = c.M * c.N * c.K;
  const acrossEntries = s.batch > 1 && work > SMALL_WORK && work < PARALLEL_WORK && work * s.batch >= PARALLEL_WORK &&
    c.alpha !== 0 && c.M > 0 && c.N > 0 && defaultThreadCount() > 1;
  let b = 0;
  while (acrossEntries && b < s.batch) {
    const done = batchOnThreads(entry(c, s, b), { ...s, batch: s.batch - b }, options);
    if (done === 0) break;
    b += done;
  }
  // Entries left: large ones (each threaded), or a single-threaded machine, or tiny ones.
  for (; b < s.batch; b++) runSgemm(entry(c, s, b), options);
}

/**
 * Copies as many leading entries of the batch as fit in the workspace into the heap and lets
 * the threads claim them; returns how many entries were done (0 if not even one fits).
 */
function batchOnThreads(c: GemmCall, s: BatchStrides, options: DriverOptions): number {
  const pool = threadPool();
  const tpl = planGemm(c.transA, c.transB, c.M, c.N, c.K, 0, { withoutRaw: true });
  const shapes = storedShapes(c.transA, c.transB, c.M, c.N, c.K);
  // Per entry: raw A and B (once if their stride is 0) and a C buffer; per thread: packing scratch.
  const entryA = roundUp(4 * shapes.a[0] * shapes.a[1], 64);
  const entryB = roundUp(4 * shapes.b[0] * shapes.b[1], 64);
  const scratchBytes = roundUp(tpl.cBase, 64);
  const cBytes = tpl.bytes - tpl.cBase;
  const fixed = HEAP_BASE + (s.strideA === 0 ? entryA : 0) + (s.strideB === 0 ? entryB : 0) + pool.threads * scratchBytes;
  const perEntry = (s.strideA === 0 ? 0 : entryA) + (s.strideB === 0 ? 0 : entryB) + cBytes;
  const batch = Math.min(s.batch, Math.floor((options.workspaceLimit - fixed) / perEntry));
  if (batch < 1) return 0;

  const rawStrideA = s.strideA === 0 ? 0 : entryA;
  const rawStrideB = s.strideB === 0 ? 0 : entryB;
  const rawA = HEAP_BASE;
  const rawB = rawA + (s.strideA === 0 ? entryA : batch * entryA);
  const scratch = rawB + (s.strideB === 0 ? entryB : batch * entryB);
  const cRegion = scratch + pool.threads * scratchBytes;
  const heap = gemmHeap();
  heap.reserve(cRegion + batch * cBytes);
  const f32 = heap.view();
  for (let b = 0; b < (s.strideA === 0 ? 1 : batch); b++) copyIn(f32, (rawA + b * rawStrideA) / 4, c.A, c.offA + b * s.strideA, c.lda, ...shapes.a);
  for (let b = 0; b < (s.strideB === 0 ? 1 : batch); b++) copyIn(f32, (rawB + b * rawStrideB) / 4, c.B, c.offB + b * s.strideB, c.ldb, ...shapes.b);
  const args = batchArgs({ rawA, rawStrideA, rawB, rawStrideB, scratch, scratchBytes, cRegion, cBytes });
  pool.run(gemmBatch, [...layoutArgs(tpl), ...args], batch);
  for (let b = 0; b < batch; b++) storeC(f32, cRegion + b * cBytes, tpl.ldc, entry(c, s, b));
  return batch;
}
