// Depthwise causal conv1d with fused bias and SiLU (Mamba's conv1d, padding K-1 cut back to L
// outputs, as causal_conv1d_fn; reference: src/backends/cpu/kernels/causal-conv1d.ts):
//   v[b, d, t]   = Σ_k w[d, k] x[b, d, t - (K-1) + k] + bias[d],  x taken as 0 before t = 0
//   out[b, d, t] = silu ? v σ(v) : v
// x, out, gy, gx are [B, D, L] views with any element strides (sb, sd, st), negative included,
// in storage type T; w [D, K] and bias [D] contiguous in their own stored dtypes (wdt, bdt: codes
// as common.cuh's load_dyn, any floating one), converted to the compute type S (float, or double
// for float64) when a thread loads them, so no cast launch precedes a call; gw, gbias are
// contiguous in S. Taps whose x lies before t = 0 (forward) or whose gv lies past L - 1
// (backward) are skipped, not multiplied by zero, as on the CPU.
//
// Two thread layouts, both correct for any strides; the launcher picks by x's memory order:
//   walk    (channel-last x: |sd| < |st|, K <= 4) threads along d, V channels each (V = 2 or 4: one
//           vector load per step, where sd = 1 and everything is aligned), each walking a chunk
//           of time steps with the last K-1 inputs in registers. Block = bx channel groups by
//           `by` time chunks; grid = groupBlocks x chunkBlocks x B, flattened into blockIdx.x.
//           The forward runs straight-line groups of CC1D_UNROLL steps (SiLU a template
//           parameter, the first K-1 steps of a row peeled off, bias absent = adding -0, which
//           leaves every value as it is), the next group's loads in flight while one is computed.
//   direct  (time-contiguous x, or any K) one thread per time step, taps read directly.
// Backward: v is recomputed from x (K taps) rather than saved; gv = gy silu'(v) (gy without
// silu); gx[s] = Σ_k w[k] gv[s + K-1-k]; each block writes its partial sums of
// gw[d, k] = Σ gv[t] x[t - (K-1-k)] and gbias[d] = Σ gv[t] to partial[p, d, 0..K] (fixed-order
// reductions in S); cc1d_reduce_* then sums the P rows in order: deterministic, no atomics.
// Block and element coordinates are 32-bit (one division per thread, not per element);
// memory offsets are 64-bit products of them.
#include "common.cuh"

#define CC1D_MAX_THREADS 256

template <class T, int V> struct alignas(sizeof(T) * V) Cc1dVec { T v[V]; };

__device__ __forceinline__ float cc1d_exp(float v) { return expf(v); }
__device__ __forceinline__ double cc1d_exp(double v) { return exp(v); }

// σ(v) with exp(-|v|), which never overflows (as the CPU's math.ts sigmoid).
template <class S> __device__ __forceinline__ S cc1d_sigmoid(S v) {
  const S e = cc1d_exp(v < (S)0 ? v : -v);
  return v >= (S)0 ? (S)1 / ((S)1 + e) : e / ((S)1 + e);
}

template <class S> __device__ __forceinline__ S cc1d_silu(S v) { return v * cc1d_sigmoid(v); }

template <class S> __device__ __forceinline__ S cc1d_silu_grad(S v) {
  const S s = cc1d_sigmoid(v);
  return s * ((S)1 + v * ((S)1 - s));
}

// Element i of a weight or bias stored as dtype `code` (0 float32, 1 float64, 2 bfloat16, 3
// float16), in the compute type S. The code is the same for every thread (no divergence) and each
// thread loads its V K + V parameters once. float64 parameters come only with S = double (the
// launcher computes in float64 when any operand is float64), so every conversion is exact.
template <class S> __device__ __forceinline__ S cc1d_param(const void* p, int code, int i) {
  switch (code) {
    case 1: return (S)static_cast<const double*>(p)[i];
    case 2: return (S)Ty<bf16>::load(static_cast<const bf16*>(p)[i]);
    case 3: return (S)Ty<f16>::load(static_cast<const f16*>(p)[i]);
    default: return (S)static_cast<const float*>(p)[i];
  }
}

