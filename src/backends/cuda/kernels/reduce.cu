// Row reductions of a contiguous [rows, cols] input into out[rows]. A warp reduces each row when
// rows are short (reduce_warp_*, 8 rows per 256-thread block), a whole block otherwise
// (reduce_block_*); each thread folds a strided slice of the row, then the group combines.
// Accumulation is in the compute type (float for float32/bfloat16/float16, double otherwise).
// out's dtype varies by op (sum of bool -> int32, argmax -> int32), so it is stored by code.
// Ops: 0 sum, 1 prod, 2 max, 3 min, 4 argmax, 5 argmin. NaN semantics follow the CPU: the first
// NaN of a row wins max/min/argmax/argmin; ties go to the lowest index.
#include "common.cuh"

struct ProdOp {
  template <class C> __device__ __forceinline__ C operator()(C a, C b) const { return a * b; }
};
struct MinOp {
  template <class C> __device__ __forceinline__ C operator()(C a, C b) const {
    if (a != a) return a;
    if (b != b) return b;
    return a < b ? a : b;
  }
};

// (value, index) candidates; index -1 marks "no element yet".
template <class C> __device__ __forceinline__ bool arg_better(C v2, long long i2, C v1, long long i1, bool wantMax) {
  if (i2 < 0) return false;
  if (i1 < 0) return true;
  const bool n1 = v1 != v1, n2 = v2 != v2;
  if (n1 || n2) return n2 && (!n1 || i2 < i1);
  if (wantMax ? v2 > v1 : v2 < v1) return true;
  return v2 == v1 && i2 < i1;
}

template <class C> __device__ __forceinline__ void arg_warp(C& v, long long& idx, bool wantMax) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const C v2 = __shfl_xor_sync(0xffffffffu, v, o);
    const long long i2 = __shfl_xor_sync(0xffffffffu, idx, o);
    if (arg_better(v2, i2, v, idx, wantMax)) { v = v2; idx = i2; }
  }
}

template <bool WARP, class T>
__device__ void reduce_rows_body(int op, const T* x, void* out, int outType, long long rows, long long cols) {
  typedef typename Ty<T>::C C;
  __shared__ C shm[32];
  __shared__ long long shi[32];
  const long long row = group_row<WARP>();
  if (row >= rows) return;
  const int lane = group_lane<WARP>();
  const int width = group_width<WARP>();
  const T* xr = x + row * cols;
  double result;
  if (op <= 3) {
    const C identity = op == 0 ? (C)0 : op == 1 ? (C)1 : op == 2 ? neg_inf<C>() : -neg_inf<C>();
    C acc = identity;
    for (long long c = lane; c < cols; c += width) {
      const C v = Ty<T>::load(xr[c]);
      acc = op == 0 ? acc + v : op == 1 ? acc * v : op == 2 ? nan_max(acc, v) : MinOp()(acc, v);
    }
    if (op == 0) acc = group_reduce<WARP>(acc, SumOp(), identity, shm);
    else if (op == 1) acc = group_reduce<WARP>(acc, ProdOp(), identity, shm);
    else if (op == 2) acc = group_reduce<WARP>(acc, MaxOp(), identity, shm);
    else acc = group_reduce<WARP>(acc, MinOp(), identity, shm);
    result = (double)acc;
  } else {
    const bool wantMax = op == 4;
    C best = (C)0;
    long long at = -1;
    for (long long c = lane; c < cols; c += width) {
      const C v = Ty<T>::load(xr[c]);
      if (arg_better(v, c, best, at, wantMax)) { best = v; at = c; }
    }
    arg_warp(best, at, wantMax);
    if (!WARP) {
      const int wl = threadIdx.x & 31, w = threadIdx.x >> 5;
      if (wl == 0) { shm[w] = best; shi[w] = at; }
      __syncthreads();
      const int warps = (blockDim.x + 31) >> 5;
      best = wl < warps ? shm[wl] : (C)0;
      at = wl < warps ? shi[wl] : -1;
      arg_warp(best, at, wantMax);
    }
    result = (double)at;
  }
  if (lane == 0) store_dyn(out, outType, row, result);
}

#define DIMBA_REDUCE(name, T) \
  extern "C" __global__ void reduce_warp_##name(int op, const T* x, void* out, int outType, long long rows, long long cols) { \
    reduce_rows_body<true, T>(op, x, out, outType, rows, cols); \
  } \
  extern "C" __global__ void reduce_block_##name(int op, const T* x, void* out, int outType, long long rows, long long cols) { \
    reduce_rows_body<false, T>(op, x, out, outType, rows, cols); \
  }
DIMBA_REDUCE(f32, float)
DIMBA_REDUCE(f64, double)
DIMBA_REDUCE(bf16, bf16)
DIMBA_REDUCE(f16, f16)
DIMBA_REDUCE(i32, int)
DIMBA_REDUCE(i64, long long)
DIMBA_REDUCE(bool, u8)
