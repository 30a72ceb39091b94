// Fused scaled-dot-product attention (FlashAttention-2 scheme) for bfloat16 and float16 inputs
// with float32 accumulation, on the tensor cores through mma.sync m16n8k16 and ldmatrix (sm_80+).
//
// Layout: q [B,H,Lq,E], k [B,H,Lk,E], v [B,H,Lk,E], each given by (batch, head, row) element
// strides with unit stride along E; rows and strides are 16-byte aligned (E a multiple of 8), as
// the launcher guarantees. The head dim is padded with zeros to D (a multiple of 16) in shared
// memory, so one instantiation per D serves every E in (D - 16, D].
//
// Scores live in the log2 domain: x = (q.k) * scale * log2(e) + bias * log2(e), so exp2 is one
// MUFU op. The bias is the additive mask (-inf where masked) plus -inf for keys past Lk. A row whose
// keys are all masked keeps a running max of -inf; its exponentials are taken against 0 instead
// (exp2(-inf) = 0), so it ends with l = 0: output 0 and lse = -inf, never NaN. The backward kernel
// receives lse * log2(e) with -inf replaced by +inf, which makes every P of such a row 0.
//
// Forward (attn_fwd_*): a block owns BR = 16 * MT * NW query rows (each warp 16 * MT of them,
// Q fragments re-read from shared memory per k-step), loops over BC-key tiles of K and V with an
// online softmax; K_{j+1} is fetched (cp.async) while tile j's softmax and P V run, V_j while
// Q K_j^T runs. Writes O and the row log-sum-exp (float32, natural log).
//
// Backward: attn_bwd_prep_* computes Delta = rowsum(dO * O) and the backward's lse, and zeroes the
// float32 dQ accumulator. attn_bwd_* gives a block BC = 16 * NW keys (each warp 16 of them) and
// walks query tiles of BR rows (double-buffered with cp.async), recomputing P^T = exp2(S^T - lse)
// from K Q^T; dV and dK accumulate in registers, dS^T goes through shared memory so each warp can
// form a slice of dQ = dS K, which is added to the float32 accumulator with vector reductions
// (red.global.add.v2.f32): one pass, 5 matmuls per tile, instead of a second pass over K for dQ
// that would recompute Q K^T and dO V^T (7 matmuls). With a single key tile (cross-attention to a
// caption of <= 128 keys) each dQ row has one contributor, so it is stored directly (dq_direct)
// and the accumulator, its zeroing and its conversion are skipped. When there are too few key
// tiles to fill the GPU (again cross-attention), the query range is split over `splits` blocks
// and dK, dV are reduced the same way into float32 accumulators. attn_convert_* casts an
// accumulator (times a scale) into the strided output.
#include "common.cuh"

#ifdef DIMBA_EMU
// CPU emulation of the warp-level primitives (test/cuda/emu): runs this file's kernels on the
// host so their indexing can be checked without a GPU.
#include "attention-emu.h"
#else

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return (unsigned)__cvta_generic_to_shared(p);
}

extern __shared__ __align__(16) unsigned char attn_smem[];
__device__ __forceinline__ unsigned char* dyn_smem() { return attn_smem; }

// 16 bytes global -> shared, asynchronously; valid == false writes zeros and reads nothing.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }

__device__ __forceinline__ void ldsm_x4(unsigned (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(unsigned (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

// c += a * b for one 16x8x16 tile: a as row-major fragments, b as column fragments.
template <class T> __device__ __forceinline__ void mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1);
template <> __device__ __forceinline__ void mma16816<bf16>(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<f16>(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats rounded to nearest even and packed, lo in the low half (the lower column).
template <class T> __device__ __forceinline__ unsigned pack2(float lo, float hi);
template <> __device__ __forceinline__ unsigned pack2<bf16>(float lo, float hi) {
  unsigned d;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(d) : "f"(hi), "f"(lo));
  return d;
}
template <> __device__ __forceinline__ unsigned pack2<f16>(float lo, float hi) {
  unsigned d;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(d) : "f"(hi), "f"(lo));
  return d;
}

// p[0] += a, p[1] += b (p 8-byte aligned), without a return value: one vector reduction on sm_90,
// two scalar ones before it.
__device__ __forceinline__ void red_add2(float* p, float a, float b) {
#if __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" :: "l"(p), "f"(a), "f"(b) : "memory");
#else
  atomicAdd(p, a);
  atomicAdd(p + 1, b);
#endif
}

template <class T> __device__ __forceinline__ void st_pair(T* p, unsigned packed) { *(unsigned*)p = packed; }
template <class T> __device__ __forceinline__ float ld_elem(const T* p) { return Ty<T>::load(*p); }
__device__ __forceinline__ float ld_f32(const float* p) { return *p; }
__device__ __forceinline__ void st_f32(float* p, float v) { *p = v; }

#endif  // DIMBA_EMU

#define ATTN_LOG2E 1.4426950408889634f
#define ATTN_LN2 0.6931471805599453f

// Element strides of a [B, H, L, E] operand (E has stride 1).
struct HeadStrides { long long b, h, l; };
// Element strides of the additive mask viewed as [B, H, Lq, Lk].
struct MaskStrides { long long b, h, q, k; };

// Mask kinds: none (tails only), one bias row per (batch, head) (key padding: the query stride
// is 0), or a value per (query, key).
#define ATTN_MASK_NONE 0
#define ATTN_MASK_KEYS 1
#define ATTN_MASK_FULL 2

// Tile shapes; src/backends/cuda/kernels/attention-plan.ts mirrors them (grid, threads, shared bytes).
__host__ __device__ constexpr int fwd_warps(int) { return 4; }
__host__ __device__ constexpr int fwd_mtiles(int) { return 2; }
__host__ __device__ constexpr int fwd_keys(int d) { return d <= 96 ? 64 : 32; }
__host__ __device__ constexpr int bwd_warps(int) { return 8; }
__host__ __device__ constexpr int bwd_queries(int d) { return d <= 96 ? 64 : 32; }

// Copies rows [0, nvalid) of a row-major global tile (row stride gstride, E valid columns) into
// shared rows of DS elements; other rows and columns E..D-1 become zeros. `fallback` is a valid
// address passed for skipped chunks.
template <class T, int D, int ROWS, int NT>
__device__ __forceinline__ void load_rows(T* s, const T* g, long long gstride, int nvalid, int E, const T* fallback) {
  constexpr int DS = D + 8;
  constexpr int CPR = D / 8;
  for (int i = threadIdx.x; i < ROWS * CPR; i += NT) {
    const int r = i / CPR;
    const int c = i - r * CPR;
    const bool valid = r < nvalid && c * 8 < E;
    cp_async16(s + r * DS + c * 8, valid ? g + r * gstride + c * 8 : fallback, valid);
  }
}

template <class T, int D, int NW, int MT, int BC>
__device__ void attn_fwd_body(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
    T* __restrict__ o, float* __restrict__ lse, const T* __restrict__ mask,
    HeadStrides qs, HeadStrides ks, HeadStrides vs, HeadStrides os, MaskStrides ms,
    int H, int Lq, int Lk, int E, float scale_log2, int mask_kind) {
  constexpr int NT = NW * 32;
  constexpr int BR = NW * 16 * MT;
  constexpr int DS = D + 8;
  constexpr int NK = BC / 8;
  constexpr int ND = D / 8;
  static_assert(D % 16 == 0 && BC % 16 == 0, "tile shapes");
  T* sQ = (T*)dyn_smem();
  T* sK = sQ + BR * DS;
  T* sV = sK + BC * DS;
  float* sBias = (float*)(sV + BC * DS);

  const int nqt = (Lq + BR - 1) / BR;
  const int qt = (int)(blockIdx.x % (unsigned)nqt);
  const long long bh = blockIdx.x / (unsigned)nqt;
  const int b = (int)(bh / H);
  const int h = (int)(bh - (long long)b * H);
  const int q0 = qt * BR;
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int g = lane >> 2;
  const int t4 = lane & 3;

  const T* qb = q + b * qs.b + h * qs.h;
  const T* kb = k + b * ks.b + h * ks.h;
  const T* vb = v + b * vs.b + h * vs.h;
  const T* mb = mask_kind != ATTN_MASK_NONE ? mask + b * ms.b + h * ms.h : mask;
  const int nkt = (Lk + BC - 1) / BC;

  load_rows<T, D, BR, NT>(sQ, qb + (long long)q0 * qs.l, qs.l, min(BR, Lq - q0), E, qb);
  if (nkt > 0) load_rows<T, D, BC, NT>(sK, kb, ks.l, min(BC, Lk), E, kb);
  cp_async_commit();

  float acc[MT][ND][4];
  float m_run[MT][2];
  float l_run[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int n = 0; n < ND; ++n) acc[mt][n][0] = acc[mt][n][1] = acc[mt][n][2] = acc[mt][n][3] = 0.f;
    m_run[mt][0] = m_run[mt][1] = neg_inf<float>();
    l_run[mt][0] = l_run[mt][1] = 0.f;
  }
  const int wrow = warp * 16 * MT;

  for (int j = 0; j < nkt; ++j) {
    const int k0 = j * BC;
    for (int c = tid; c < BC; c += NT) {
      const int key = k0 + c;
      float bias = neg_inf<float>();
      if (key < Lk) bias = mask_kind == ATTN_MASK_KEYS ? ld_elem(mb + key * ms.k) * ATTN_LOG2E : 0.f;
      sBias[c] = bias;
    }
    load_rows<T, D, BC, NT>(sV, vb + (long long)k0 * vs.l, vs.l, min(BC, Lk - k0), E, vb);
    cp_async_commit();
    cp_async_wait<1>();  // Q and K_j are here; V_j may still be in flight
    __syncthreads();

    float s[MT][NK][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int n = 0; n < NK; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      unsigned a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        ldsm_x4(a[mt], sQ + (wrow + mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * DS + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int np = 0; np < BC / 16; ++np) {
        unsigned bfr[4];
        ldsm_x4(bfr, sK + (np * 16 + (lane & 7) + (lane >> 4) * 8) * DS + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816<T>(s[mt][2 * np], a[mt], bfr[0], bfr[1]);
          mma16816<T>(s[mt][2 * np + 1], a[mt], bfr[2], bfr[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with sK
    if (j + 1 < nkt) load_rows<T, D, BC, NT>(sK, kb + (long long)(k0 + BC) * ks.l, ks.l, min(BC, Lk - k0 - BC), E, kb);
    cp_async_commit();  // possibly empty: keeps the group count uniform for the waits

    // Online softmax: each row of a thread's fragments is shared by the 4 lanes of its quad.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int row = q0 + wrow + mt * 16 + g + hr * 8;
        float mx = neg_inf<float>();
#pragma unroll
        for (int n = 0; n < NK; ++n) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int col = n * 8 + 2 * t4 + e;
            float x = s[mt][n][hr * 2 + e] * scale_log2 + sBias[col];
            if (mask_kind == ATTN_MASK_FULL && row < Lq && k0 + col < Lk) {
              x += ld_elem(mb + (long long)row * ms.q + (long long)(k0 + col) * ms.k) * ATTN_LOG2E;
            }
            s[mt][n][hr * 2 + e] = x;
            mx = fmaxf(mx, x);
          }
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_run[mt][hr], mx);
        const float m_use = m_new == neg_inf<float>() ? 0.f : m_new;
        const float alpha = exp2f(m_run[mt][hr] - m_use);
        m_run[mt][hr] = m_new;
        float sum = 0.f;
#pragma unroll
        for (int n = 0; n < NK; ++n) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float p = exp2f(s[mt][n][hr * 2 + e] - m_use);
            s[mt][n][hr * 2 + e] = p;
            sum += p;
          }
        }
        l_run[mt][hr] = l_run[mt][hr] * alpha + sum;
#pragma unroll
        for (int n = 0; n < ND; ++n) {
          acc[mt][n][hr * 2] *= alpha;
          acc[mt][n][hr * 2 + 1] *= alpha;
        }
      }
    }

    cp_async_wait<1>();  // V_j is here; K_{j+1} may still be in flight
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
      unsigned a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        a[mt][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        a[mt][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        a[mt][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        a[mt][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        unsigned bfr[4];
        ldsm_x4_trans(bfr, sV + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * DS + dp * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816<T>(acc[mt][2 * dp], a[mt], bfr[0], bfr[1]);
          mma16816<T>(acc[mt][2 * dp + 1], a[mt], bfr[2], bfr[3]);
        }
      }
    }
    __syncthreads();  // sV and sBias are free for the next tile
  }
  cp_async_wait<0>();  // with no key tiles the Q copies were never waited for

  T* ob = o + b * os.b + h * os.h;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float l = l_run[mt][hr];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int row = q0 + wrow + mt * 16 + g + hr * 8;
      if (row >= Lq) continue;
      const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
      for (int n = 0; n < ND; ++n) {
        const int col = n * 8 + 2 * t4;
        if (n * 8 < E) st_pair(ob + (long long)row * os.l + col, pack2<T>(acc[mt][n][hr * 2] * inv, acc[mt][n][hr * 2 + 1] * inv));
      }
      if (t4 == 0) st_f32(lse + bh * Lq + row, l > 0.f ? (m_run[mt][hr] + log2f(l)) * ATTN_LN2 : neg_inf<float>());
    }
  }
}

// One warp per query row: Delta = sum(dO * O) and the backward's lse (times log2 e; +inf for a
// fully masked row, so its P vanishes), into stats[0..rows) and stats[rows..2 rows); the row of
// the float32 dQ accumulator (when there is one) starts at zero.
template <class T>
__device__ void attn_bwd_prep_body(const T* __restrict__ o, const T* __restrict__ dout, const float* __restrict__ lse,
    float* __restrict__ stats, float* __restrict__ dq_acc, HeadStrides os, HeadStrides dos, int H, int Lq, int E, long long rows) {
  const long long r = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= rows) return;
  const int lane = threadIdx.x & 31;
  const long long bh = r / Lq;
  const int i = (int)(r - bh * Lq);
  const int b = (int)(bh / H);
  const int h = (int)(bh - (long long)b * H);
  const T* orow = o + b * os.b + h * os.h + i * os.l;
  const T* drow = dout + b * dos.b + h * dos.h + i * dos.l;
  float sum = 0.f;
  for (int e = lane; e < E; e += 32) {
    sum += ld_elem(orow + e) * ld_elem(drow + e);
    if (dq_acc) st_f32(dq_acc + r * E + e, 0.f);
  }
  sum = warp_reduce(sum, SumOp());
  if (lane == 0) {
    const float l = ld_f32(lse + r);
    st_f32(stats + r, l == neg_inf<float>() ? -neg_inf<float>() : l * ATTN_LOG2E);
    st_f32(stats + rows + r, sum);
  }
}

template <class T, int D, int NW, int BR>
__device__ void attn_bwd_body(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
    const T* __restrict__ dout, const float* __restrict__ lse2_all, const float* __restrict__ delta_all, float* __restrict__ dq_acc,
    T* __restrict__ dq, T* __restrict__ dk, T* __restrict__ dv, float* __restrict__ dk_acc, float* __restrict__ dv_acc,
    const T* __restrict__ mask, HeadStrides qs, HeadStrides ks, HeadStrides vs, HeadStrides dos, HeadStrides dqs, HeadStrides dks,
    HeadStrides dvs, MaskStrides ms, int H, int Lq, int Lk, int E, float scale_log2, float scale, int mask_kind, int splits,
    int dq_direct) {
  constexpr int NT = NW * 32;
  constexpr int BC = NW * 16;
  constexpr int DS = D + 8;
  constexpr int PS = BR + 8;
  constexpr int NQ = BR / 8;
  constexpr int ND = D / 8;
  constexpr int MTQ = BR / 16;
  constexpr int WPM = NW / MTQ;
  static_assert(D % 16 == 0 && BR % 16 == 0 && NW % MTQ == 0, "tile shapes");
  T* sK = (T*)dyn_smem();
  T* sV = sK + BC * DS;
  T* sQ = sV + BC * DS;         // 2 buffers of BR rows
  T* sdO = sQ + 2 * BR * DS;    // 2 buffers of BR rows
  T* sdS = sdO + 2 * BR * DS;   // dS^T, [BC keys][BR queries]
  float* sL = (float*)(sdS + BC * PS);  // 2 x BR
  float* sDl = sL + 2 * BR;             // 2 x BR

  const int nkt = (Lk + BC - 1) / BC;
  const int nqt = (Lq + BR - 1) / BR;
  const int split = (int)(blockIdx.x % (unsigned)splits);
  const long long rest = blockIdx.x / (unsigned)splits;
  const int kt = (int)(rest % nkt);
  const long long bh = rest / nkt;
  const int b = (int)(bh / H);
  const int h = (int)(bh - (long long)b * H);
  const int per = (nqt + splits - 1) / splits;
  const int qt_begin = split * per;
  const int qt_end = min(nqt, qt_begin + per);
  if (qt_begin >= qt_end) return;  // an empty share of a split: nothing to add
  const int k0 = kt * BC;
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int g = lane >> 2;
  const int t4 = lane & 3;

  const T* qb = q + b * qs.b + h * qs.h;
  const T* kb = k + b * ks.b + h * ks.h;
  const T* vb = v + b * vs.b + h * vs.h;
  const T* db = dout + b * dos.b + h * dos.h;
  const T* mb = mask_kind != ATTN_MASK_NONE ? mask + b * ms.b + h * ms.h : mask;
  const float* lse2 = lse2_all + bh * Lq;
  const float* delta = delta_all + bh * Lq;

  load_rows<T, D, BC, NT>(sK, kb + (long long)k0 * ks.l, ks.l, min(BC, Lk - k0), E, kb);
  load_rows<T, D, BC, NT>(sV, vb + (long long)k0 * vs.l, vs.l, min(BC, Lk - k0), E, vb);

  // Queries of tile `qt` into buffer `buf`: Q and dO asynchronously, the row statistics directly
  // (rows past Lq get lse +inf, so their P is 0).
  auto load_queries = [&](int qt, int buf) {
    const int q0 = qt * BR;
    const int nvalid = min(BR, Lq - q0);
    load_rows<T, D, BR, NT>(sQ + buf * BR * DS, qb + (long long)q0 * qs.l, qs.l, nvalid, E, qb);
    load_rows<T, D, BR, NT>(sdO + buf * BR * DS, db + (long long)q0 * dos.l, dos.l, nvalid, E, db);
    for (int i = tid; i < BR; i += NT) {
      const bool ok = i < nvalid;
      sL[buf * BR + i] = ok ? ld_f32(lse2 + q0 + i) : -neg_inf<float>();
      sDl[buf * BR + i] = ok ? ld_f32(delta + q0 + i) : 0.f;
    }
  };
  load_queries(qt_begin, 0);
  cp_async_commit();

  // This thread's two key rows (g and g + 8 of the warp's 16) and their bias.
  float kbias[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int key = k0 + warp * 16 + g + hr * 8;
    kbias[hr] = key < Lk ? (mask_kind == ATTN_MASK_KEYS ? ld_elem(mb + key * ms.k) * ATTN_LOG2E : 0.f) : neg_inf<float>();
  }

  float dk_r[ND][4];
  float dv_r[ND][4];
#pragma unroll
  for (int n = 0; n < ND; ++n) {
    dk_r[n][0] = dk_r[n][1] = dk_r[n][2] = dk_r[n][3] = 0.f;
    dv_r[n][0] = dv_r[n][1] = dv_r[n][2] = dv_r[n][3] = 0.f;
  }
  const int krow = warp * 16;

  for (int qt = qt_begin, it = 0; qt < qt_end; ++qt, ++it) {
    const int buf = it & 1;
    const int q0 = qt * BR;
    if (qt + 1 < qt_end) load_queries(qt + 1, buf ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const T* cQ = sQ + buf * BR * DS;
    const T* cdO = sdO + buf * BR * DS;
    const float* cL = sL + buf * BR;
    const float* cDl = sDl + buf * BR;

    // S^T = K Q^T and dP^T = V dO^T for the warp's 16 keys against BR queries.
    float st[NQ][4];
    float dpt[NQ][4];
#pragma unroll
    for (int n = 0; n < NQ; ++n) {
      st[n][0] = st[n][1] = st[n][2] = st[n][3] = 0.f;
      dpt[n][0] = dpt[n][1] = dpt[n][2] = dpt[n][3] = 0.f;
    }
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      unsigned ak[4], av[4];
      ldsm_x4(ak, sK + (krow + (lane & 7) + ((lane >> 3) & 1) * 8) * DS + kk * 16 + (lane >> 4) * 8);
      ldsm_x4(av, sV + (krow + (lane & 7) + ((lane >> 3) & 1) * 8) * DS + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int np = 0; np < BR / 16; ++np) {
        unsigned bq[4], bd[4];
        const int off = (np * 16 + (lane & 7) + (lane >> 4) * 8) * DS + kk * 16 + ((lane >> 3) & 1) * 8;
        ldsm_x4(bq, cQ + off);
        ldsm_x4(bd, cdO + off);
        mma16816<T>(st[2 * np], ak, bq[0], bq[1]);
        mma16816<T>(st[2 * np + 1], ak, bq[2], bq[3]);
        mma16816<T>(dpt[2 * np], av, bd[0], bd[1]);
        mma16816<T>(dpt[2 * np + 1], av, bd[2], bd[3]);
      }
    }

    // P^T = exp2(S^T - lse), dS^T = P^T (dP^T - Delta); dS^T also to shared memory for dQ.
#pragma unroll
    for (int n = 0; n < NQ; ++n) {
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int key = k0 + krow + g + hr * 8;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int col = n * 8 + 2 * t4 + e;
          float x = st[n][hr * 2 + e] * scale_log2 + kbias[hr];
          if (mask_kind == ATTN_MASK_FULL && q0 + col < Lq && key < Lk) {
            x += ld_elem(mb + (long long)(q0 + col) * ms.q + (long long)key * ms.k) * ATTN_LOG2E;
          }
          const float p = exp2f(x - cL[col]);
          st[n][hr * 2 + e] = p;
          dpt[n][hr * 2 + e] = p * (dpt[n][hr * 2 + e] - cDl[col]);
        }
        st_pair(sdS + (krow + g + hr * 8) * PS + n * 8 + 2 * t4, pack2<T>(dpt[n][hr * 2], dpt[n][hr * 2 + 1]));
      }
    }

    // dV += P^T dO and dK += dS^T Q (queries are the k dimension).
#pragma unroll
    for (int kk = 0; kk < BR / 16; ++kk) {
      unsigned ap[4], ads[4];
      ap[0] = pack2<T>(st[2 * kk][0], st[2 * kk][1]);
      ap[1] = pack2<T>(st[2 * kk][2], st[2 * kk][3]);
      ap[2] = pack2<T>(st[2 * kk + 1][0], st[2 * kk + 1][1]);
      ap[3] = pack2<T>(st[2 * kk + 1][2], st[2 * kk + 1][3]);
      ads[0] = pack2<T>(dpt[2 * kk][0], dpt[2 * kk][1]);
      ads[1] = pack2<T>(dpt[2 * kk][2], dpt[2 * kk][3]);
      ads[2] = pack2<T>(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]);
      ads[3] = pack2<T>(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        unsigned bd[4], bq[4];
        const int off = (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * DS + dp * 16 + (lane >> 4) * 8;
        ldsm_x4_trans(bd, cdO + off);
        ldsm_x4_trans(bq, cQ + off);
        mma16816<T>(dv_r[2 * dp], ap, bd[0], bd[1]);
        mma16816<T>(dv_r[2 * dp + 1], ap, bd[2], bd[3]);
        mma16816<T>(dk_r[2 * dp], ads, bq[0], bq[1]);
        mma16816<T>(dk_r[2 * dp + 1], ads, bq[2], bq[3]);
      }
    }
    __syncthreads();  // sdS complete

    // dQ (BR x D) = dS K over this block's BC keys: warp -> (m-tile, every WPM-th column pair).
    {
      const int mq = warp % MTQ;
      for (int dp = warp / MTQ; dp < D / 16; dp += WPM) {
        float c[2][4];
#pragma unroll
        for (int nn = 0; nn < 2; ++nn) c[nn][0] = c[nn][1] = c[nn][2] = c[nn][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk) {
          unsigned a[4], bk[4];
          ldsm_x4_trans(a, sdS + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * PS + mq * 16 + ((lane >> 3) & 1) * 8);
          ldsm_x4_trans(bk, sK + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * DS + dp * 16 + (lane >> 4) * 8);
          mma16816<T>(c[0], a, bk[0], bk[1]);
          mma16816<T>(c[1], a, bk[2], bk[3]);
        }
#pragma unroll
        for (int nn = 0; nn < 2; ++nn) {
          const int col = dp * 16 + nn * 8 + 2 * t4;
          if (dp * 16 + nn * 8 >= E) continue;
#pragma unroll
          for (int hr = 0; hr < 2; ++hr) {
            const int row = q0 + mq * 16 + g + hr * 8;
            if (row >= Lq) continue;
            if (dq_direct) {
              st_pair(dq + b * dqs.b + h * dqs.h + (long long)row * dqs.l + col, pack2<T>(c[nn][hr * 2] * scale, c[nn][hr * 2 + 1] * scale));
            } else {
              red_add2(dq_acc + (bh * Lq + row) * E + col, c[nn][hr * 2], c[nn][hr * 2 + 1]);
            }
          }
        }
      }
    }
    // The next iteration's barrier (after its wait) orders these sdS reads before its writes.
  }