// This thread's weights wr[v][k] = w[d0 + v, k] and biases (-0 without a bias: v + (-0) = v for
// every v, -0 included, so the forward adds it unconditionally and stays bit-identical).
template <class S, int K, int V> __device__ __forceinline__ void cc1d_params(const void* w, int wdt, const void* bias,
    int bdt, int d0, S (&wr)[V][K], S (&br)[V]) {
#pragma unroll
  for (int v = 0; v < V; ++v) {
#pragma unroll
    for (int k = 0; k < K; ++k) wr[v][k] = cc1d_param<S>(w, wdt, (d0 + v) * K + k);
    br[v] = bias != nullptr ? cc1d_param<S>(bias, bdt, d0 + v) : -(S)0;
  }
}

// V channels at p (V > 1 only where the channel stride is 1 and p is V-aligned).
template <class T, int V> __device__ __forceinline__ void cc1d_load(const T* p, typename Ty<T>::C (&r)[V]) {
  if (V == 1) {
    r[0] = Ty<T>::load(p[0]);
  } else {
    const Cc1dVec<T, V> q = *reinterpret_cast<const Cc1dVec<T, V>*>(p);
#pragma unroll
    for (int v = 0; v < V; ++v) r[v] = Ty<T>::load(q.v[v]);
  }
}

template <class T, int V> __device__ __forceinline__ void cc1d_store(T* p, const typename Ty<T>::C (&r)[V]) {
  if (V == 1) {
    p[0] = Ty<T>::store(r[0]);
  } else {
    Cc1dVec<T, V> q;
#pragma unroll
    for (int v = 0; v < V; ++v) q.v[v] = Ty<T>::store(r[v]);
    *reinterpret_cast<Cc1dVec<T, V>*>(p) = q;
  }
}

// Σ_k w[k] win[k] over all K taps (step t >= K-1; win[K-1] is x[t]), k increasing.
template <class S, int K> __device__ __forceinline__ S cc1d_dot_full(const S (&w)[K], const S (&win)[K]) {
  S acc = (S)0;
#pragma unroll
  for (int k = 0; k < K; ++k) acc += w[k] * win[k];
  return acc;
}

// The same over the taps inside the sequence at step t (those with t - (K-1) + k >= 0).
template <class S, int K> __device__ __forceinline__ S cc1d_dot(const S (&w)[K], const S (&win)[K], int t) {
  if (t >= K - 1) return cc1d_dot_full<S, K>(w, win);
  S acc = (S)0;
#pragma unroll
  for (int k = 0; k < K; ++k) if (k >= K - 1 - t) acc += w[k] * win[k];
  return acc;
}

// Which channel group, time chunk and batch row this thread of a walk block serves.
struct Cc1dWalkPos { int b, cb, tx, ty, by, d0, t0; };

template <int V> __device__ __forceinline__ Cc1dWalkPos cc1d_walk_pos(int bx, int group_blocks, int chunk_blocks, int chunk) {
  Cc1dWalkPos p;
  int blk = blockIdx.x;
  const int gb = blk % group_blocks;
  blk /= group_blocks;
  p.cb = blk % chunk_blocks;
  p.b = blk / chunk_blocks;
  p.tx = threadIdx.x % bx;
  p.ty = threadIdx.x / bx;
  p.by = blockDim.x / bx;
  p.d0 = (gb * bx + p.tx) * V;
  p.t0 = (p.cb * p.by + p.ty) * chunk;
  return p;
}

// Steps whose loads are issued together before any of them is computed (memory parallelism).
#define CC1D_UNROLL 4

// V channels of one step as stored (converted where used, so a prefetched group holds half the
// registers for 16-bit types).
template <class T, int V> __device__ __forceinline__ Cc1dVec<T, V> cc1d_raw(const T* p) {
  return *reinterpret_cast<const Cc1dVec<T, V>*>(p);
}

