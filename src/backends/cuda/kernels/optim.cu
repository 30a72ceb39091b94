// Multi-tensor optimizer kernels: AdamW, CAME, weight EMA, the gradients' sum of squares and
// their rescaling, each over a whole list of tensors in one launch (or a fixed few for CAME).
//
// The tensors come as a table of records (OPT_REC int64 words each, written by optim.ts) plus,
// for the lists that change every step (gradients), a separate array of one address per record,
// so that only that small array is uploaded again when the gradients move. The work is a list of
// items, numbered across the records: item0 of each record is the prefix sum of the item counts
// before it. A block walks the items grid-stride and finds an item's record by binary search,
// like multi_tensor_apply's (tensor, chunk) list without storing the list itself.
//
// Arithmetic: every step is one IEEE float32 operation (__fmul_rn and friends, never contracted
// into an FMA) in the order src/optim composes the engine's ops, and the CPU backend rounds each
// op to float32 the same way, so elementwise results equal the CPU's bit for bit. Reciprocal
// square roots are computed in double and rounded once, as the CPU's 1 / Math.sqrt(x) is. Sums
// (means, norms) accumulate in double, as the CPU's do, but in another order.
//
// Scalars that change per step (learning rate, bias corrections) are kernel parameters. The _ctl
// twins serve captured training steps (src/train/graphed-step.ts), whose graph bakes parameters
// in: they read those scalars from device memory the host rewrites before each replay, and return
// at once when the step's skip flag (grad_norm_check: a non-finite loss or gradient norm) is set.
#include "common.cuh"

#define OPT_REC 20
#define OPT_CHUNK 16384
#define OPT_TILE_ROWS 256
#define OPT_NO_DTYPE 15

// Record words (kernels/optim.ts writes the same layout).
#define W_NUMEL 0
#define W_ITEM0 1
#define W_NITEMS 2
#define W_FLAGS 3   // bits 0-3: the listed tensor's dtype code; 4-7: the half parameter's (15: none); 8: decay; 9: factored
#define W_BATCH 4
#define W_ROWS 5
#define W_COLS 6
#define W_ROWOFF 7
#define W_COLOFF 8
#define W_PARTOFF 9
#define W_BITEM0 10
#define W_P0 11

#define F_DECAY 0x100
#define F_FACTORED 0x200

