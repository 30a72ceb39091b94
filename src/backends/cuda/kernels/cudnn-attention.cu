// Around cuDNN's masked attention (cudnn-attention/run.ts): cuDNN's softmax has no defined value
// for a query whose keys are all masked (-inf bias everywhere), while our kernel (attention.cu)
// gives such a row O = 0 and lse = -inf. The mask here is key padding, one row per batch, so a
// fully masked query means a fully masked batch row.
//
// cudnn_attn_empty_rows_*: after cuDNN's forward. Each block first checks its batch row of the
// mask (any key above -inf); rows of batches with a valid key are left alone, which is every
// block in the usual case, so the kernel costs one launch and a mask read. Blocks of an all-masked
// batch write O = 0 and lse = -inf over their share of the batch's H * Lq query rows.
//
// cudnn_attn_bwd_stats: the Stats cuDNN's backward reads, lse with -inf turned into +inf (as our
// backward's prep kernel does), so a fully masked row gets P = exp(-inf - inf) = 0, not NaN.
#include "common.cuh"

template <class T>
__device__ void empty_rows_body(const T* __restrict__ mask, long long maskBatch, long long maskKey, int Lk,
    T* __restrict__ o, long long ob, long long oh, long long ol, float* __restrict__ lse, int H, int Lq, int E,
    int rowsPerBlock, int blocksPerBatch) {
  const int b = blockIdx.x / blocksPerBatch;
  const int chunk = blockIdx.x % blocksPerBatch;
  const T* m = mask + (long long)b * maskBatch;
  int valid = 0;
  for (int j = threadIdx.x; j < Lk; j += blockDim.x) valid |= Ty<T>::load(m[(long long)j * maskKey]) > neg_inf<float>();
  if (__syncthreads_or(valid)) return;
  const long long rows = (long long)H * Lq;
  const long long r0 = (long long)chunk * rowsPerBlock;
  const long long r1 = r0 + rowsPerBlock < rows ? r0 + rowsPerBlock : rows;
  if (r0 >= r1) return;
  const T zero = Ty<T>::store(0.f);
  const long long n = (r1 - r0) * E;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) {
    const long long r = r0 + i / E;
    const int e = (int)(i % E);
    const long long h = r / Lq;
    const long long q = r % Lq;
    o[(long long)b * ob + h * oh + q * ol + e] = zero;
  }
  // lse is contiguous [B, H, Lq]: this batch's rows are one run.
  for (long long r = r0 + threadIdx.x; r < r1; r += blockDim.x) lse[(long long)b * rows + r] = neg_inf<float>();
}

#define DIMBA_EMPTY_ROWS(T, name)                                                                                     \
  extern "C" __global__ void cudnn_attn_empty_rows_##name(const T* mask, long long maskBatch, long long maskKey,        \
      int Lk, T* o, long long ob, long long oh, long long ol, float* lse, int H, int Lq, int E, int rowsPerBlock,        \
      int blocksPerBatch) {                                                                                             \
    empty_rows_body<T>(mask, maskBatch, maskKey, Lk, o, ob, oh, ol, lse, H, Lq, E, rowsPerBlock, blocksPerBatch);      \
  }

DIMBA_EMPTY_ROWS(bf16, bf16)
DIMBA_EMPTY_ROWS(f16, f16)

extern "C" __global__ void cudnn_attn_bwd_stats(const float* lse, float* out, long long n) {
  DIMBA_FOR_EACH(i, n) {
    const float l = lse[i];
    out[i] = l == neg_inf<float>() ? -neg_inf<float>() : l;
  }
}