// Step t of V channels: shifts x[t] = raw into the windows and returns the outputs in o.
template <class T, int K, int V, bool SILU, bool EDGE> __device__ __forceinline__ void cc1d_fwd_step(
    typename Ty<T>::C (&win)[V][K], const Cc1dVec<T, V>& raw, const typename Ty<T>::C (&wr)[V][K],
    const typename Ty<T>::C (&br)[V], int t, typename Ty<T>::C (&o)[V]) {
  typedef typename Ty<T>::C S;
#pragma unroll
  for (int v = 0; v < V; ++v) {
#pragma unroll
    for (int j = 0; j < K - 1; ++j) win[v][j] = win[v][j + 1];
    win[v][K - 1] = Ty<T>::load(raw.v[v]);
    S acc = EDGE ? cc1d_dot<S, K>(wr[v], win[v], t) : cc1d_dot_full<S, K>(wr[v], win[v]);
    acc += br[v];
    o[v] = SILU ? cc1d_silu(acc) : acc;
  }
}

template <class T, int K, int V, bool SILU>
__device__ __forceinline__ void cc1d_fwd_walk_body(const T* __restrict__ x, long long xsb, long long xsd,
    long long xst, const void* __restrict__ w, int wdt, const void* __restrict__ bias, int bdt, T* __restrict__ out,
    long long osb, long long osd, long long ost, int dim, int len, int chunk, int bx, int group_blocks,
    int chunk_blocks) {
  typedef typename Ty<T>::C S;
  const Cc1dWalkPos p = cc1d_walk_pos<V>(bx, group_blocks, chunk_blocks, chunk);
  if (p.d0 >= dim || p.t0 >= len) return;
  const int t1 = min(p.t0 + chunk, len);
  const T* xp = x + (long long)p.b * xsb + (long long)p.d0 * xsd;
  T* op = out + (long long)p.b * osb + (long long)p.d0 * osd;
  // win[v][j] = x[t - (K-1) + j] once step t has loaded x[t] into win[v][K-1].
  S win[V][K];
#pragma unroll
  for (int j = 0; j < K - 1; ++j) {
    const int t = p.t0 - (K - 1) + j;
    S r[V];
    if (t >= 0) cc1d_load<T, V>(xp + (long long)t * xst, r);
#pragma unroll
    for (int v = 0; v < V; ++v) win[v][j + 1] = t >= 0 ? r[v] : (S)0;
  }
  S wr[V][K];
  S br[V];
  cc1d_params<S, K, V>(w, wdt, bias, bdt, p.d0, wr, br);
  int t = p.t0;
  // Steps whose window reaches before t = 0 (a row's first chunk only) skip those taps.
  for (; t < t1 && t < K - 1; ++t) {
    S o[V];
    cc1d_fwd_step<T, K, V, SILU, true>(win, cc1d_raw<T, V>(xp + (long long)t * xst), wr, br, t, o);
    cc1d_store<T, V>(op + (long long)t * ost, o);
  }
  // Whole groups of U steps without bounds checks; group g + 1's loads are issued before group g
  // is computed, so each thread keeps two groups of loads in flight.
  constexpr int U = CC1D_UNROLL;
  const int tfull = t + (t1 - t) / U * U;
  if (t < tfull) {
    Cc1dVec<T, V> cur[U];
#pragma unroll
    for (int u = 0; u < U; ++u) cur[u] = cc1d_raw<T, V>(xp + (long long)(t + u) * xst);
    for (; t < tfull; t += U) {
      Cc1dVec<T, V> nxt[U];
      const bool more = t + U < tfull;
      if (more) {
#pragma unroll
        for (int u = 0; u < U; ++u) nxt[u] = cc1d_raw<T, V>(xp + (long long)(t + U + u) * xst);
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        S o[V];
        cc1d_fwd_step<T, K, V, SILU, false>(win, cur[u], wr, br, t + u, o);
        cc1d_store<T, V>(op + (long long)(t + u) * ost, o);
      }
      if (more) {
#pragma unroll
        for (int u = 0; u < U; ++u) cur[u] = nxt[u];
      }
    }
  }
  for (; t < t1; ++t) {
    S o[V];
    cc1d_fwd_step<T, K, V, SILU, false>(win, cc1d_raw<T, V>(xp + (long long)t * xst), wr, br, t, o);
    cc1d_store<T, V>(op + (long long)t * ost, o);
  }
}