// The last record whose first item is <= item, searching from `lo` (blocks visit items in
// increasing order, so the previous answer bounds the next search).
__device__ __forceinline__ int find_record(const long long* recs, int n, long long item, int word, int lo) {
  int hi = n - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (recs[(long long)mid * OPT_REC + word] <= item) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

__device__ __forceinline__ long long lmin(long long a, long long b) { return a < b ? a : b; }

__device__ __forceinline__ const long long* record(const long long* recs, int t) { return recs + (long long)t * OPT_REC; }

template <class T> __device__ __forceinline__ T* ptr_of(long long word) { return (T*)(unsigned long long)word; }

__device__ __forceinline__ float load_code(const void* p, int dt, long long i) {
  if (dt == 2) return Ty<bf16>::load(((const bf16*)p)[i]);
  if (dt == 3) return Ty<f16>::load(((const f16*)p)[i]);
  return ((const float*)p)[i];
}

__device__ __forceinline__ void store_code(void* p, int dt, long long i, float v) {
  if (dt == 2) ((bf16*)p)[i] = Ty<bf16>::store(v);
  else if (dt == 3) ((f16*)p)[i] = Ty<f16>::store(v);
  else ((float*)p)[i] = v;
}

// float32 rounding of a scalar through a 16-bit format (a scalar operand takes the tensor's dtype).
__device__ __forceinline__ float round_to_code(float v, int dt) {
  if (dt == 2) return Ty<bf16>::load(Ty<bf16>::store(v));
  if (dt == 3) return Ty<f16>::load(Ty<f16>::store(v));
  return v;
}

__device__ __forceinline__ float rsqrt_exact(float x) { return (float)(1.0 / sqrt((double)x)); }

// x * a + y * b, each product and the sum rounded: the engine's emaInPlace.
__device__ __forceinline__ float ema2(float x, float a, float y, float b) {
  return __fadd_rn(__fmul_rn(x, a), __fmul_rn(y, b));
}

// ---------------------------------------------------------------------------------------------
// AdamW. Records: p0 weight (float32), p1 exp_avg, p2 exp_avg_sq, p3 the half parameter that
// receives the rounded weight (when flags say so); the gradient comes from `grads`.
//   w <- w * decayScale                       (records flagged decay)
//   m <- m + (g - m) * lerpW                  (lerpFromGrad: m <- g - (g - m) * lerpW)
//   v <- v * beta2 + (g * g) * omb2
//   w <- w + (m / (sqrt(v) / rootBias2 + eps)) * stepScale;   half <- round(w)

struct AdamWCoef {
  float decayScale, lerpW, beta2, omb2, rootBias2, eps, stepScale;
  int lerpFromGrad;
};

template <class G, class H, bool HALF>
__device__ __forceinline__ void adamw_range(float* w, const G* g, float* m, float* v, H* half,
    long long start, long long end, bool decay, const AdamWCoef& k) {
  const long long stride = blockDim.x;
  for (long long i0 = start + threadIdx.x; i0 < end; i0 += 4 * stride) {
    float gv[4] = {0.f, 0.f, 0.f, 0.f}, wv[4] = {0.f, 0.f, 0.f, 0.f}, mv[4] = {0.f, 0.f, 0.f, 0.f}, vv[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long long i = i0 + u * stride;
      if (i < end) { gv[u] = Ty<G>::load(g[i]); wv[u] = w[i]; mv[u] = m[i]; vv[u] = v[i]; }
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const long long i = i0 + u * stride;
      if (i >= end) continue;
      float wi = wv[u];
      if (decay) wi = __fmul_rn(wi, k.decayScale);
      const float d = __fsub_rn(gv[u], mv[u]);
      const float mi = k.lerpFromGrad ? __fsub_rn(gv[u], __fmul_rn(d, k.lerpW)) : __fadd_rn(mv[u], __fmul_rn(d, k.lerpW));
      const float vi = ema2(vv[u], k.beta2, __fmul_rn(gv[u], gv[u]), k.omb2);
      const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.rootBias2), k.eps);
      wi = __fadd_rn(wi, __fmul_rn(__fdiv_rn(mi, denom), k.stepScale));
      w[i] = wi;
      m[i] = mi;
      v[i] = vi;
      if (HALF) half[i] = Ty<H>::store(wi);
    }
  }
}

template <class G>
__device__ __forceinline__ void adamw_dispatch_half(const long long* r, const void* g, long long start, long long end, const AdamWCoef& k) {
  const int flags = (int)r[W_FLAGS];
  const bool decay = (flags & F_DECAY) != 0;
  float* w = ptr_of<float>(r[W_P0]);
  float* m = ptr_of<float>(r[W_P0 + 1]);
  float* v = ptr_of<float>(r[W_P0 + 2]);
  const int ht = (flags >> 4) & 15;
  if (ht == 2) adamw_range<G, bf16, true>(w, (const G*)g, m, v, ptr_of<bf16>(r[W_P0 + 3]), start, end, decay, k);
  else if (ht == 3) adamw_range<G, f16, true>(w, (const G*)g, m, v, ptr_of<f16>(r[W_P0 + 3]), start, end, decay, k);
  else adamw_range<G, float, false>(w, (const G*)g, m, v, (float*)0, start, end, decay, k);
}

// 256 threads (72 registers: three blocks per SM, each thread with 16 loads in flight; capping
// at 64 registers for a fourth block spills).
__device__ __forceinline__ void adamw_body(const long long* recs, const long long* grads, int n, long long items, const AdamWCoef& k) {
  int t = 0;
  for (long long item = blockIdx.x; item < items; item += gridDim.x) {
    t = find_record(recs, n, item, W_ITEM0, t);
    const long long* r = record(recs, t);
    const long long start = (item - r[W_ITEM0]) * OPT_CHUNK;
    const long long end = lmin(start + OPT_CHUNK, r[W_NUMEL]);
    const void* g = ptr_of<void>(grads[t]);
    const int gt = (int)r[W_FLAGS] & 15;
    if (gt == 2) adamw_dispatch_half<bf16>(r, g, start, end, k);
    else if (gt == 3) adamw_dispatch_half<f16>(r, g, start, end, k);
    else adamw_dispatch_half<float>(r, g, start, end, k);
  }
}

