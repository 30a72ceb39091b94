// Row-wise softmax, log-softmax and normalisation over contiguous [rows, cols] tensors, with
// their backward passes. Like reduce.cu: a warp per row for short rows (*_warp_*), a block per
// row otherwise (*_block_*). Statistics accumulate in the compute type (float for half types);
// each row is read once per pass (softmax: max, sum of exponentials, write).
#include "common.cuh"

template <bool WARP, class T>
__device__ void softmax_body(const T* x, T* y, long long rows, long long cols, int logMode) {
  typedef typename Ty<T>::C C;
  __shared__ C shm[32];
  const long long row = group_row<WARP>();
  if (row >= rows) return;
  const int lane = group_lane<WARP>();
  const int width = group_width<WARP>();
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  C mx = neg_inf<C>();
  for (long long c = lane; c < cols; c += width) mx = nan_max(mx, Ty<T>::load(xr[c]));
  mx = group_reduce<WARP>(mx, MaxOp(), neg_inf<C>(), shm);
  if (mx == neg_inf<C>()) {
    // Every entry masked: zero weights rather than NaN (as the CPU kernel defines it).
    for (long long c = lane; c < cols; c += width) yr[c] = Ty<T>::store(logMode ? neg_inf<C>() : (C)0);
    return;
  }
  C sum = (C)0;
  for (long long c = lane; c < cols; c += width) sum += m_exp(Ty<T>::load(xr[c]) - mx);
  sum = group_reduce<WARP>(sum, SumOp(), (C)0, shm);
  if (logMode) {
    const C lse = mx + m_log(sum);
    for (long long c = lane; c < cols; c += width) yr[c] = Ty<T>::store(Ty<T>::load(xr[c]) - lse);
  } else {
    for (long long c = lane; c < cols; c += width) yr[c] = Ty<T>::store(m_exp(Ty<T>::load(xr[c]) - mx) / sum);
  }
}

// softmax: gx = y * (gy - sum(gy * y)); log-softmax: gx = gy - exp(y) * sum(gy).
template <bool WARP, class T>
__device__ void softmax_backward_body(const T* y, const T* gy, T* gx, long long rows, long long cols, int logMode) {
  typedef typename Ty<T>::C C;
  __shared__ C shm[32];
  const long long row = group_row<WARP>();
  if (row >= rows) return;
  const int lane = group_lane<WARP>();
  const int width = group_width<WARP>();
  const long long base = row * cols;
  C dot = (C)0;
  for (long long c = lane; c < cols; c += width) {
    const C g = Ty<T>::load(gy[base + c]);
    dot += logMode ? g : g * Ty<T>::load(y[base + c]);
  }
  dot = group_reduce<WARP>(dot, SumOp(), (C)0, shm);
  for (long long c = lane; c < cols; c += width) {
    const C g = Ty<T>::load(gy[base + c]);
    const C v = Ty<T>::load(y[base + c]);
    gx[base + c] = Ty<T>::store(logMode ? g - m_exp(v) * dot : v * (g - dot));
  }
}

// Layer norm (rms = 0): mean, then the variance as a second pass over x - mean (no cancellation
// from E[x^2] - E[x]^2); rms norm skips the mean. rstd = 1 / sqrt(var + eps). The row statistics
// are kept in the compute type (float, double for double rows), so a float64 backward stays exact.
template <bool WARP, class T>
__device__ void norm_body(int rms, const T* x, T* y, typename Ty<T>::C* mean, typename Ty<T>::C* rstd, long long rows, long long cols,
    double eps) {
  typedef typename Ty<T>::C C;
  __shared__ C shm[32];
  const long long row = group_row<WARP>();
  if (row >= rows) return;
  const int lane = group_lane<WARP>();
  const int width = group_width<WARP>();
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  C mu = (C)0;
  if (!rms) {
    for (long long c = lane; c < cols; c += width) mu += Ty<T>::load(xr[c]);
    mu = group_reduce<WARP>(mu, SumOp(), (C)0, shm) / (C)cols;
  }
  C sq = (C)0;
  for (long long c = lane; c < cols; c += width) {
    const C d = Ty<T>::load(xr[c]) - mu;
    sq += d * d;
  }
  sq = group_reduce<WARP>(sq, SumOp(), (C)0, shm);
  const C rs = (C)1 / m_sqrt(sq / (C)cols + (C)eps);
  for (long long c = lane; c < cols; c += width) yr[c] = Ty<T>::store((Ty<T>::load(xr[c]) - mu) * rs);
  if (lane == 0) {
    mean[row] = mu;
    rstd[row] = rs;
  }
}

// gx = rstd * (gy - mean(gy) [layer only] - xhat * mean(gy * xhat)), xhat = (x - mean) * rstd.
template <bool WARP, class T>
__device__ void norm_backward_body(int rms, const T* x, const typename Ty<T>::C* mean, const typename Ty<T>::C* rstd, const T* gy, T* gx,
    long long rows, long long cols) {
  typedef typename Ty<T>::C C;
  __shared__ C shm[32];
  const long long row = group_row<WARP>();
  if (row >= rows) return;
  const int lane = group_lane<WARP>();
  const int width = group_width<WARP>();
  const long long base = row * cols;
  const C mu = (C)mean[row];
  const C s = (C)rstd[row];
  C gsum = (C)0, gdot = (C)0;
  for (long long c = lane; c < cols; c += width) {
    const C g = Ty<T>::load(gy[base + c]);
    gsum += g;
    gdot += g * (Ty<T>::load(x[base + c]) - mu) * s;
  }
  gsum = group_reduce<WARP>(gsum, SumOp(), (C)0, shm);
  gdot = group_reduce<WARP>(gdot, SumOp(), (C)0, shm);
  const C center = rms ? (C)0 : gsum / (C)cols;
  const C dotMean = gdot / (C)cols;
  for (long long c = lane; c < cols; c += width) {
    const C xhat = (Ty<T>::load(x[base + c]) - mu) * s;
    gx[base + c] = Ty<T>::store(s * (Ty<T>::load(gy[base + c]) - center - xhat * dotMean));
  }
}

#define DIMBA_ROWS_MODE(mode, WARP, name, T) \
  extern "C" __global__ void softmax_##mode##_##name(const T* x, T* y, long long rows, long long cols, int logMode) { \
    softmax_body<WARP, T>(x, y, rows, cols, logMode); \
  } \
  extern "C" __global__ void softmax_backward_##mode##_##name(const T* y, const T* gy, T* gx, long long rows, long long cols, int logMode) { \
    softmax_backward_body<WARP, T>(y, gy, gx, rows, cols, logMode); \
  } \
  extern "C" __global__ void norm_##mode##_##name(int rms, const T* x, T* y, Ty<T>::C* mean, Ty<T>::C* rstd, long long rows, long long cols, \
      double eps) { \
    norm_body<WARP, T>(rms, x, y, mean, rstd, rows, cols, eps); \
  } \
  extern "C" __global__ void norm_backward_##mode##_##name(int rms, const T* x, const Ty<T>::C* mean, const Ty<T>::C* rstd, \
      const T* gy, T* gx, long long rows, long long cols) { \
    norm_backward_body<WARP, T>(rms, x, mean, rstd, gy, gx, rows, cols); \
  }
#define DIMBA_ROWS(name, T) DIMBA_ROWS_MODE(warp, true, name, T) DIMBA_ROWS_MODE(block, false, name, T)
DIMBA_ROWS(f32, float)
DIMBA_ROWS(f64, double)
DIMBA_ROWS(bf16, bf16)
DIMBA_ROWS(f16, f16)