template <class T, int K, int V>
__device__ void cc1d_fwd_walk(const T* __restrict__ x, long long xsb, long long xsd, long long xst,
    const void* __restrict__ w, int wdt, const void* __restrict__ bias, int bdt, T* __restrict__ out,
    long long osb, long long osd, long long ost, int dim, int len, int chunk, int bx, int group_blocks,
    int chunk_blocks, int silu) {
  if (silu) {
    cc1d_fwd_walk_body<T, K, V, true>(x, xsb, xsd, xst, w, wdt, bias, bdt, out, osb, osd, ost, dim, len, chunk, bx,
        group_blocks, chunk_blocks);
  } else {
    cc1d_fwd_walk_body<T, K, V, false>(x, xsb, xsd, xst, w, wdt, bias, bdt, out, osb, osd, ost, dim, len, chunk, bx,
        group_blocks, chunk_blocks);
  }
}

template <class T, int K, int V>
__device__ void cc1d_bwd_walk(const T* __restrict__ x, long long xsb, long long xsd, long long xst,
    const void* __restrict__ w, int wdt, const void* __restrict__ bias, int bdt, const T* __restrict__ gy,
    long long gsb, long long gsd, long long gst, T* __restrict__ gx, long long hsb, long long hsd, long long hst,
    typename Ty<T>::C* __restrict__ partial, int dim, int len, int chunk, int bx, int group_blocks, int chunk_blocks,
    int silu) {
  typedef typename Ty<T>::C S;
  __shared__ S shm[CC1D_MAX_THREADS * V * (K + 1)];
  const Cc1dWalkPos p = cc1d_walk_pos<V>(bx, group_blocks, chunk_blocks, chunk);
  // This thread's sums over its chunk: pw[v][k] for gw, pb[v] for gbias.
  S pw[V][K];
  S pb[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    pb[v] = (S)0;
#pragma unroll
    for (int k = 0; k < K; ++k) pw[v][k] = (S)0;
  }
  if (p.d0 < dim && p.t0 < len) {
    const int t1 = min(p.t0 + chunk, len);
    S wr[V][K];
    S br[V];
    cc1d_params<S, K, V>(w, wdt, bias, bdt, p.d0, wr, br);
    const T* xp = x + (long long)p.b * xsb + (long long)p.d0 * xsd;
    const T* gp = gy + (long long)p.b * gsb + (long long)p.d0 * gsd;
    T* hp = gx + (long long)p.b * hsb + (long long)p.d0 * hsd;
    // win: x[t - (K-1) + j]; gwin: gv[t - (K-1) + j] (zero before the chunk: never used there).
    S win[V][K];
    S gwin[V][K];
#pragma unroll
    for (int j = 0; j < K - 1; ++j) {
      const int t = p.t0 - (K - 1) + j;
      S r[V];
      if (t >= 0) cc1d_load<T, V>(xp + (long long)t * xst, r);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        win[v][j + 1] = t >= 0 ? r[v] : (S)0;
        gwin[v][j + 1] = (S)0;
      }
    }
    // gx for s in [t0, t1) needs gv up to s + K-1: steps run to t1 + K-2, those past the chunk
    // only recompute gv (the next chunk counts them in its sums), those past L add nothing.
    const int tend = t1 + K - 1;
    const int tload = min(tend, len);
    for (int t = p.t0; t < tend; t += CC1D_UNROLL) {
      S xv[CC1D_UNROLL][V];
      S gv[CC1D_UNROLL][V];
#pragma unroll
      for (int u = 0; u < CC1D_UNROLL; ++u) {
        if (t + u < tload) {
          cc1d_load<T, V>(xp + (long long)(t + u) * xst, xv[u]);
          cc1d_load<T, V>(gp + (long long)(t + u) * gst, gv[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < CC1D_UNROLL; ++u) {
        const int tt = t + u;
        if (tt < tend) {
          S o[V];
#pragma unroll
          for (int v = 0; v < V; ++v) {
            S g = (S)0;
            if (tt < len) {
#pragma unroll
              for (int j = 0; j < K - 1; ++j) win[v][j] = win[v][j + 1];
              win[v][K - 1] = xv[u][v];
              g = gv[u][v];
              if (silu) {
                S acc = cc1d_dot<S, K>(wr[v], win[v], tt);
                if (bias != nullptr) acc += br[v];
                g *= cc1d_silu_grad(acc);
              }
              if (tt < t1) {
                pb[v] += g;
#pragma unroll
                for (int k = 0; k < K; ++k) if (tt - (K - 1) + k >= 0) pw[v][k] += g * win[v][k];
              }
            }
#pragma unroll
            for (int j = 0; j < K - 1; ++j) gwin[v][j] = gwin[v][j + 1];
            gwin[v][K - 1] = g;
            // gx[tt - (K-1)] = Σ_k w[k] gv[tt - k] over gv inside the sequence (tt - k < len).
            S acc = (S)0;
#pragma unroll
            for (int k = 0; k < K; ++k) if (tt - k < len) acc += wr[v][k] * gwin[v][K - 1 - k];
            o[v] = acc;
          }
          if (tt - (K - 1) >= p.t0) cc1d_store<T, V>(hp + (long long)(tt - (K - 1)) * hst, o);
        }
      }
    }
  }
  // Partial sums over the block's time chunks, in chunk order, by the threads of row ty = 0.
  const int slot = threadIdx.x * V * (K + 1);
#pragma unroll
  for (int v = 0; v < V; ++v) {
#pragma unroll
    for (int k = 0; k < K; ++k) shm[slot + v * (K + 1) + k] = pw[v][k];
    shm[slot + v * (K + 1) + K] = pb[v];
  }
  __syncthreads();
  if (p.ty == 0 && p.d0 < dim) {
    S* dst = partial + ((long long)(p.b * chunk_blocks + p.cb) * dim + p.d0) * (K + 1);
    for (int i = 0; i < V * (K + 1); ++i) {
      S acc = (S)0;
      for (int y = 0; y < p.by; ++y) acc += shm[(y * bx + p.tx) * V * (K + 1) + i];
      dst[i] = acc;
    }
  }
}

// One block per (row = b * D + d, tile of blockDim.x time steps).
struct Cc1dDirectPos { int b, d, tile, t; };

__device__ __forceinline__ Cc1dDirectPos cc1d_direct_pos(int dim, int tiles) {
  Cc1dDirectPos p;
  p.tile = blockIdx.x % tiles;
  const int row = blockIdx.x / tiles;
  p.b = row / dim;
  p.d = row - p.b * dim;
  p.t = p.tile * blockDim.x + threadIdx.x;
  return p;
}

// Σ_k w[k] x[t - (K-1) + k] over taps inside the sequence, k increasing.
// w is row d's K weights: w + d K elements of dtype wdt.
template <class T>
__device__ __forceinline__ typename Ty<T>::C cc1d_direct_dot(const T* xp, long long xst, const void* w, int wdt, int w0,
    int taps, int t) {
  typedef typename Ty<T>::C S;
  S acc = (S)0;
  for (int k = taps - 1 - t > 0 ? taps - 1 - t : 0; k < taps; ++k) {
    acc += cc1d_param<S>(w, wdt, w0 + k) * Ty<T>::load(xp[(long long)(t - (taps - 1) + k) * xst]);
  }
  return acc;
}

template <class T>
__device__ void cc1d_fwd_direct(const T* __restrict__ x, long long xsb, long long xsd, long long xst,
    const void* __restrict__ w, int wdt, const void* __restrict__ bias, int bdt, T* __restrict__ out,
    long long osb, long long osd, long long ost, int dim, int len, int taps, int tiles, int silu) {
  typedef typename Ty<T>::C S;
  const Cc1dDirectPos p = cc1d_direct_pos(dim, tiles);
  if (p.t >= len) return;
  const T* xp = x + (long long)p.b * xsb + (long long)p.d * xsd;
  S acc = cc1d_direct_dot(xp, xst, w, wdt, p.d * taps, taps, p.t);
  if (bias != nullptr) acc += cc1d_param<S>(bias, bdt, p.d);
  out[(long long)p.b * osb + (long long)p.d * osd + (long long)p.t * ost] = Ty<T>::store(silu ? cc1d_silu(acc) : acc);
}

// Sum over the block in a fixed order (warp butterflies, then the warps' sums by warp 0); the
// result is valid in thread 0.
template <class S> __device__ __forceinline__ S cc1d_block_sum(S v, S* shm) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  __syncthreads();  // shm may still be read by the previous call
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (int)(blockDim.x >> 5) ? shm[lane] : (S)0;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  }
  return v;
}

