// Row reductions of a contiguous [rows, cols] input into out[rows]. A warp reduces each row when
// rows are short (reduce_warp_*, 8 rows per 256-thread block), a whole block otherwise
// (reduce_block_*); each thread folds a strided slice of the row, then the group combines.
// Accumulation is in the compute type (float for float32/bfloat16/float16, double otherwise).
// out's dtype varies by op (sum of bool -> int32, argmax -> int32), so it is stored by code.
// Ops: 0 sum, 1 prod, 2 max, 3 min, 4 argmax, 5 argmin. NaN semantics follow the CPU: the first
// NaN of a row wins max/min/argmax/argmin; ties go to the lowest index.
//
// Column reductions (reduce_cols_*) fold the middle dim of x [outer, reduced, inner] (inner stride 1,
// any outer/reduced strides) into out [outer, inner] without moving the reduced dim last. A block
// owns a strip of tx * V adjacent columns of one outer index and a chunk of the reduced dim; its
// threads form tx lanes along inner (V columns each, one vector load per row) by ty rows. Lanes
// read consecutive addresses, so every row of a strip is one coalesced transaction group. Rows are
// folded per thread, then the ty row-groups are folded in order through shared memory. With one
// chunk the block writes out; with several it writes partials [chunks, outer, inner] in the
// compute type and reduce_cols_finish_* folds them in chunk order. No atomics anywhere, so a
// launch geometry (fixed by shape and device) gives the same bits on every run.
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
#if DIMBA_WANTS(0)
DIMBA_REDUCE(f32, float)
#endif
#if DIMBA_WANTS(1)
DIMBA_REDUCE(f64, double)
#endif
#if DIMBA_WANTS(2)
DIMBA_REDUCE(bf16, bf16)
#endif
#if DIMBA_WANTS(3)
DIMBA_REDUCE(f16, f16)
#endif
#if DIMBA_WANTS(4)
DIMBA_REDUCE(i32, int)
#endif
#if DIMBA_WANTS(5)
DIMBA_REDUCE(i64, long long)
#endif
#if DIMBA_WANTS(6)
DIMBA_REDUCE(bool, u8)
#endif

// ---- Column reductions ------------------------------------------------------------------------

// V elements read by one load; the host picks V > 1 only when every row start is V-aligned.
template <class T, int V> struct alignas(sizeof(T) * V) ColVec { T v[V]; };

// Largest vector width per storage type: 16-byte loads, at most 8 lanes of accumulators.
template <class T> struct ColWidth { static const int V = 16 / sizeof(T) > 8 ? 8 : 16 / sizeof(T); };

template <int OP, class C> __device__ __forceinline__ C cols_identity() {
  return OP == 0 ? (C)0 : OP == 1 ? (C)1 : OP == 2 || OP == 4 ? neg_inf<C>() : -neg_inf<C>();
}

// Folds value v of row r into (acc, at). Rows arrive in increasing r per thread.
template <int OP, class C> __device__ __forceinline__ void cols_step(C& acc, int& at, C v, int r) {
  if (OP == 0) acc += v;
  else if (OP == 1) acc *= v;
  else if (OP == 2) acc = nan_max(acc, v);
  else if (OP == 3) acc = MinOp()(acc, v);
  else if (arg_better(v, (long long)r, acc, (long long)at, OP == 4)) { acc = v; at = r; }
}

// Combines a partial (b, bi) that covers later rows than (acc, at).
template <int OP, class C> __device__ __forceinline__ void cols_merge(C& acc, int& at, C b, int bi) {
  if (OP <= 3) cols_step<OP, C>(acc, at, b, 0);
  else if (arg_better(b, (long long)bi, acc, (long long)at, OP == 4)) { acc = b; at = bi; }
}

template <int OP, int V, class T>
__device__ void reduce_cols_body(const T* x, void* out, int outType, typename Ty<T>::C* part, int* partIdx,
    long long outer, long long reduced, long long inner, long long so, long long sr, int tx, int strips, long long chunkRows,
    typename Ty<T>::C* shv, int* shi) {
  typedef typename Ty<T>::C C;
  const int t = threadIdx.x;
  const int lx = t % tx, ly = t / tx, ty = blockDim.x / tx;
  long long b = blockIdx.x;
  const int strip = (int)(b % strips);
  b /= strips;
  const long long o = b % outer;
  const long long chunk = b / outer;
  const long long col0 = ((long long)strip * tx + lx) * V;
  const long long r0 = chunk * chunkRows;
  const long long r1 = r0 + chunkRows < reduced ? r0 + chunkRows : reduced;

  C acc[V];
  int at[V];
#pragma unroll
  for (int v = 0; v < V; ++v) { acc[v] = cols_identity<OP, C>(); at[v] = -1; }
  if (col0 < inner) {
    const T* p = x + o * so + col0;
    if (V > 1) {
#pragma unroll 4
      for (long long r = r0 + ly; r < r1; r += ty) {
        const ColVec<T, V> w = *(const ColVec<T, V>*)(p + r * sr);
#pragma unroll
        for (int v = 0; v < V; ++v) cols_step<OP, C>(acc[v], at[v], Ty<T>::load(w.v[v]), (int)r);
      }
    } else {
#pragma unroll 4
      for (long long r = r0 + ly; r < r1; r += ty) cols_step<OP, C>(acc[0], at[0], Ty<T>::load(p[r * sr]), (int)r);
    }
  }
  // Row-group ly covers rows r0 + ly + k ty, so folding groups 0, 1, ... in order keeps the
  // arg ops' "lowest index wins" (they compare indices anyway) and fixes the summation order.
#pragma unroll
  for (int v = 0; v < V; ++v) {
    shv[(ly * V + v) * tx + lx] = acc[v];
    if (OP >= 4) shi[(ly * V + v) * tx + lx] = at[v];
  }
  __syncthreads();
  if (ly != 0 || col0 >= inner) return;
  for (int g = 1; g < ty; ++g) {
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int k = (g * V + v) * tx + lx;
      cols_merge<OP, C>(acc[v], at[v], shv[k], OP >= 4 ? shi[k] : 0);
    }
  }
  const long long n = outer * inner;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    const long long e = o * inner + col0 + v;
    if (col0 + v >= inner) break;
    if (part == 0) store_dyn(out, outType, e, OP >= 4 ? (double)at[v] : (double)acc[v]);
    else {
      part[chunk * n + e] = acc[v];
      if (OP >= 4) partIdx[chunk * n + e] = at[v];
    }
  }
}

