// Residual add + RMSNorm (src/ops/add-rms-norm.ts), the Mamba block's pre-norm with a float32
// residual stream. Rows [R, C]; residual, res, gres, gresidual, weight, rstd, partials float32;
// x, normed, gnormed, gx of the model dtype T.
//   add_rms_norm:          res = residual + x; normed = res * rstd * weight (rounded once to T)
//   add_rms_norm_backward: gresidual = rstd * (gn - xhat * mean(gn * xhat)) + gres, gx = gresidual as T,
//                          with xhat = res * rstd, gn = gnormed * weight; per-block partial sums of gnormed * xhat
//   add_rms_norm_colsum:   sums the partials over the blocks in a fixed order (a deterministic weight gradient)
//
// A block spans one row: thread t owns columns t, t + blockDim, ... (K of them), so a row is read
// once into registers and reused between the statistics and the write. Blocks stride over rows
// (row = blockIdx.x, + gridDim.x, ...). Null residual / gres / weight / gx pointers mean zeros /
// zeros / ones / not wanted. Everything is computed in float.
#include "common.cuh"

// The block's sum of v, given to every thread (shm: 32 floats).
__device__ __forceinline__ float arn_block_sum(float v, float* shm) {
  v = warp_reduce(v, SumOp());
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  __syncthreads();  // shm may still be read by the previous row's reduction
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  return warp_reduce(lane < warps ? shm[lane] : 0.0f, SumOp());
}

template <class T, int K>
__device__ void add_rms_norm_body(const float* residual, const T* x, const float* weight, float* res, T* normed,
    float* rstd, long long R, long long C, float eps) {
  __shared__ float shm[32];
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const long long j = threadIdx.x + (long long)k * blockDim.x;
    w[k] = j < C && weight ? weight[j] : 1.0f;
  }
  for (long long row = blockIdx.x; row < R; row += gridDim.x) {
    const long long base = row * C;
    float v[K];
    float sq = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long j = threadIdx.x + (long long)k * blockDim.x;
      v[k] = 0.0f;
      if (j < C) {
        v[k] = (residual ? residual[base + j] : 0.0f) + Ty<T>::load(x[base + j]);
        res[base + j] = v[k];
        sq += v[k] * v[k];
      }
    }
    sq = arn_block_sum(sq, shm);
    const float rs = 1.0f / sqrtf(sq / (float)C + eps);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long j = threadIdx.x + (long long)k * blockDim.x;
      // (res * rstd) * weight: the two float roundings of the composed ops (normalise, then scale).
      if (j < C) normed[base + j] = Ty<T>::store((v[k] * rs) * w[k]);
    }
    if (threadIdx.x == 0) rstd[row] = rs;
  }
}

// part [gridDim.x, C]: the block's sums of gnormed * xhat over its rows.
template <class T, int K>
__device__ void add_rms_norm_backward_body(const float* res, const float* weight, const float* rstd, const float* gres,
    const T* gnormed, float* gresidual, T* gx, float* part, long long R, long long C) {
  __shared__ float shm[32];
  float w[K], acc[K];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const long long j = threadIdx.x + (long long)k * blockDim.x;
    w[k] = j < C && weight ? weight[j] : 1.0f;
    acc[k] = 0.0f;
  }
  for (long long row = blockIdx.x; row < R; row += gridDim.x) {
    const long long base = row * C;
    const float rs = rstd[row];
    float xh[K], gn[K];
    float dot = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long j = threadIdx.x + (long long)k * blockDim.x;
      xh[k] = 0.0f;
      gn[k] = 0.0f;
      if (j < C) {
        const float g = Ty<T>::load(gnormed[base + j]);
        xh[k] = res[base + j] * rs;
        gn[k] = g * w[k];
        dot += gn[k] * xh[k];
        acc[k] += g * xh[k];
      }
    }
    dot = arn_block_sum(dot, shm) / (float)C;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long j = threadIdx.x + (long long)k * blockDim.x;
      if (j < C) {
        const float gr = rs * (gn[k] - xh[k] * dot) + (gres ? gres[base + j] : 0.0f);
        gresidual[base + j] = gr;
        if (gx) gx[base + j] = Ty<T>::store(gr);
      }
    }
  }
  if (part) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const long long j = threadIdx.x + (long long)k * blockDim.x;
      if (j < C) part[(long long)blockIdx.x * C + j] = acc[k];
    }
  }
}

// out[j] = sum over p < P of part[p * C + j], p ascending.
__device__ __forceinline__ void add_rms_norm_colsum_body(const float* part, float* out, long long P, long long C) {
  for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < C; j += (long long)gridDim.x * blockDim.x) {
    float sum = 0.0f;
    for (long long p = 0; p < P; ++p) sum += part[p * C + j];
    out[j] = sum;
  }
}

#define DIMBA_ADD_RMS_NORM_K(name, T, K) \
  extern "C" __global__ void add_rms_norm_##name##_k##K(const float* residual, const T* x, const float* weight, \
      float* res, T* normed, float* rstd, long long R, long long C, float eps) { \
    add_rms_norm_body<T, K>(residual, x, weight, res, normed, rstd, R, C, eps); \
  } \
  extern "C" __global__ void add_rms_norm_backward_##name##_k##K(const float* res, const float* weight, \
      const float* rstd, const float* gres, const T* gnormed, float* gresidual, T* gx, float* part, long long R, \
      long long C) { \
    add_rms_norm_backward_body<T, K>(res, weight, rstd, gres, gnormed, gresidual, gx, part, R, C); \
  }
#define DIMBA_ADD_RMS_NORM(name, T) \
  DIMBA_ADD_RMS_NORM_K(name, T, 1) DIMBA_ADD_RMS_NORM_K(name, T, 2) DIMBA_ADD_RMS_NORM_K(name, T, 4) \
  DIMBA_ADD_RMS_NORM_K(name, T, 8)
DIMBA_ADD_RMS_NORM(f32, float)
DIMBA_ADD_RMS_NORM(bf16, bf16)
DIMBA_ADD_RMS_NORM(f16, f16)

extern "C" __global__ void add_rms_norm_colsum(const float* part, float* out, long long P, long long C) {
  add_rms_norm_colsum_body(part, out, P, C);
}
