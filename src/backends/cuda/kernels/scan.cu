// Mamba-1 selective scan (mamba_ssm's selective_scan_fn; reference: src/backends/cpu/kernels/scan.ts):
//   Δ_t = softplus(delta_t + bias_d) (or without softplus),
//   x_t = exp(Δ_t A_dn) x_{t-1} + Δ_t B_nt u_t,  y_t = Σ_n C_nt x_t,  out_t = (y_t + D_d u_t) silu(z_t).
//
// Layout (all contiguous): u, delta, z, out [B, D, L]; A [D, N]; B, C [B, G, N, L] (channel d reads
// group d / (D / G)); D, bias [D]. u/delta/z/B/C/gy and the per-element gradients share one storage
// type T; A, D, bias and every accumulated gradient are in the compute type S (float, or double
// for float64), cast by the launcher (kernels/scan.ts).
//
// Parallelisation: NT lanes of one warp serve one (b, d) row, lane l holding the states
// n = l, l + NT, ... (SPL of them) in registers; a block of SCAN_THREADS threads serves
// SCAN_THREADS / NT rows. Time runs sequentially in chunks of K = SCAN_STEPS / SPL steps: the
// row's lanes first compute Δ_t and u_t of the chunk together (coalesced, one softplus per step),
// then every lane advances its states step by step, and y_t is a shuffle reduction across the
// row's lanes. Only lanes of one warp share a row, so __syncwarp orders the per-row buffers.
//
// Backward: pass 1 runs the recurrence forward and stores each chunk's starting state in `bounds`
// [rows, chunks, N]. Pass 2 walks the chunks in reverse: it recomputes the chunk's states from its
// starting state into shared memory (and y_t, for the gate), then sweeps the chunk backwards with
// the adjoint λ_t = C_t g_t + exp(Δ_{t+1} A) λ_{t+1}, carried across chunks in registers.
// dB, dC (shared by the D / G channels of a group), dA, dD and dbias (shared by the batch) are
// summed with atomicAdd into compute-type accumulators.
#include "common.cuh"

#define SCAN_THREADS 128
#define SCAN_STEPS 32

// PyTorch's softplus threshold (linear above 20), as the CPU reference uses.
template <class S> __device__ __forceinline__ S scan_softplus(S x) { return x > (S)20 ? x : m_log1p(m_exp(x)); }
template <class S> __device__ __forceinline__ S scan_sigmoid(S x) {
  return x >= (S)0 ? (S)1 / ((S)1 + m_exp(-x)) : m_exp(x) / ((S)1 + m_exp(x));
}