extern "C" __global__ void __launch_bounds__(256) adamw_step(const long long* recs, const long long* grads, int n, long long items,
    float decayScale, float lerpW, int lerpFromGrad, float beta2, float omb2, float rootBias2, float eps, float stepScale) {
  const AdamWCoef k = { decayScale, lerpW, beta2, omb2, rootBias2, eps, stepScale, lerpFromGrad };
  adamw_body(recs, grads, n, items, k);
}

// The step of a captured (CUDA graph) training step: the coefficients change every step, so they
// are read from device memory that the host rewrites before each replay, in AdamWCoefficients'
// order (decayScale, lerpW, lerpFromGrad, beta2, omb2, rootBias2, eps, stepScale); a non-zero
// *skip (a non-finite loss or gradient norm, found on the device) leaves every tensor unchanged.
extern "C" __global__ void __launch_bounds__(256) adamw_step_ctl(const long long* recs, const long long* grads, int n, long long items,
    const float* coef, const int* skip) {
  if (*skip) return;
  const AdamWCoef k = { coef[0], coef[1], coef[3], coef[4], coef[5], coef[6], coef[7], coef[2] != 0.f };
  adamw_body(recs, grads, n, items, k);
}

// ---------------------------------------------------------------------------------------------
// Weight EMA. Records: p0 shadow (float32), p1 parameter (dtype in flags).
//   s <- s * keep + p * take

__device__ __forceinline__ void ema_update_body(const long long* recs, int n, long long items, float keep, float take) {
  int t = 0;
  for (long long item = blockIdx.x; item < items; item += gridDim.x) {
    t = find_record(recs, n, item, W_ITEM0, t);
    const long long* r = record(recs, t);
    const long long start = (item - r[W_ITEM0]) * OPT_CHUNK;
    const long long end = lmin(start + OPT_CHUNK, r[W_NUMEL]);
    float* s = ptr_of<float>(r[W_P0]);
    const void* p = ptr_of<void>(r[W_P0 + 1]);
    const int dt = (int)r[W_FLAGS] & 15;
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) s[i] = ema2(s[i], keep, load_code(p, dt, i), take);
  }
}

extern "C" __global__ void ema_update(const long long* recs, int n, long long items, float keep, float take) {
  ema_update_body(recs, n, items, keep, take);
}

// A captured step's EMA: nothing changes when *skip is non-zero (the step was skipped).
extern "C" __global__ void ema_update_ctl(const long long* recs, int n, long long items, float keep, float take, const int* skip) {
  if (*skip) return;
  ema_update_body(recs, n, items, keep, take);
}

// ---------------------------------------------------------------------------------------------
// Sum of squares over every listed tensor (addresses in `ptrs`, dtypes in the records): each
// block writes the double sum of the squares (each square rounded to float32, as the CPU's
// square op does) of its items; sum_partials adds the blocks' sums in a fixed order, so the
// result does not depend on timing.

extern "C" __global__ void sum_squares(const long long* recs, const long long* ptrs, int n, long long items, double* partials) {
  __shared__ double shm[32];
  double acc = 0.0;
  int t = 0;
  for (long long item = blockIdx.x; item < items; item += gridDim.x) {
    t = find_record(recs, n, item, W_ITEM0, t);
    const long long* r = record(recs, t);
    const long long start = (item - r[W_ITEM0]) * OPT_CHUNK;
    const long long end = lmin(start + OPT_CHUNK, r[W_NUMEL]);
    const void* p = ptr_of<void>(ptrs[t]);
    const int dt = (int)r[W_FLAGS] & 15;
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
      const float x = load_code(p, dt, i);
      acc += (double)__fmul_rn(x, x);
    }
  }
  acc = block_reduce(acc, SumOp(), 0.0, shm);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// One block: out[0] = float32(sum of partials[0..n)).
