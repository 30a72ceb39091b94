// Philox4x32-10 random numbers, the layout src/random/philox.ts documents, so a seed gives the
// CPU's numbers: counter c = offset + k is (lo32(c), hi32(c), 0, 0), key (lo32(seed), hi32(seed)).
//   uniform: thread k writes elements 4k..4k+3 = (word >> 8) * 2^-24
//   normal:  thread k writes elements 2k, 2k+1 by Box-Muller on words 0 and 1, in double as the
//            CPU computes it, then rounded to the output dtype once.
#include "common.cuh"

__device__ __forceinline__ void philox4x32_10(unsigned c0, unsigned c1, unsigned c2, unsigned c3,
    unsigned k0, unsigned k1, unsigned out[4]) {
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    const unsigned hi0 = __umulhi(0xd2511f53u, c0);
    const unsigned lo0 = 0xd2511f53u * c0;
    const unsigned hi1 = __umulhi(0xcd9e8d57u, c2);
    const unsigned lo1 = 0xcd9e8d57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

template <class T>
__device__ __forceinline__ void random_body(int normal, unsigned k0, unsigned k1, unsigned long long offset, T* out, long long n) {
  typedef typename Ty<T>::C C;
  const long long per = normal ? 2 : 4;
  const long long counters = (n + per - 1) / per;
  DIMBA_FOR_EACH(k, counters) {
    const unsigned long long c = offset + (unsigned long long)k;
    unsigned w[4];
    philox4x32_10((unsigned)c, (unsigned)(c >> 32), 0u, 0u, k0, k1, w);
    const long long base = k * per;
    if (!normal) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if (base + j < n) out[base + j] = Ty<T>::store((C)((double)(w[j] >> 8) * 5.9604644775390625e-8));
      }
    } else {
      const double u1 = ((double)w[0] + 1.0) / 4294967296.0;
      const double u2 = (double)w[1] / 4294967296.0;
      const double r = sqrt(-2.0 * log(u1));
      const double theta = 6.283185307179586 * u2;
      out[base] = Ty<T>::store((C)(r * cos(theta)));
      if (base + 1 < n) out[base + 1] = Ty<T>::store((C)(r * sin(theta)));
    }
  }
}

#define DIMBA_RANDOM(name, T) \
  extern "C" __global__ void random_##name(int normal, unsigned k0, unsigned k1, unsigned long long offset, T* out, long long n) { \
    random_body<T>(normal, k0, k1, offset, out, n); \
  }
DIMBA_RANDOM(f32, float)
DIMBA_RANDOM(f64, double)
DIMBA_RANDOM(bf16, bf16)
DIMBA_RANDOM(f16, f16)