#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int key = k0 + krow + g + hr * 8;
    if (key >= Lk) continue;
#pragma unroll
    for (int n = 0; n < ND; ++n) {
      if (n * 8 >= E) continue;
      const int col = n * 8 + 2 * t4;
      const float k0v = dk_r[n][hr * 2] * scale, k1v = dk_r[n][hr * 2 + 1] * scale;
      const float v0v = dv_r[n][hr * 2], v1v = dv_r[n][hr * 2 + 1];
      if (splits == 1) {
        st_pair(dk + b * dks.b + h * dks.h + (long long)key * dks.l + col, pack2<T>(k0v, k1v));
        st_pair(dv + b * dvs.b + h * dvs.h + (long long)key * dvs.l + col, pack2<T>(v0v, v1v));
      } else {
        red_add2(dk_acc + (bh * Lk + key) * E + col, k0v, k1v);
        red_add2(dv_acc + (bh * Lk + key) * E + col, v0v, v1v);
      }
    }
  }
}

// dst (strided [B, H, L, E]) = acc ([B*H, L, E] float32) * scale, two elements per thread.
template <class T>
__device__ void attn_convert_body(const float* __restrict__ acc, T* __restrict__ dst, HeadStrides ds, int H, int L, int E,
    float scale, long long pairs) {
  const int half = E >> 1;
  DIMBA_FOR_EACH(i, pairs) {
    const long long r = i / half;
    const int e = (int)(i - r * half) * 2;
    const long long bh = r / L;
    const int l = (int)(r - bh * L);
    const int b = (int)(bh / H);
    const int h = (int)(bh - (long long)b * H);
    st_pair(dst + b * ds.b + h * ds.h + (long long)l * ds.l + e, pack2<T>(ld_f32(acc + r * E + e) * scale, ld_f32(acc + r * E + e + 1) * scale));
  }
}