template <int V, class T>
__device__ __forceinline__ void reduce_cols_dispatch(int op, const T* x, void* out, int outType, typename Ty<T>::C* part,
    int* partIdx, long long outer, long long reduced, long long inner, long long so, long long sr, int tx, int strips,
    long long chunkRows) {
  typedef typename Ty<T>::C C;
  // One buffer for all six op instantiations (static arrays inside each would be six buffers).
  __shared__ C shv[256 * V];
  __shared__ int shi[256 * V];
#define DIMBA_COLS_CASE(K) \
  reduce_cols_body<K, V, T>(x, out, outType, part, partIdx, outer, reduced, inner, so, sr, tx, strips, chunkRows, shv, shi)
  switch (op) {
    case 0: DIMBA_COLS_CASE(0); break;
    case 1: DIMBA_COLS_CASE(1); break;
    case 2: DIMBA_COLS_CASE(2); break;
    case 3: DIMBA_COLS_CASE(3); break;
    case 4: DIMBA_COLS_CASE(4); break;
    default: DIMBA_COLS_CASE(5); break;
  }
#undef DIMBA_COLS_CASE
}

// Second pass: element e of out folds partials of chunks 0, 1, ... in order.
template <int OP, class C>
__device__ void reduce_cols_finish_body(const C* part, const int* partIdx, void* out, int outType, long long n, int chunks) {
  DIMBA_FOR_EACH(e, n) {
    C acc = part[e];
    int at = OP >= 4 ? partIdx[e] : 0;
    for (int k = 1; k < chunks; ++k) cols_merge<OP, C>(acc, at, part[k * n + e], OP >= 4 ? partIdx[k * n + e] : 0);
    store_dyn(out, outType, e, OP >= 4 ? (double)at : (double)acc);
  }
}

#define DIMBA_REDUCE_COLS_FINISH(name, C) \
  extern "C" __global__ void reduce_cols_finish_##name(int op, const C* part, const int* partIdx, void* out, int outType, \
      long long n, int chunks) { \
    switch (op) { \
      case 0: reduce_cols_finish_body<0, C>(part, partIdx, out, outType, n, chunks); break; \
      case 1: reduce_cols_finish_body<1, C>(part, partIdx, out, outType, n, chunks); break; \
      case 2: reduce_cols_finish_body<2, C>(part, partIdx, out, outType, n, chunks); break; \
      case 3: reduce_cols_finish_body<3, C>(part, partIdx, out, outType, n, chunks); break; \
      case 4: reduce_cols_finish_body<4, C>(part, partIdx, out, outType, n, chunks); break; \
      default: reduce_cols_finish_body<5, C>(part, partIdx, out, outType, n, chunks); break; \
    } \
  }
#if DIMBA_WANTS(0)
DIMBA_REDUCE_COLS_FINISH(f32, float)
#endif
#if DIMBA_WANTS(1)
DIMBA_REDUCE_COLS_FINISH(f64, double)
#endif

#define DIMBA_REDUCE_COLS(name, T) \
  extern "C" __global__ void __launch_bounds__(256) reduce_cols_##name(int op, const T* x, void* out, int outType, \
      Ty<T>::C* part, int* partIdx, long long outer, long long reduced, long long inner, long long so, long long sr, \
      int tx, int strips, long long chunkRows) { \
    reduce_cols_dispatch<1, T>(op, x, out, outType, part, partIdx, outer, reduced, inner, so, sr, tx, strips, chunkRows); \
  } \
  extern "C" __global__ void __launch_bounds__(256) reduce_cols_vec_##name(int op, const T* x, void* out, int outType, \
      Ty<T>::C* part, int* partIdx, long long outer, long long reduced, long long inner, long long so, long long sr, \
      int tx, int strips, long long chunkRows) { \
    reduce_cols_dispatch<ColWidth<T>::V, T>(op, x, out, outType, part, partIdx, outer, reduced, inner, so, sr, tx, strips, \
      chunkRows); \
  }
#if DIMBA_WANTS(0)
DIMBA_REDUCE_COLS(f32, float)
#endif
#if DIMBA_WANTS(1)
DIMBA_REDUCE_COLS(f64, double)
#endif
#if DIMBA_WANTS(2)
DIMBA_REDUCE_COLS(bf16, bf16)
#endif
#if DIMBA_WANTS(3)
DIMBA_REDUCE_COLS(f16, f16)
#endif
#if DIMBA_WANTS(4)
DIMBA_REDUCE_COLS(i32, int)
#endif
#if DIMBA_WANTS(5)
DIMBA_REDUCE_COLS(i64, long long)
#endif
#if DIMBA_WANTS(6)
DIMBA_REDUCE_COLS(bool, u8)
#endif
