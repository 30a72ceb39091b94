// adaLN modulation (src/ops/modulate.ts): x viewed as [G, M, C], G groups of M rows, a
// modulation row [C] per group (shift, scale, gate: pointer + group stride, column stride 1).
//   norm_modulate:          y = norm(x) * (1 + scale) + shift, mean / rstd per row (float32)
//   norm_modulate_backward: gx, and per-block partial column sums of gy and gy * xhat
//   gated_residual:         out = x + gate * y
//   gated_residual_backward: gy = g * gate, and per-block partial column sums of g * y
//   modulate_colsum:        sums the partials over the blocks of each group (fixed order, so the
//                           modulation gradients are deterministic, unlike float atomics)
//
// Geometry: block b serves group b / P, rows [(b % P) * rowsPer, ...) of it. A block spans one
// row: thread t owns vectors t, t + blockDim, ... (K of them) of V elements, so its modulation
// values and column sums stay in registers for every row the block visits, and each row of x
// is read from memory once (kept in registers between the statistics and the write). V is 16
// bytes of T when the launcher found C and every address aligned for it, else 1.
// Statistics and sums in the compute type (float for half types, double for float64).
#include "common.cuh"

template <class T, int V> struct __align__(sizeof(T) * V) ModPack { T v[V]; };

template <class T, int V>
__device__ __forceinline__ void mod_load(const T* p, typename Ty<T>::C (&out)[V]) {
  const ModPack<T, V> pk = *reinterpret_cast<const ModPack<T, V>*>(p);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = Ty<T>::load(pk.v[i]);
}

template <class T, int V>
__device__ __forceinline__ void mod_store(T* p, const typename Ty<T>::C (&in)[V]) {
  ModPack<T, V> pk;
#pragma unroll
  for (int i = 0; i < V; ++i) pk.v[i] = Ty<T>::store(in[i]);
  *reinterpret_cast<ModPack<T, V>*>(p) = pk;
}

// Sums a and b over the block (two reductions for one pair of barriers); every thread gets both.
template <class C>
__device__ __forceinline__ void mod_block_sum2(C& a, C& b, C* shm) {
  a = warp_reduce(a, SumOp());
  b = warp_reduce(b, SumOp());
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  __syncthreads();  // shm may still be read by the previous row's reduction
  if (lane == 0) {
    shm[warp] = a;
    shm[32 + warp] = b;
  }
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  a = warp_reduce(lane < warps ? shm[lane] : (C)0, SumOp());
  b = warp_reduce(lane < warps ? shm[32 + lane] : (C)0, SumOp());
}

struct ModSpan {
  long long g, r0, r1;
};

__device__ __forceinline__ ModSpan mod_span(long long M, long long P, long long rowsPer) {
  ModSpan s;
  s.g = blockIdx.x / P;
  s.r0 = (blockIdx.x % P) * rowsPer;
  s.r1 = s.r0 + rowsPer < M ? s.r0 + rowsPer : M;
  return s;
}

// Writes this block's column sums (vectors the thread owns) into row blockIdx.x of part [blocks, C].
template <class T, int V, int K>
__device__ __forceinline__ void mod_store_partials(typename Ty<T>::C* part, long long C, long long nvec,
    const typename Ty<T>::C (&acc)[K][V]) {
  typedef typename Ty<T>::C Cm;
  Cm* dst = part + (long long)blockIdx.x * C;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const long long v = threadIdx.x + (long long)k * blockDim.x;
    if (v < nvec) {
#pragma unroll
      for (int i = 0; i < V; ++i) dst[v * V + i] = acc[k][i];
    }
  }
}

template <class T, int V, int K>
__device__ void norm_modulate_body(int rms, const T* x, const T* shift, long long shiftStride, const T* scale,
    long long scaleStride, T* y, float* mean, float* rstd, long long M, long long C, long long P, long long rowsPer,
    double eps) {
  typedef typename Ty<T>::C Cm;
  __shared__ Cm shm[64];
  const ModSpan s = mod_span(M, P, rowsPer);
  const long long nvec = C / V;
  Cm sh[K][V], s1[K][V];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const long long v = threadIdx.x + (long long)k * blockDim.x;
    if (v < nvec) {
      mod_load<T, V>(shift + s.g * shiftStride + v * V, sh[k]);
      mod_load<T, V>(scale + s.g * scaleStride + v * V, s1[k]);
#pragma unroll
      for (int i = 0; i < V; ++i) s1[k][i] += (Cm)1;
    }
  }
  for (long long r = s.r0; r < s.r1; ++r) {
    const long long row = s.g * M + r;
    const T* xr = x + row * C;
    Cm xv[K][V];
    Cm sum = (Cm)0, none = (Cm)0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long v = threadIdx.x + (long long)k * blockDim.x;
      if (v < nvec) {
        mod_load<T, V>(xr + v * V, xv[k]);
#pragma unroll
        for (int i = 0; i < V; ++i) sum += xv[k][i];
      }
    }
    Cm mu = (Cm)0;
    if (!rms) {
      mod_block_sum2(sum, none, shm);
      mu = sum / (Cm)C;
    }
    // The variance as a second sum over x - mean (from registers): no E[x^2] - E[x]^2 cancellation.
    Cm sq = (Cm)0;
    none = (Cm)0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long v = threadIdx.x + (long long)k * blockDim.x;
      if (v < nvec) {
#pragma unroll
        for (int i = 0; i < V; ++i) {
          const Cm d = xv[k][i] - mu;
          sq += d * d;
        }
      }
    }
    mod_block_sum2(sq, none, shm);
    const Cm rs = (Cm)1 / m_sqrt(sq / (Cm)C + (Cm)eps);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long v = threadIdx.x + (long long)k * blockDim.x;
      if (v < nvec) {
        Cm o[V];
#pragma unroll
        for (int i = 0; i < V; ++i) o[i] = (xv[k][i] - mu) * rs * s1[k][i] + sh[k][i];
        mod_store<T, V>(y + row * C + v * V, o);
      }
    }
    if (threadIdx.x == 0) {
      mean[row] = (float)mu;
      rstd[row] = (float)rs;
    }
  }
}

