// Integer and bool matmul (cuBLAS has no GEMM for int32/int64/bool; reference:
// src/backends/cpu/kernels/matmul.ts):
//   out[e, i, j] = Σ_p A[e, i, p] B[e, p, j]
// A is stored [k][m] per entry when transA (else [m][k]), B [n][k] when transB (else [k][n]),
// stored rows ldA / ldB elements apart (>= the row length, checked by the launcher);
// entries are strideA / strideB elements apart (0: one matrix for every entry); out is
// contiguous [batch][m][n]. One thread per output element over a grid-stride loop: these
// products are rare (index arithmetic, masks), so the kernel favours being plainly correct.
// Sums are taken modulo 2^64 in unsigned arithmetic (signed overflow is undefined in C++), then
// truncated to the storage type, which wraps int32 like the CPU's Int32Array stores; bool gives
// 1 where any product is nonzero.
#include "common.cuh"

template <class T>
__device__ __forceinline__ unsigned long long widen(T v) { return (unsigned long long)(long long)v; }

template <class T>
__device__ __forceinline__ T narrow(unsigned long long acc) { return (T)(long long)acc; }
template <>
__device__ __forceinline__ u8 narrow<u8>(unsigned long long acc) { return acc != 0ull ? 1 : 0; }

template <class T>
__device__ void int_matmul_body(const T* a, const T* b, T* out, long long batch, long long m, long long n, long long k,
    long long strideA, long long strideB, long long ldA, long long ldB, int transA, int transB) {
  // Where element p of row i (of A) / column j (of B) sits, and how far apart consecutive p are.
  const long long stepA = transA ? ldA : 1;
  const long long stepB = transB ? 1 : ldB;
  DIMBA_FOR_EACH(idx, batch * m * n) {
    const long long j = idx % n;
    const long long rest = idx / n;
    const long long i = rest % m;
    const long long e = rest / m;
    const T* pa = a + e * strideA + (transA ? i : i * ldA);
    const T* pb = b + e * strideB + (transB ? j * ldB : j);
    unsigned long long acc = 0ull;
    for (long long p = 0; p < k; ++p) acc += widen(pa[p * stepA]) * widen(pb[p * stepB]);
    out[idx] = narrow<T>(acc);
  }
}

#define DIMBA_INT_MATMUL(name, T) \
  extern "C" __global__ void int_matmul_##name(const T* a, const T* b, T* out, long long batch, long long m, long long n, \
      long long k, long long strideA, long long strideB, long long ldA, long long ldB, int transA, int transB) { \
    int_matmul_body<T>(a, b, out, batch, m, n, k, strideA, strideB, ldA, ldB, transA, transB); \
  }
DIMBA_INT_MATMUL(i32, int)
DIMBA_INT_MATMUL(i64, long long)
DIMBA_INT_MATMUL(bool, u8)