extern "C" __global__ void sum_partials(const double* partials, int n, float* out) {
  __shared__ double shm[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partials[i];
  acc = block_reduce(acc, SumOp(), 0.0, shm);
  if (threadIdx.x == 0) out[0] = (float)acc;
}

// ---------------------------------------------------------------------------------------------
// Rescaling into new tensors: out <- src * factor in the tensors' dtype (the factor rounded to
// it first, as a scalar operand is). `ptrs` holds (source, output) pairs (both new each call, so
// the records stay the same); dtype in flags.

__device__ __forceinline__ void scale_tensors_body(const long long* recs, const long long* ptrs, int n, long long items, double factor) {
  int t = 0;
  for (long long item = blockIdx.x; item < items; item += gridDim.x) {
    t = find_record(recs, n, item, W_ITEM0, t);
    const long long* r = record(recs, t);
    const long long start = (item - r[W_ITEM0]) * OPT_CHUNK;
    const long long end = lmin(start + OPT_CHUNK, r[W_NUMEL]);
    const void* src = ptr_of<void>(ptrs[2 * t]);
    void* out = ptr_of<void>(ptrs[2 * t + 1]);
    const int dt = (int)r[W_FLAGS] & 15;
    const float c = round_to_code((float)factor, dt);
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) store_code(out, dt, i, __fmul_rn(load_code(src, dt, i), c));
  }
}

extern "C" __global__ void scale_tensors(const long long* recs, const long long* ptrs, int n, long long items, double factor) {
  scale_tensors_body(recs, ptrs, n, items, factor);
}

// A captured step's gradient clipping: the factor comes from grad_norm_check, on the device.
extern "C" __global__ void scale_tensors_ctl(const long long* recs, const long long* ptrs, int n, long long items, const double* factor) {
  scale_tensors_body(recs, ptrs, n, items, *factor);
}

// The host part of clipGradNorm (src/optim/clip-grad.ts) for a captured step, on one thread:
// norm = sqrt(sum of squares) and the clip factor maxNorm / (norm + 1e-6) (1 when that is not
// below 1: eager clipping leaves the gradients alone then, and x * 1 is exact), both in double
// as the host computes them; *skip = 1 when the loss or the norm is not finite (the trainer
// skips the update: every _ctl kernel of the step then returns at once).
extern "C" __global__ void grad_norm_check(const float* sumSquares, const float* loss, double maxNorm, double* norm, double* factor, int* skip) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const double total = sqrt((double)sumSquares[0]);
  const double coef = maxNorm / (total + 1e-6);
  norm[0] = total;
  factor[0] = coef < 1.0 ? coef : 1.0;
  // x - x is 0 exactly for finite x and NaN for infinities and NaN (IEEE; kernels build without fast math).
  const double l = (double)loss[0];
  skip[0] = (l - l == 0.0 && total - total == 0.0) ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// CAME (src/optim/came.ts has the algorithm). Records: p0 weight (float32), p1 exp_avg, p2 the
// half parameter, then for matrices (flag factored; viewed as [batch, rows, cols]) p3/p4 the
// squared gradient's row/column averages and p5/p6 the instability's, for vectors p3 exp_avg_sq.
// Gradients in `grads`.
//
// Items: a matrix has one per (batch, tile of OPT_TILE_ROWS rows), a vector one per OPT_CHUNK
// elements. Row means are complete within an item; column sums are written per item (colPart)
// and added in came_finish. Scratch arrays (allocated by optim.ts, offsets in the records):
// rowMean and rinv [batch * rows], cinv [batch * cols] float32, colPart [batch * tiles * cols]
// and uPart [items] double.
//
// Launch order: came_stats (g^2 + eps1 statistics), came_finish (beta2), came_rms (update
// vectors' exp_avg_sq; sums of the normalised update's squares), came_update (exp_avg; the
// instability's statistics; vectors' weights), came_finish (beta3), came_apply (matrices' weights).

struct CameCoef {
  float eps1, eps2, beta1, omb1, clipThreshold, decayScale, negLr;
};

__device__ __forceinline__ long long tiles_of(long long rows) { return (rows + OPT_TILE_ROWS - 1) / OPT_TILE_ROWS; }

// Where item `local` (within its record) of a matrix sits.
struct Tile {
  long long b, r0, r1, rows, cols, tile, tiles;
};