template <class T>
__device__ void cc1d_bwd_direct(const T* __restrict__ x, long long xsb, long long xsd, long long xst,
    const void* __restrict__ w, int wdt, const void* __restrict__ bias, int bdt, const T* __restrict__ gy,
    long long gsb, long long gsd, long long gst, T* __restrict__ gx, long long hsb, long long hsd, long long hst,
    typename Ty<T>::C* __restrict__ partial, int dim, int len, int taps, int tiles, int silu) {
  typedef typename Ty<T>::C S;
  __shared__ S shm[32];
  const Cc1dDirectPos p = cc1d_direct_pos(dim, tiles);
  const T* xp = x + (long long)p.b * xsb + (long long)p.d * xsd;
  const T* gp = gy + (long long)p.b * gsb + (long long)p.d * gsd;
  const int w0 = p.d * taps;
  const S bd = bias != nullptr ? cc1d_param<S>(bias, bdt, p.d) : (S)0;
  const bool active = p.t < len;
  // gv at this thread's own step (0 past the sequence, so it adds nothing to the sums).
  S g = (S)0;
  if (active) {
    g = Ty<T>::load(gp[(long long)p.t * gst]);
    if (silu) g *= cc1d_silu_grad(cc1d_direct_dot(xp, xst, w, wdt, w0, taps, p.t) + bd);
    S acc = (S)0;
    for (int k = 0; k < taps; ++k) {
      const int s = p.t + taps - 1 - k;
      if (s >= len) continue;
      S gs = g;
      if (s != p.t) {
        gs = Ty<T>::load(gp[(long long)s * gst]);
        if (silu) gs *= cc1d_silu_grad(cc1d_direct_dot(xp, xst, w, wdt, w0, taps, s) + bd);
      }
      acc += cc1d_param<S>(w, wdt, w0 + k) * gs;
    }
    gx[(long long)p.b * hsb + (long long)p.d * hsd + (long long)p.t * hst] = Ty<T>::store(acc);
  }
  S* dst = partial + ((long long)(p.b * tiles + p.tile) * dim + p.d) * (taps + 1);
  for (int k = 0; k <= taps; ++k) {
    S term = (S)0;
    if (k == taps) term = g;
    else if (active && p.t - (taps - 1 - k) >= 0) term = g * Ty<T>::load(xp[(long long)(p.t - (taps - 1 - k)) * xst]);
    const S sum = cc1d_block_sum(term, shm);
    if (threadIdx.x == 0) dst[k] = sum;
  }
}