// gn = gy * (1 + scale); gx = rstd * (gn - mean(gn) [layer only] - xhat * mean(gn * xhat)).
// part [2, G * P, C]: the block's sums of gy (shift) and of gy * xhat (scale).
template <class T, int V, int K>
__device__ void norm_modulate_backward_body(int rms, const T* x, const T* scale, long long scaleStride,
    const float* mean, const float* rstd, const T* gy, T* gx, typename Ty<T>::C* part, long long G, long long M,
    long long C, long long P, long long rowsPer) {
  typedef typename Ty<T>::C Cm;
  __shared__ Cm shm[64];
  const ModSpan s = mod_span(M, P, rowsPer);
  const long long nvec = C / V;
  Cm s1[K][V], accShift[K][V], accScale[K][V];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const long long v = threadIdx.x + (long long)k * blockDim.x;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      accShift[k][i] = (Cm)0;
      accScale[k][i] = (Cm)0;
    }
    if (v < nvec) {
      mod_load<T, V>(scale + s.g * scaleStride + v * V, s1[k]);
#pragma unroll
      for (int i = 0; i < V; ++i) s1[k][i] += (Cm)1;
    }
  }
  for (long long r = s.r0; r < s.r1; ++r) {
    const long long row = s.g * M + r;
    const Cm mu = (Cm)mean[row];
    const Cm rs = (Cm)rstd[row];
    Cm xh[K][V], gn[K][V];
    Cm a = (Cm)0, b = (Cm)0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long v = threadIdx.x + (long long)k * blockDim.x;
      if (v < nvec) {
        Cm gv[V];
        mod_load<T, V>(x + row * C + v * V, xh[k]);
        mod_load<T, V>(gy + row * C + v * V, gv);
#pragma unroll
        for (int i = 0; i < V; ++i) {
          xh[k][i] = (xh[k][i] - mu) * rs;
          gn[k][i] = gv[i] * s1[k][i];
          a += gn[k][i];
          b += gn[k][i] * xh[k][i];
          accShift[k][i] += gv[i];
          accScale[k][i] += gv[i] * xh[k][i];
        }
      }
    }
    mod_block_sum2(a, b, shm);
    const Cm center = rms ? (Cm)0 : a / (Cm)C;
    const Cm dotMean = b / (Cm)C;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long v = threadIdx.x + (long long)k * blockDim.x;
      if (v < nvec) {
        Cm o[V];
#pragma unroll
        for (int i = 0; i < V; ++i) o[i] = rs * (gn[k][i] - center - xh[k][i] * dotMean);
        mod_store<T, V>(gx + row * C + v * V, o);
      }
    }
  }
  mod_store_partials<T, V, K>(part, C, nvec, accShift);
  mod_store_partials<T, V, K>(part + G * P * C, C, nvec, accScale);
}

template <class T, int V, int K>
__device__ void gated_residual_body(const T* x, const T* gate, long long gateStride, const T* y, T* out,
    long long M, long long C, long long P, long long rowsPer) {
  typedef typename Ty<T>::C Cm;
  const ModSpan s = mod_span(M, P, rowsPer);
  const long long nvec = C / V;
  Cm ga[K][V];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const long long v = threadIdx.x + (long long)k * blockDim.x;
    if (v < nvec) mod_load<T, V>(gate + s.g * gateStride + v * V, ga[k]);
  }
  for (long long r = s.r0; r < s.r1; ++r) {
    const long long base = (s.g * M + r) * C;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long v = threadIdx.x + (long long)k * blockDim.x;
      if (v < nvec) {
        Cm xv[V], yv[V];
        mod_load<T, V>(x + base + v * V, xv);
        mod_load<T, V>(y + base + v * V, yv);
#pragma unroll
        for (int i = 0; i < V; ++i) xv[i] += ga[k][i] * yv[i];
        mod_store<T, V>(out + base + v * V, xv);
      }
    }
  }
}