__device__ __forceinline__ Tile tile_of(const long long* r, long long local) {
  Tile t;
  t.rows = r[W_ROWS];
  t.cols = r[W_COLS];
  t.tiles = tiles_of(t.rows);
  t.b = local / t.tiles;
  t.tile = local - t.b * t.tiles;
  t.r0 = t.tile * OPT_TILE_ROWS;
  t.r1 = lmin(t.r0 + OPT_TILE_ROWS, t.rows);
  return t;
}

// Row and column sums of f(row, col) over one tile. Row means (complete: a tile has whole rows)
// go to rowMean[row], the tile's column sums to colPart[col]. Needs blockDim.x == 256.
template <class F>
__device__ __forceinline__ void tile_stats(const Tile& t, F f, float* rowMean, double* colPart, double* shm) {
  const int warps = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long nr = t.r1 - t.r0;
  __syncthreads();  // shm may still be read for the previous item
  for (long long k = threadIdx.x; k < nr * warps; k += blockDim.x) shm[k] = 0.0;
  __syncthreads();
  for (long long c0 = 0; c0 < t.cols; c0 += blockDim.x) {
    const long long c = c0 + threadIdx.x;
    const bool on = c < t.cols;
    double col = 0.0;
    for (long long row = t.r0; row < t.r1; ++row) {
      const float x = on ? f(row, c) : 0.f;
      col += (double)x;
      const double s = warp_reduce((double)x, SumOp());
      if (lane == 0) shm[(row - t.r0) * warps + warp] += s;
    }
    if (on) colPart[c] = col;
  }
  __syncthreads();
  for (long long k = threadIdx.x; k < nr; k += blockDim.x) {
    double s = 0.0;
    for (int w = 0; w < warps; ++w) s += shm[k * warps + w];
    rowMean[t.r0 + k] = __fdiv_rn((float)s, (float)t.cols);
  }
}

// Statistics of g * g + eps1 for every matrix item.
__device__ __forceinline__ void came_stats_body(const long long* recs, const long long* grads, int n, long long items,
    float* rowMean, double* colPart, float eps1) {
  __shared__ double shm[OPT_TILE_ROWS * 8];
  int t = 0;
  for (long long item = blockIdx.x; item < items; item += gridDim.x) {
    t = find_record(recs, n, item, W_ITEM0, t);
    const long long* r = record(recs, t);
    const int flags = (int)r[W_FLAGS];
    if (!(flags & F_FACTORED)) continue;
    const Tile tl = tile_of(r, item - r[W_ITEM0]);
    const void* g = ptr_of<void>(grads[t]);
    const int gt = flags & 15;
    const long long base = tl.b * tl.rows * tl.cols;
    auto f = [&](long long row, long long c) {
      const float x = load_code(g, gt, base + row * tl.cols + c);
      return __fadd_rn(__fmul_rn(x, x), eps1);
    };
    tile_stats(tl, f, rowMean + r[W_ROWOFF] + tl.b * tl.rows, colPart + r[W_PARTOFF] + (tl.b * tl.tiles + tl.tile) * tl.cols, shm);
  }
}

extern "C" __global__ void came_stats(const long long* recs, const long long* grads, int n, long long items,
    float* rowMean, double* colPart, float eps1) {
  came_stats_body(recs, grads, n, items, rowMean, colPart, eps1);
}

extern "C" __global__ void came_stats_ctl(const long long* recs, const long long* grads, int n, long long items,
    float* rowMean, double* colPart, float eps1, const int* skip) {
  if (*skip) return;
  came_stats_body(recs, grads, n, items, rowMean, colPart, eps1);
}

