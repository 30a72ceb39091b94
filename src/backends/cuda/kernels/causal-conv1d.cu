// Depthwise causal conv1d (Mamba's conv1d, padding K-1 cut back to L outputs; reference:
// src/backends/cpu/kernels/causal-conv1d.ts):
//   out[b, d, t] = Σ_k w[d, k] x[b, d, t - (K-1) + k],  x taken as 0 before t = 0.
// x, gy, out, gx [B, D, L] contiguous in storage type T; w [D, K] and gw in the compute type S
// (float, or double for float64), cast by the launcher.
//   causal_conv1d_<T>           one thread per output element, taps summed in S
//   causal_conv1d_gx_<T>        gx[s] = Σ_k w[k] gy[s + K-1-k], one thread per element
//   causal_conv1d_gw_<T>        one block per channel d: gw[d, k] = Σ_{b,t} gy[b,d,t] x[b,d,t-(K-1-k)],
//                               a block reduction per tap
#include "common.cuh"

template <class T>
__device__ void causal_conv1d_body(const T* x, const typename Ty<T>::C* w, T* out, long long n, long long dim,
    long long len, int taps) {
  typedef typename Ty<T>::C S;
  DIMBA_FOR_EACH(i, n) {
    const long long row = i / len;
    const long long t = i - row * len;
    const S* wd = w + (row % dim) * taps;
    S acc = (S)0;
    for (int k = 0; k < taps; ++k) {
      const long long shift = taps - 1 - k;
      if (t >= shift) acc += wd[k] * Ty<T>::load(x[i - shift]);
    }
    out[i] = Ty<T>::store(acc);
  }
}

template <class T>
__device__ void causal_conv1d_gx_body(const typename Ty<T>::C* w, const T* gy, T* gx, long long n, long long dim,
    long long len, int taps) {
  typedef typename Ty<T>::C S;
  DIMBA_FOR_EACH(i, n) {
    const long long row = i / len;
    const long long t = i - row * len;
    const S* wd = w + (row % dim) * taps;
    S acc = (S)0;
    for (int k = 0; k < taps; ++k) {
      const long long shift = taps - 1 - k;
      if (t + shift < len) acc += wd[k] * Ty<T>::load(gy[i + shift]);
    }
    gx[i] = Ty<T>::store(acc);
  }
}

template <class T>
__device__ void causal_conv1d_gw_body(const T* x, const T* gy, typename Ty<T>::C* gw, long long batch, long long dim,
    long long len, int taps) {
  typedef typename Ty<T>::C S;
  __shared__ S shm[32];
  const long long d = blockIdx.x;
  const long long count = batch * len;
  for (int k = 0; k < taps; ++k) {
    const long long shift = taps - 1 - k;
    S acc = (S)0;
    for (long long j = threadIdx.x; j < count; j += blockDim.x) {
      const long long b = j / len;
      const long long t = j - b * len;
      if (t >= shift) {
        const long long i = (b * dim + d) * len + t;
        acc += Ty<T>::load(gy[i]) * Ty<T>::load(x[i - shift]);
      }
    }
    acc = block_reduce(acc, SumOp(), (S)0, shm);
    if (threadIdx.x == 0) gw[d * taps + k] = acc;
  }
}

#define DIMBA_CAUSAL_CONV1D(name, T) \
  extern "C" __global__ void causal_conv1d_##name(const T* x, const Ty<T>::C* w, T* out, long long n, long long dim, \
      long long len, int taps) { \
    causal_conv1d_body<T>(x, w, out, n, dim, len, taps); \
  } \
  extern "C" __global__ void causal_conv1d_gx_##name(const Ty<T>::C* w, const T* gy, T* gx, long long n, long long dim, \
      long long len, int taps) { \
    causal_conv1d_gx_body<T>(w, gy, gx, n, dim, len, taps); \
  } \
  extern "C" __global__ void causal_conv1d_gw_##name(const T* x, const T* gy, Ty<T>::C* gw, long long batch, \
      long long dim, long long len, int taps) { \
    causal_conv1d_gw_body<T>(x, gy, gw, batch, dim, len, taps); \
  }
DIMBA_CAUSAL_CONV1D(f32, float)
DIMBA_CAUSAL_CONV1D(f64, double)
DIMBA_CAUSAL_CONV1D(bf16, bf16)
DIMBA_CAUSAL_CONV1D(f16, f16)