#ifndef DIMBA_EMU

#define ATTN_FWD(name, T, D)                                                                                          \
  extern "C" __global__ void __launch_bounds__(fwd_warps(D) * 32) attn_fwd_##name##_d##D(                             \
      const T* q, const T* k, const T* v, T* o, float* lse, const T* mask, HeadStrides qs, HeadStrides ks,            \
      HeadStrides vs, HeadStrides os, MaskStrides ms, int H, int Lq, int Lk, int E, float scale_log2, int mask_kind) { \
    attn_fwd_body<T, D, fwd_warps(D), fwd_mtiles(D), fwd_keys(D)>(q, k, v, o, lse, mask, qs, ks, vs, os, ms, H, Lq,   \
        Lk, E, scale_log2, mask_kind);                                                                                \
  }

#define ATTN_BWD(name, T, D)                                                                                          \
  extern "C" __global__ void __launch_bounds__(bwd_warps(D) * 32) attn_bwd_##name##_d##D(                             \
      const T* q, const T* k, const T* v, const T* dout, const float* lse2, const float* delta, float* dq_acc, T* dq,  \
      T* dk, T* dv, float* dk_acc, float* dv_acc, const T* mask, HeadStrides qs, HeadStrides ks, HeadStrides vs,      \
      HeadStrides dos, HeadStrides dqs, HeadStrides dks, HeadStrides dvs, MaskStrides ms, int H, int Lq, int Lk,      \
      int E, float scale_log2, float scale, int mask_kind, int splits, int dq_direct) {                               \
    attn_bwd_body<T, D, bwd_warps(D), bwd_queries(D)>(q, k, v, dout, lse2, delta, dq_acc, dq, dk, dv, dk_acc, dv_acc, \
        mask, qs, ks, vs, dos, dqs, dks, dvs, ms, H, Lq, Lk, E, scale_log2, scale, mask_kind, splits, dq_direct);     \
  }