// Sum over the NT lanes of a row (NT divides 32, so a row never spans warps).
template <int NT, class S> __device__ __forceinline__ S row_sum(S v) {
#pragma unroll
  for (int o = NT / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Where one row's data sits; rows past the end (the last block's tail) run the same steps on row 0
// (so every lane joins the shuffles) and write nothing.
struct ScanRow {
  long long row;    // b * D + d
  long long base;   // first element of the row in u/delta/z/out
  long long bc;     // first element of the row's B/C group (n = 0, t = 0)
  int d;
  bool valid;
};

__device__ __forceinline__ ScanRow scan_row(int rowsPerBlock, int nt, long long rows, long long dim, long long len,
    long long nstate, long long groups) {
  ScanRow r;
  const long long row = (long long)blockIdx.x * rowsPerBlock + threadIdx.x / nt;
  r.valid = row < rows;
  r.row = r.valid ? row : 0;
  const long long b = r.row / dim;
  r.d = (int)(r.row - b * dim);
  r.base = r.row * len;
  const long long g = r.d / (dim / groups);
  r.bc = (b * groups + g) * nstate * len;
  return r;
}

// Fills the row's Δ_t and u_t for steps [t0, t0 + kn), lanes taking every NT-th step.
template <class T, class S>
__device__ __forceinline__ void scan_fill_chunk(const ScanRow& r, int lane, int nt, long long t0, int kn,
    const T* u, const T* delta, S bias, int softplus, S* sdt, S* su) {
  for (int k = lane; k < kn; k += nt) {
    const S pre = Ty<T>::load(delta[r.base + t0 + k]) + bias;
    sdt[k] = softplus ? scan_softplus(pre) : pre;
    su[k] = Ty<T>::load(u[r.base + t0 + k]);
  }
}

template <class T, int NT, int SPL>
__device__ void scan_forward_body(const T* u, const T* delta, const typename Ty<T>::C* A, const T* Bm, const T* Cm,
    const typename Ty<T>::C* Dv, const T* z, const typename Ty<T>::C* bias, T* out, typename Ty<T>::C* last,
    long long rows, long long dim, long long len, long long nstate, long long groups, int softplus) {
  typedef typename Ty<T>::C S;
  constexpr int K = SCAN_STEPS / SPL;
  constexpr int RPB = SCAN_THREADS / NT;
  __shared__ S s_dt[RPB][K];
  __shared__ S s_u[RPB][K];
  __shared__ S s_y[RPB][K];
  const int lr = threadIdx.x / NT;
  const int lane = threadIdx.x % NT;
  const ScanRow r = scan_row(RPB, NT, rows, dim, len, nstate, groups);
  S a[SPL], x[SPL];
  bool on[SPL];
#pragma unroll
  for (int s = 0; s < SPL; ++s) {
    const long long n = lane + s * NT;
    on[s] = n < nstate;
    a[s] = on[s] ? A[r.d * nstate + n] : (S)0;
    x[s] = (S)0;
  }
  const S biasD = bias ? bias[r.d] : (S)0;
  const S skip = Dv ? Dv[r.d] : (S)0;
  for (long long t0 = 0; t0 < len; t0 += K) {
    const int kn = (int)(len - t0 < K ? len - t0 : K);
    __syncwarp();
    scan_fill_chunk<T, S>(r, lane, NT, t0, kn, u, delta, biasD, softplus, s_dt[lr], s_u[lr]);
    __syncwarp();
    for (int k = 0; k < kn; ++k) {
      const S dt = s_dt[lr][k];
      const S dtu = dt * s_u[lr][k];
      S yp = (S)0;
#pragma unroll
      for (int s = 0; s < SPL; ++s) {
        if (on[s]) {
          const long long off = r.bc + (lane + s * NT) * len + t0 + k;
          x[s] = m_exp(dt * a[s]) * x[s] + dtu * Ty<T>::load(Bm[off]);
          yp += Ty<T>::load(Cm[off]) * x[s];
        }
      }
      yp = row_sum<NT>(yp);
      if (lane == 0) s_y[lr][k] = yp;
    }
    __syncwarp();
    if (r.valid) {
      for (int k = lane; k < kn; k += NT) {
        const long long i = r.base + t0 + k;
        S o = s_y[lr][k] + skip * s_u[lr][k];
        if (z) {
          const S zv = Ty<T>::load(z[i]);
          o = o * zv * scan_sigmoid(zv);
        }
        out[i] = Ty<T>::store(o);
      }
    }
  }
  if (last && r.valid) {
#pragma unroll
    for (int s = 0; s < SPL; ++s) if (on[s]) last[r.row * nstate + lane + s * NT] = x[s];
  }
}

template <class T, int NT, int SPL>
__device__ void scan_backward_body(const T* u, const T* delta, const typename Ty<T>::C* A, const T* Bm, const T* Cm,
    const typename Ty<T>::C* Dv, const T* z, const typename Ty<T>::C* bias, const T* gy,
    T* du, T* ddelta, T* dz, typename Ty<T>::C* dA, typename Ty<T>::C* dB, typename Ty<T>::C* dC,
    typename Ty<T>::C* dD, typename Ty<T>::C* dbias, typename Ty<T>::C* bounds,
    long long rows, long long dim, long long len, long long nstate, long long groups, int softplus) {
  typedef typename Ty<T>::C S;
  constexpr int K = SCAN_STEPS / SPL;
  constexpr int RPB = SCAN_THREADS / NT;
  __shared__ S s_dt[RPB][K];
  __shared__ S s_u[RPB][K];
  __shared__ S s_y[RPB][K];   // y_t, then the gradient of the scan output g_t
  __shared__ S s_gd[RPB][K];  // Σ_n ∂loss/∂Δ_t
  __shared__ S s_gu[RPB][K];  // Σ_n ∂loss/∂u_t through the recurrence
  // The chunk's states, [state slot][step][thread]: consecutive threads hit consecutive banks.
  __shared__ S s_x[SPL][K][SCAN_THREADS];
  const int lr = threadIdx.x / NT;
  const int lane = threadIdx.x % NT;
  const ScanRow r = scan_row(RPB, NT, rows, dim, len, nstate, groups);
  const long long chunks = (len + K - 1) / K;
  S a[SPL], x[SPL];
  bool on[SPL];
#pragma unroll
  for (int s = 0; s < SPL; ++s) {
    const long long n = lane + s * NT;
    on[s] = n < nstate;
    a[s] = on[s] ? A[r.d * nstate + n] : (S)0;
    x[s] = (S)0;
  }
  const S biasD = bias ? bias[r.d] : (S)0;
  const S skip = Dv ? Dv[r.d] : (S)0;
  S* rowBounds = bounds + r.row * chunks * nstate;

  // Pass 1: the state entering each chunk.
  for (long long c = 0; c < chunks; ++c) {
    const long long t0 = c * K;
    const int kn = (int)(len - t0 < K ? len - t0 : K);
    if (c > 0 && r.valid) {
#pragma unroll
      for (int s = 0; s < SPL; ++s) if (on[s]) rowBounds[c * nstate + lane + s * NT] = x[s];
    }
    __syncwarp();
    scan_fill_chunk<T, S>(r, lane, NT, t0, kn, u, delta, biasD, softplus, s_dt[lr], s_u[lr]);
    __syncwarp();
    for (int k = 0; k < kn; ++k) {
      const S dt = s_dt[lr][k];
      const S dtu = dt * s_u[lr][k];
#pragma unroll
      for (int s = 0; s < SPL; ++s) {
        if (on[s]) x[s] = m_exp(dt * a[s]) * x[s] + dtu * Ty<T>::load(Bm[r.bc + (lane + s * NT) * len + t0 + k]);
      }
    }
  }

  // Pass 2: chunks in reverse.
  S lam[SPL], nextDecay[SPL], accA[SPL], start[SPL];
#pragma unroll
  for (int s = 0; s < SPL; ++s) { lam[s] = (S)0; nextDecay[s] = (S)0; accA[s] = (S)0; }
  S accD = (S)0, accBias = (S)0;
  for (long long c = chunks - 1; c >= 0; --c) {
    const long long t0 = c * K;
    const int kn = (int)(len - t0 < K ? len - t0 : K);
#pragma unroll
    for (int s = 0; s < SPL; ++s) {
      start[s] = (c > 0 && on[s] && r.valid) ? rowBounds[c * nstate + lane + s * NT] : (S)0;
      x[s] = start[s];
    }
    __syncwarp();
    scan_fill_chunk<T, S>(r, lane, NT, t0, kn, u, delta, biasD, softplus, s_dt[lr], s_u[lr]);
    __syncwarp();
    for (int k = 0; k < kn; ++k) {
      const S dt = s_dt[lr][k];
      const S dtu = dt * s_u[lr][k];
      S yp = (S)0;
#pragma unroll
      for (int s = 0; s < SPL; ++s) {
        if (on[s]) {
          const long long off = r.bc + (lane + s * NT) * len + t0 + k;
          x[s] = m_exp(dt * a[s]) * x[s] + dtu * Ty<T>::load(Bm[off]);
          yp += Ty<T>::load(Cm[off]) * x[s];
        }
        s_x[s][k][threadIdx.x] = x[s];
      }
      yp = row_sum<NT>(yp);
      if (lane == 0) s_y[lr][k] = yp;
    }
    __syncwarp();
    // Undo the gate: out = (y + D u) silu(z); d silu(z)/dz = σ(z) (1 + z (1 - σ(z))).
    for (int k = lane; k < kn; k += NT) {
      const long long i = r.base + t0 + k;
      const S uv = s_u[lr][k];
      S g = Ty<T>::load(gy[i]);
      if (z) {
        const S zv = Ty<T>::load(z[i]);
        const S sg = scan_sigmoid(zv);
        if (r.valid) dz[i] = Ty<T>::store(g * (s_y[lr][k] + skip * uv) * sg * ((S)1 + zv * ((S)1 - sg)));
        g *= zv * sg;
      }
      s_y[lr][k] = g;
      accD += g * uv;
    }
    __syncwarp();
    for (int k = kn - 1; k >= 0; --k) {
      const S dt = s_dt[lr][k];
      const S uv = s_u[lr][k];
      const S g = s_y[lr][k];
      S gd = (S)0, gu = (S)0;
#pragma unroll
      for (int s = 0; s < SPL; ++s) {
        if (on[s]) {
          const long long off = r.bc + (lane + s * NT) * len + t0 + k;
          const S bv = Ty<T>::load(Bm[off]);
          lam[s] = lam[s] * nextDecay[s] + g * Ty<T>::load(Cm[off]);
          const S e = m_exp(dt * a[s]);
          const S xPrev = k > 0 ? s_x[s][k - 1][threadIdx.x] : start[s];
          // ∂x_t/∂(Δ_t A) = e x_{t-1}; ∂x_t/∂Δ_t = A e x_{t-1} + B_t u_t.
          const S lex = lam[s] * e * xPrev;
          gd += a[s] * lex + lam[s] * bv * uv;
          gu += lam[s] * dt * bv;
          accA[s] += dt * lex;
          if (r.valid) {
            atomicAdd(&dC[off], g * s_x[s][k][threadIdx.x]);
            atomicAdd(&dB[off], lam[s] * dt * uv);
          }
          nextDecay[s] = e;
        }
      }
      gd = row_sum<NT>(gd);
      gu = row_sum<NT>(gu);
      if (lane == 0) {
        s_gd[lr][k] = gd;
        s_gu[lr][k] = gu;
      }
    }
    __syncwarp();
    for (int k = lane; k < kn; k += NT) {
      const long long i = r.base + t0 + k;
      S gd = s_gd[lr][k];
      if (softplus) {
        const S pre = Ty<T>::load(delta[i]) + biasD;
        if (pre <= (S)20) gd *= scan_sigmoid(pre);
      }
      accBias += gd;
      if (r.valid) {
        du[i] = Ty<T>::store(s_y[lr][k] * skip + s_gu[lr][k]);
        ddelta[i] = Ty<T>::store(gd);
      }
    }
  }
  accD = row_sum<NT>(accD);
  accBias = row_sum<NT>(accBias);
  if (!r.valid) return;
#pragma unroll
  for (int s = 0; s < SPL; ++s) if (on[s]) atomicAdd(&dA[r.d * nstate + lane + s * NT], accA[s]);
  if (lane == 0) {
    if (dD) atomicAdd(&dD[r.d], accD);
    if (dbias) atomicAdd(&dbias[r.d], accBias);
  }
}

#define DIMBA_SCAN(name, T, NT, SPL) \
  extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_forward_##name##_##NT##x##SPL( \
      const T* u, const T* delta, const Ty<T>::C* A, const T* Bm, const T* Cm, const Ty<T>::C* Dv, const T* z, \
      const Ty<T>::C* bias, T* out, Ty<T>::C* last, long long rows, long long dim, long long len, long long nstate, \
      long long groups, int softplus) { \
    scan_forward_body<T, NT, SPL>(u, delta, A, Bm, Cm, Dv, z, bias, out, last, rows, dim, len, nstate, groups, softplus); \
  } \
  extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_backward_##name##_##NT##x##SPL( \
      const T* u, const T* delta, const Ty<T>::C* A, const T* Bm, const T* Cm, const Ty<T>::C* Dv, const T* z, \
      const Ty<T>::C* bias, const T* gy, T* du, T* ddelta, T* dz, Ty<T>::C* dA, Ty<T>::C* dB, Ty<T>::C* dC, \
      Ty<T>::C* dD, Ty<T>::C* dbias, Ty<T>::C* bounds, long long rows, long long dim, long long len, long long nstate, \
      long long groups, int softplus) { \
    scan_backward_body<T, NT, SPL>(u, delta, A, Bm, Cm, Dv, z, bias, gy, du, ddelta, dz, dA, dB, dC, dD, dbias, bounds, \
      rows, dim, len, nstate, groups, softplus); \
  }
// States per row: up to 16 (NT 16), 32, 64 and 128 (NT 32 with 1, 2 or 4 states per lane).
#define DIMBA_SCAN_TYPE(name, T) \
  DIMBA_SCAN(name, T, 16, 1) DIMBA_SCAN(name, T, 32, 1) DIMBA_SCAN(name, T, 32, 2) DIMBA_SCAN(name, T, 32, 4)
DIMBA_SCAN_TYPE(f32, float)
DIMBA_SCAN_TYPE(f64, double)
DIMBA_SCAN_TYPE(bf16, bf16)
DIMBA_SCAN_TYPE(f16, f16)