// part [G * P, C]: the block's sums of g * y.
template <class T, int V, int K>
__device__ void gated_residual_backward_body(const T* gate, long long gateStride, const T* y, const T* g, T* gy,
    typename Ty<T>::C* part, long long M, long long C, long long P, long long rowsPer) {
  typedef typename Ty<T>::C Cm;
  const ModSpan s = mod_span(M, P, rowsPer);
  const long long nvec = C / V;
  Cm ga[K][V], acc[K][V];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const long long v = threadIdx.x + (long long)k * blockDim.x;
#pragma unroll
    for (int i = 0; i < V; ++i) acc[k][i] = (Cm)0;
    if (v < nvec) mod_load<T, V>(gate + s.g * gateStride + v * V, ga[k]);
  }
  for (long long r = s.r0; r < s.r1; ++r) {
    const long long base = (s.g * M + r) * C;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long v = threadIdx.x + (long long)k * blockDim.x;
      if (v < nvec) {
        Cm gv[V], yv[V], o[V];
        mod_load<T, V>(g + base + v * V, gv);
        mod_load<T, V>(y + base + v * V, yv);
#pragma unroll
        for (int i = 0; i < V; ++i) {
          o[i] = gv[i] * ga[k][i];
          acc[k][i] += gv[i] * yv[i];
        }
        mod_store<T, V>(gy + base + v * V, o);
      }
    }
  }
  mod_store_partials<T, V, K>(part, C, nvec, acc);
}

// out_j[g, c] = sum over p of part[j][g * P + p][c] for j < count (outputs out0, out1).
template <class T>
__device__ void modulate_colsum_body(const typename Ty<T>::C* part, T* out0, T* out1, long long G, long long P,
    long long C, int count) {
  typedef typename Ty<T>::C Cm;
  const long long n = (long long)count * G * C;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long j = i / (G * C);
    const long long gc = i - j * G * C;
    const long long g = gc / C;
    const long long c = gc - g * C;
    const Cm* src = part + j * G * P * C + g * P * C + c;
    Cm sum = (Cm)0;
    for (long long p = 0; p < P; ++p) sum += src[p * C];
    (j == 0 ? out0 : out1)[gc] = Ty<T>::store(sum);
  }
}

#define DIMBA_MODULATE_VK(name, T, V, K) \
  extern "C" __global__ void norm_modulate_##name##_v##V##_k##K(int rms, const T* x, const T* shift, long long shiftStride, \
      const T* scale, long long scaleStride, T* y, float* mean, float* rstd, long long M, long long C, long long P, \
      long long rowsPer, double eps) { \
    norm_modulate_body<T, V, K>(rms, x, shift, shiftStride, scale, scaleStride, y, mean, rstd, M, C, P, rowsPer, eps); \
  } \
  extern "C" __global__ void norm_modulate_backward_##name##_v##V##_k##K(int rms, const T* x, const T* scale, \
      long long scaleStride, const float* mean, const float* rstd, const T* gy, T* gx, Ty<T>::C* part, long long G, \
      long long M, long long C, long long P, long long rowsPer) { \
    norm_modulate_backward_body<T, V, K>(rms, x, scale, scaleStride, mean, rstd, gy, gx, part, G, M, C, P, rowsPer); \
  } \
  extern "C" __global__ void gated_residual_##name##_v##V##_k##K(const T* x, const T* gate, long long gateStride, \
      const T* y, T* out, long long M, long long C, long long P, long long rowsPer) { \
    gated_residual_body<T, V, K>(x, gate, gateStride, y, out, M, C, P, rowsPer); \
  } \
  extern "C" __global__ void gated_residual_backward_##name##_v##V##_k##K(const T* gate, long long gateStride, \
      const T* y, const T* g, T* gy, Ty<T>::C* part, long long M, long long C, long long P, long long rowsPer) { \
    gated_residual_backward_body<T, V, K>(gate, gateStride, y, g, gy, part, M, C, P, rowsPer); \
  }
#define DIMBA_MODULATE_V(name, T, V) \
  DIMBA_MODULATE_VK(name, T, V, 1) DIMBA_MODULATE_VK(name, T, V, 2) DIMBA_MODULATE_VK(name, T, V, 4) DIMBA_MODULATE_VK(name, T, V, 8)
#define DIMBA_MODULATE(name, T, VEC) \
  DIMBA_MODULATE_V(name, T, 1) DIMBA_MODULATE_V(name, T, VEC) \
  extern "C" __global__ void modulate_colsum_##name(const Ty<T>::C* part, T* out0, T* out1, long long G, long long P, \
      long long C, int count) { \
    modulate_colsum_body<T>(part, out0, out1, G, P, C, count); \
  }
#if DIMBA_WANTS(0)
DIMBA_MODULATE(f32, float, 4)
#endif
#if DIMBA_WANTS(1)
DIMBA_MODULATE(f64, double, 2)
#endif
#if DIMBA_WANTS(2)
DIMBA_MODULATE(bf16, bf16, 8)
#endif
#if DIMBA_WANTS(3)
DIMBA_MODULATE(f16, f16, 8)
#endif