// Per (matrix, batch): row/column averages <- beta * avg + omb * mean, then rinv = rsqrt(row /
// mean(row)) and cinv = rsqrt(col). `which` 0 updates the squared-gradient averages (p3, p4),
// 1 the instability's (p5, p6).
__device__ __forceinline__ void came_finish_body(const long long* recs, int n, long long batches, const float* rowMean,
    const double* colPart, float* rinv, float* cinv, int which, float beta, float omb) {
  __shared__ double shm[32];
  int t = 0;
  for (long long item = blockIdx.x; item < batches; item += gridDim.x) {
    t = find_record(recs, n, item, W_BITEM0, t);
    const long long* r = record(recs, t);
    const long long b = item - r[W_BITEM0];
    const long long rows = r[W_ROWS], cols = r[W_COLS], tiles = tiles_of(rows);
    float* rowAvg = ptr_of<float>(r[W_P0 + 3 + 2 * which]) + b * rows;
    float* colAvg = ptr_of<float>(r[W_P0 + 4 + 2 * which]) + b * cols;
    const float* means = rowMean + r[W_ROWOFF] + b * rows;
    double acc = 0.0;
    for (long long i = threadIdx.x; i < rows; i += blockDim.x) {
      const float v = ema2(rowAvg[i], beta, means[i], omb);
      rowAvg[i] = v;
      acc += (double)v;
    }
    const double* parts = colPart + r[W_PARTOFF] + b * tiles * cols;
    float* ci = cinv + r[W_COLOFF] + b * cols;
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
      double s = 0.0;
      for (long long k = 0; k < tiles; ++k) s += parts[k * cols + c];
      const float v = ema2(colAvg[c], beta, __fdiv_rn((float)s, (float)rows), omb);
      colAvg[c] = v;
      ci[c] = rsqrt_exact(v);
    }
    const float rowAvgMean = __fdiv_rn((float)block_reduce(acc, SumOp(), 0.0, shm), (float)rows);
    float* ri = rinv + r[W_ROWOFF] + b * rows;
    // Same thread-to-row mapping as above, so each thread reads back only what it wrote.
    for (long long i = threadIdx.x; i < rows; i += blockDim.x) ri[i] = rsqrt_exact(__fdiv_rn(rowAvg[i], rowAvgMean));
  }
}

extern "C" __global__ void came_finish(const long long* recs, int n, long long batches, const float* rowMean,
    const double* colPart, float* rinv, float* cinv, int which, float beta, float omb) {
  came_finish_body(recs, n, batches, rowMean, colPart, rinv, cinv, which, beta, omb);
}

extern "C" __global__ void came_finish_ctl(const long long* recs, int n, long long batches, const float* rowMean,
    const double* colPart, float* rinv, float* cinv, int which, float beta, float omb, const int* skip) {
  if (*skip) return;
  came_finish_body(recs, n, batches, rowMean, colPart, rinv, cinv, which, beta, omb);
}

// The normalised update u = g / sqrt(V): for matrices (rinv[row] * cinv[col]) * g, for vectors
// rsqrt(v) * g after v <- beta2 v + omb2 (g * g + eps1). Writes each item's sum of u * u.
__device__ __forceinline__ void came_rms_body(const long long* recs, const long long* grads, int n, long long items,
    const float* rinv, const float* cinv, double* uPart, float eps1, float beta2, float omb2) {
  __shared__ double shm[32];
  int t = 0;
  for (long long item = blockIdx.x; item < items; item += gridDim.x) {
    t = find_record(recs, n, item, W_ITEM0, t);
    const long long* r = record(recs, t);
    const int flags = (int)r[W_FLAGS];
    const void* g = ptr_of<void>(grads[t]);
    const int gt = flags & 15;
    double acc = 0.0;
    if (flags & F_FACTORED) {
      const Tile tl = tile_of(r, item - r[W_ITEM0]);
      const long long base = tl.b * tl.rows * tl.cols;
      const float* ri = rinv + r[W_ROWOFF] + tl.b * tl.rows;
      const float* ci = cinv + r[W_COLOFF] + tl.b * tl.cols;
      for (long long row = tl.r0; row < tl.r1; ++row) {
        for (long long c = threadIdx.x; c < tl.cols; c += blockDim.x) {
          const float u = __fmul_rn(__fmul_rn(ri[row], ci[c]), load_code(g, gt, base + row * tl.cols + c));
          acc += (double)__fmul_rn(u, u);
        }
      }
    } else {
      const long long start = (item - r[W_ITEM0]) * OPT_CHUNK;
      const long long end = lmin(start + OPT_CHUNK, r[W_NUMEL]);
      float* v = ptr_of<float>(r[W_P0 + 3]);
      for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        const float x = load_code(g, gt, i);
        const float vi = ema2(v[i], beta2, __fadd_rn(__fmul_rn(x, x), eps1), omb2);
        v[i] = vi;
        const float u = __fmul_rn(rsqrt_exact(vi), x);
        acc += (double)__fmul_rn(u, u);
      }
    }
    acc = block_reduce(acc, SumOp(), 0.0, shm);
    if (threadIdx.x == 0) uPart[item] = acc;
  }
}