#define ATTN_DTYPE(name, T)                                                                                           \
  ATTN_FWD(name, T, 16) ATTN_FWD(name, T, 32) ATTN_FWD(name, T, 48) ATTN_FWD(name, T, 64)                             \
  ATTN_FWD(name, T, 80) ATTN_FWD(name, T, 96) ATTN_FWD(name, T, 112) ATTN_FWD(name, T, 128)                           \
  ATTN_BWD(name, T, 16) ATTN_BWD(name, T, 32) ATTN_BWD(name, T, 48) ATTN_BWD(name, T, 64)                             \
  ATTN_BWD(name, T, 80) ATTN_BWD(name, T, 96) ATTN_BWD(name, T, 112) ATTN_BWD(name, T, 128)                           \
  extern "C" __global__ void attn_bwd_prep_##name(const T* o, const T* dout, const float* lse, float* stats,           \
      float* dq_acc, HeadStrides os, HeadStrides dos, int H, int Lq, int E, long long rows) {                         \
    attn_bwd_prep_body<T>(o, dout, lse, stats, dq_acc, os, dos, H, Lq, E, rows);                                      \
  }                                                                                                                   \
  extern "C" __global__ void attn_convert_##name(const float* acc, T* dst, HeadStrides ds, int H, int L, int E,        \
      float scale, long long pairs) {                                                                                 \
    attn_convert_body<T>(acc, dst, ds, H, L, E, scale, pairs);                                                        \
  }

#if DIMBA_WANTS(2)
ATTN_DTYPE(bf16, bf16)
#endif
#if DIMBA_WANTS(3)
ATTN_DTYPE(f16, f16)
#endif

#endif  // DIMBA_EMU
