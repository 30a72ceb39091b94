/**
 * Plain-loop GEMMs: the float64 reference (tests, float64 tensors) and the fp32 path for
 * problems too small to be worth packing (the wasm path costs a few microseconds of setup).
 *
 * Both compute C[M,N] = alpha * op(A) @ op(B) + beta * C with op(X) = X or X^T on row-major
 * storage with leading dimensions; beta = 0 writes C without reading it (NaN in C is ignored).
 */

type Floats = Float32Array | Float64Array;

/**
 * Shared loop: i-k-j order so the innermost loop walks a row of op(B) and of the accumulator
 * (contiguous when B is not transposed). Accumulates in float64.
 */
function gemmLoop(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Floats, offA: number, lda: number, B: Floats, offB: number, ldb: number,
  beta: number, C: Floats, offC: number, ldc: number,
): void {
  const [aRow, aCol] = transA ? [1, lda] : [lda, 1];
  const [bRow, bCol] = transB ? [1, ldb] : [ldb, 1];
  const acc = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    acc.fill(0);
    if (alpha !== 0) {
      for (let k = 0; k < K; k++) {
        const a = A[offA + i * aRow + k * aCol]!;
        const b0 = offB + k * bRow;
        for (let j = 0; j < N; j++) acc[j]! += a * B[b0 + j * bCol]!;
      }
    }
    const c0 = offC + i * ldc;
    if (beta === 0) for (let j = 0; j < N; j++) C[c0 + j] = alpha * acc[j]!;
    else for (let j = 0; j < N; j++) C[c0 + j] = alpha * acc[j]! + beta * C[c0 + j]!;
  }
}

/** float64 GEMM reference: C[M,N] = alpha * op(A) @ op(B) + beta * C (plain triple loop). */
export function dgemmReference(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float64Array, offA: number, lda: number, B: Float64Array, offB: number, ldb: number,
  beta: number, C: Float64Array, offC: number, ldc: number,
): void {
  gemmLoop(transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc);
}

/** fp32 GEMM in plain JS for tiny problems (accumulates in float64, rounds once). */
export function sgemmSmall(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Float32Array, offA: number, lda: number, B: Float32Array, offB: number, ldb: number,
  beta: number, C: Float32Array, offC: number, ldc: number,
): void {
  gemmLoop(transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc);
}