extern "C" __global__ void came_rms(const long long* recs, const long long* grads, int n, long long items,
    const float* rinv, const float* cinv, double* uPart, float eps1, float beta2, float omb2) {
  came_rms_body(recs, grads, n, items, rinv, cinv, uPart, eps1, beta2, omb2);
}

extern "C" __global__ void came_rms_ctl(const long long* recs, const long long* grads, int n, long long items,
    const float* rinv, const float* cinv, double* uPart, float eps1, float beta2, float omb2, const int* skip) {
  if (*skip) return;
  came_rms_body(recs, grads, n, items, rinv, cinv, uPart, eps1, beta2, omb2);
}

// 1 / max(1, RMS(u) / clipThreshold) as the CPU computes it (a NaN ratio propagates).
__device__ __forceinline__ float clip_scale(const long long* r, const double* uPart, float clipThreshold, float* shared) {
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    const long long first = r[W_ITEM0], count = r[W_NITEMS];
    for (long long k = 0; k < count; ++k) s += uPart[first + k];
    const float meanSquare = __fdiv_rn((float)s, (float)r[W_NUMEL]);
    const float ratio = __fdiv_rn(__fsqrt_rn(meanSquare), clipThreshold);
    shared[0] = (ratio != ratio || ratio > 1.f) ? ratio : 1.f;
  }
  __syncthreads();
  return shared[0];
}

__device__ __forceinline__ float decayed(float w, bool decay, float decayScale) {
  return decay ? __fadd_rn(w, __fmul_rn(w, decayScale)) : w;
}

// clipped = u / scale; m <- beta1 m + omb1 clipped. Matrices: statistics of the instability
// (clipped - m)^2 + eps2. Vectors: w <- decay(w) + m * -lr, and the half parameter.
__device__ __forceinline__ void came_update_body(const long long* recs, const long long* grads, int n, long long items,
    const float* rinv, const float* cinv, const double* uPart, float* rowMean, double* colPart,
    float eps2, float beta1, float omb1, float clipThreshold, float decayScale, float negLr) {
  __shared__ double shm[OPT_TILE_ROWS * 8];
  __shared__ float scale[1];
  int t = 0;
  for (long long item = blockIdx.x; item < items; item += gridDim.x) {
    t = find_record(recs, n, item, W_ITEM0, t);
    const long long* r = record(recs, t);
    const int flags = (int)r[W_FLAGS];
    const void* g = ptr_of<void>(grads[t]);
    const int gt = flags & 15;
    const float sc = clip_scale(r, uPart, clipThreshold, scale);
    float* m = ptr_of<float>(r[W_P0 + 1]);
    if (flags & F_FACTORED) {
      const Tile tl = tile_of(r, item - r[W_ITEM0]);
      const long long base = tl.b * tl.rows * tl.cols;
      const float* ri = rinv + r[W_ROWOFF] + tl.b * tl.rows;
      const float* ci = cinv + r[W_COLOFF] + tl.b * tl.cols;
      auto f = [&](long long row, long long c) {
        const long long i = base + row * tl.cols + c;
        const float u = __fmul_rn(__fmul_rn(ri[row], ci[c]), load_code(g, gt, i));
        const float clipped = __fdiv_rn(u, sc);
        const float mi = ema2(m[i], beta1, clipped, omb1);
        m[i] = mi;
        const float d = __fsub_rn(clipped, mi);
        return __fadd_rn(__fmul_rn(d, d), eps2);
      };
      tile_stats(tl, f, rowMean + r[W_ROWOFF] + tl.b * tl.rows, colPart + r[W_PARTOFF] + (tl.b * tl.tiles + tl.tile) * tl.cols, shm);
    } else {
      const long long start = (item - r[W_ITEM0]) * OPT_CHUNK;
      const long long end = lmin(start + OPT_CHUNK, r[W_NUMEL]);
      const float* v = ptr_of<const float>(r[W_P0 + 3]);
      float* w = ptr_of<float>(r[W_P0]);
      void* half = ptr_of<void>(r[W_P0 + 2]);
      const int ht = (flags >> 4) & 15;
      const bool decay = (flags & F_DECAY) != 0;
      for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        const float u = __fmul_rn(rsqrt_exact(v[i]), load_code(g, gt, i));
        const float mi = ema2(m[i], beta1, __fdiv_rn(u, sc), omb1);
        m[i] = mi;
        const float wi = __fadd_rn(decayed(w[i], decay, decayScale), __fmul_rn(mi, negLr));
        w[i] = wi;
        if (ht != OPT_NO_DTYPE) store_code(half, ht, i, wi);
      }
    }
  }
}