// gw[d, k] (j = k < K) and gbias[d] (j = K) from partial[p, d, j], summed over p in order.
template <class S>
__device__ void cc1d_reduce(const S* __restrict__ partial, int rows, int dim, int taps, S* __restrict__ gw,
    S* __restrict__ gbias) {
  const int n = dim * (taps + 1);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  S acc = (S)0;
  for (int r = 0; r < rows; ++r) acc += partial[(long long)r * n + i];
  const int d = i / (taps + 1);
  const int j = i - d * (taps + 1);
  if (j < taps) gw[d * taps + j] = acc;
  else if (gbias != nullptr) gbias[d] = acc;
}

#define CC1D_WALK(name, T, K, V) \
  extern "C" __global__ void __launch_bounds__(CC1D_MAX_THREADS) cc1d_fwd_walk_##name##_k##K##_v##V( \
      const T* x, long long xsb, long long xsd, long long xst, const void* w, int wdt, const void* bias, int bdt, T* out, \
      long long osb, long long osd, long long ost, int dim, int len, int chunk, int bx, int group_blocks, \
      int chunk_blocks, int silu) { \
    cc1d_fwd_walk<T, K, V>(x, xsb, xsd, xst, w, wdt, bias, bdt, out, osb, osd, ost, dim, len, chunk, bx, group_blocks, \
        chunk_blocks, silu); \
  } \
  extern "C" __global__ void __launch_bounds__(CC1D_MAX_THREADS) cc1d_bwd_walk_##name##_k##K##_v##V( \
      const T* x, long long xsb, long long xsd, long long xst, const void* w, int wdt, const void* bias, int bdt, \
      const T* gy, long long gsb, long long gsd, long long gst, T* gx, long long hsb, long long hsd, long long hst, \
      Ty<T>::C* partial, int dim, int len, int chunk, int bx, int group_blocks, int chunk_blocks, int silu) { \
    cc1d_bwd_walk<T, K, V>(x, xsb, xsd, xst, w, wdt, bias, bdt, gy, gsb, gsd, gst, gx, hsb, hsd, hst, partial, dim, len, \
        chunk, bx, group_blocks, chunk_blocks, silu); \
  }