extern "C" __global__ void came_update(const long long* recs, const long long* grads, int n, long long items,
    const float* rinv, const float* cinv, const double* uPart, float* rowMean, double* colPart,
    float eps2, float beta1, float omb1, float clipThreshold, float decayScale, float negLr) {
  came_update_body(recs, grads, n, items, rinv, cinv, uPart, rowMean, colPart, eps2, beta1, omb1, clipThreshold, decayScale, negLr);
}

extern "C" __global__ void came_update_ctl(const long long* recs, const long long* grads, int n, long long items,
    const float* rinv, const float* cinv, const double* uPart, float* rowMean, double* colPart,
    float eps2, float beta1, float omb1, float clipThreshold, const float* coef, const int* skip) {
  if (*skip) return;
  came_update_body(recs, grads, n, items, rinv, cinv, uPart, rowMean, colPart, eps2, beta1, omb1, clipThreshold, coef[0], coef[1]);
}

// Matrices: w <- decay(w) + ((rinv[row] * cinv[col]) * m) * -lr, and the half parameter.
__device__ __forceinline__ void came_apply_body(const long long* recs, int n, long long items, const float* rinv, const float* cinv,
    float decayScale, float negLr) {
  int t = 0;
  for (long long item = blockIdx.x; item < items; item += gridDim.x) {
    t = find_record(recs, n, item, W_ITEM0, t);
    const long long* r = record(recs, t);
    const int flags = (int)r[W_FLAGS];
    if (!(flags & F_FACTORED)) continue;
    const Tile tl = tile_of(r, item - r[W_ITEM0]);
    const long long base = tl.b * tl.rows * tl.cols;
    const float* ri = rinv + r[W_ROWOFF] + tl.b * tl.rows;
    const float* ci = cinv + r[W_COLOFF] + tl.b * tl.cols;
    float* w = ptr_of<float>(r[W_P0]);
    const float* m = ptr_of<const float>(r[W_P0 + 1]);
    void* half = ptr_of<void>(r[W_P0 + 2]);
    const int ht = (flags >> 4) & 15;
    const bool decay = (flags & F_DECAY) != 0;
    for (long long row = tl.r0; row < tl.r1; ++row) {
      for (long long c = threadIdx.x; c < tl.cols; c += blockDim.x) {
        const long long i = base + row * tl.cols + c;
        const float step = __fmul_rn(__fmul_rn(ri[row], ci[c]), m[i]);
        const float wi = __fadd_rn(decayed(w[i], decay, decayScale), __fmul_rn(step, negLr));
        w[i] = wi;
        if (ht != OPT_NO_DTYPE) store_code(half, ht, i, wi);
      }
    }
  }
}

extern "C" __global__ void came_apply(const long long* recs, int n, long long items, const float* rinv, const float* cinv,
    float decayScale, float negLr) {
  came_apply_body(recs, n, items, rinv, cinv, decayScale, negLr);
}

extern "C" __global__ void came_apply_ctl(const long long* recs, int n, long long items, const float* rinv, const float* cinv,
    const float* coef, const int* skip) {
  if (*skip) return;
  came_apply_body(recs, n, items, rinv, cinv, coef[0], coef[1]);
}