#define CC1D_DIRECT(name, T) \
  extern "C" __global__ void __launch_bounds__(CC1D_MAX_THREADS) cc1d_fwd_direct_##name( \
      const T* x, long long xsb, long long xsd, long long xst, const void* w, int wdt, const void* bias, int bdt, T* out, \
      long long osb, long long osd, long long ost, int dim, int len, int taps, int tiles, int silu) { \
    cc1d_fwd_direct<T>(x, xsb, xsd, xst, w, wdt, bias, bdt, out, osb, osd, ost, dim, len, taps, tiles, silu); \
  } \
  extern "C" __global__ void __launch_bounds__(CC1D_MAX_THREADS) cc1d_bwd_direct_##name( \
      const T* x, long long xsb, long long xsd, long long xst, const void* w, int wdt, const void* bias, int bdt, \
      const T* gy, long long gsb, long long gsd, long long gst, T* gx, long long hsb, long long hsd, long long hst, \
      Ty<T>::C* partial, int dim, int len, int taps, int tiles, int silu) { \
    cc1d_bwd_direct<T>(x, xsb, xsd, xst, w, wdt, bias, bdt, gy, gsb, gsd, gst, gx, hsb, hsd, hst, partial, dim, len, taps, \
        tiles, silu); \
  }

#define CC1D_WALK_K(name, T, V) CC1D_WALK(name, T, 1, V) CC1D_WALK(name, T, 2, V) CC1D_WALK(name, T, 3, V) \
  CC1D_WALK(name, T, 4, V)

#if DIMBA_WANTS(0)
CC1D_DIRECT(f32, float)
CC1D_WALK_K(f32, float, 1)
CC1D_WALK_K(f32, float, 2)
CC1D_WALK_K(f32, float, 4)
#endif
#if DIMBA_WANTS(1)
CC1D_DIRECT(f64, double)
CC1D_WALK_K(f64, double, 1)
#endif
#if DIMBA_WANTS(2)
CC1D_DIRECT(bf16, bf16)
CC1D_WALK_K(bf16, bf16, 1)
CC1D_WALK_K(bf16, bf16, 2)
CC1D_WALK_K(bf16, bf16, 4)
#endif
#if DIMBA_WANTS(3)
CC1D_DIRECT(f16, f16)
CC1D_WALK_K(f16, f16, 1)
CC1D_WALK_K(f16, f16, 2)
CC1D_WALK_K(f16, f16, 4)
#endif

// The weight-gradient reduction is named by its compute type; the float one also serves the
// bf16/f16 storage types, so their parts carry it too (the runtime finds it in the part already
// loaded for the backward's walk kernel).
#if DIMBA_WANTS(0) || DIMBA_WANTS(2) || DIMBA_WANTS(3)
extern "C" __global__ void cc1d_reduce_f32(const float* partial, int rows, int dim, int taps, float* gw, float* gbias) {
  cc1d_reduce<float>(partial, rows, dim, taps, gw, gbias);
}
#endif
#if DIMBA_WANTS(1)
extern "C" __global__ void cc1d_reduce_f64(const double* partial, int rows, int dim, int taps, double* gw, double* gbias) {
  cc1d_reduce<double>(partial, rows, dim, taps, gw, gbias);
}
#endif
