// Shared by every dimba CUDA kernel: storage types, loads/stores through a compute type, strided
// indexing, group reductions and math overloads. No system headers, so NVRTC needs no include
// paths and nvcc compiles the same text.
//
// Storage types per engine dtype (codes as DTYPE_CODE in kernels/source.ts):
//   0 float32 float | 1 float64 double | 2 bfloat16 bf16 | 3 float16 f16 | 4 int32 int
//   5 int64 long long | 6 bool unsigned char (0 or 1)
// Kernels compute in float for float32/bfloat16/float16 and in double for float64 and the
// integer types (the CPU backend computes integers as JS numbers, i.e. doubles).
#pragma once

#define DIMBA_MAX_DIMS 8

// Which storage types one compilation instantiates. The modules whose kernels take most of NVRTC's
// time (kernels/source.ts KernelModule.typeSplit: scan, causal-conv1d, attention, modulate,
// elementwise, reduce) are compiled once per storage type a process launches, with
// -DDIMBA_ONLY_TYPE=<dtype code>, so a bf16 run does not wait for the float64 variants. nvcc's
// compile check and the host emulation define nothing and get every type. A guarded
// instantiation names its kernels with its type's suffix; unguarded kernels are in every part.
#ifndef DIMBA_ONLY_TYPE
#define DIMBA_ONLY_TYPE -1
#endif
#define DIMBA_WANTS(code) (DIMBA_ONLY_TYPE < 0 || DIMBA_ONLY_TYPE == (code))

struct bf16 { unsigned short bits; };
struct f16 { unsigned short bits; };
typedef unsigned char u8;

template <class T> struct Ty;

template <> struct Ty<float> {
  typedef float C;
  static __device__ __forceinline__ float load(float v) { return v; }
  static __device__ __forceinline__ float store(float v) { return v; }
};

template <> struct Ty<double> {
  typedef double C;
  static __device__ __forceinline__ double load(double v) { return v; }
  static __device__ __forceinline__ double store(double v) { return v; }
};

template <> struct Ty<bf16> {
  typedef float C;
  static __device__ __forceinline__ float load(bf16 v) { return __uint_as_float(((unsigned)v.bits) << 16); }
  // Round to nearest even, as src/tensor/half.ts does bit for bit; NaNs stay quiet NaNs.
  static __device__ __forceinline__ bf16 store(float v) {
    const unsigned u = __float_as_uint(v);
    bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) r.bits = (unsigned short)((u >> 16) | 0x40u);
    else r.bits = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
  }
};

template <> struct Ty<f16> {
  typedef float C;
  static __device__ __forceinline__ float load(f16 v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
  }
  static __device__ __forceinline__ f16 store(float v) {
    f16 r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(v));
    return r;
  }
};

template <> struct Ty<int> {
  typedef double C;
  static __device__ __forceinline__ double load(int v) { return (double)v; }
  // Through int64 so out-of-range results wrap like the CPU's Int32Array stores (NaN gives 0).
  static __device__ __forceinline__ int store(double v) { return (int)(long long)v; }
};

template <> struct Ty<long long> {
  typedef double C;
  static __device__ __forceinline__ double load(long long v) { return (double)v; }
  static __device__ __forceinline__ long long store(double v) { return (long long)v; }
};

template <> struct Ty<u8> {
  typedef double C;
  static __device__ __forceinline__ double load(u8 v) { return (double)v; }
  static __device__ __forceinline__ u8 store(double v) { return v != 0.0 ? 1 : 0; }
};

// Element access by run-time dtype code (casts, and outputs whose type varies by op).
__device__ __forceinline__ double load_dyn(const void* p, int dt, long long i) {
  switch (dt) {
    case 0: return Ty<float>::load(((const float*)p)[i]);
    case 1: return ((const double*)p)[i];
    case 2: return Ty<bf16>::load(((const bf16*)p)[i]);
    case 3: return Ty<f16>::load(((const f16*)p)[i]);
    case 4: return (double)((const int*)p)[i];
    case 5: return (double)((const long long*)p)[i];
    default: return (double)((const u8*)p)[i];
  }
}

__device__ __forceinline__ void store_dyn(void* p, int dt, long long i, double v) {
  switch (dt) {
    case 0: ((float*)p)[i] = (float)v; break;
    case 1: ((double*)p)[i] = v; break;
    case 2: ((bf16*)p)[i] = Ty<bf16>::store((float)v); break;
    case 3: ((f16*)p)[i] = Ty<f16>::store((float)v); break;
    case 4: ((int*)p)[i] = Ty<int>::store(v); break;
    case 5: ((long long*)p)[i] = Ty<long long>::store(v); break;
    default: ((u8*)p)[i] = Ty<u8>::store(v); break;
  }
}

// Logical shape (outer to inner, dims merged where every operand allows) and one operand's
// element strides plus element offset. Both are 9 int64 words, written by src/backends/cuda/layout.ts.
// These and offset1/2/3 serve the 64-bit ("wide") kernels; see Map below for the 32-bit ones.
struct Dims { long long size[DIMBA_MAX_DIMS]; long long ndim; };
struct Strides { long long stride[DIMBA_MAX_DIMS]; long long offset; };

// Offsets of row-major logical element i in one, two or three operands.
__device__ __forceinline__ long long offset1(long long i, const Dims& d, const Strides& a) {
  if (d.ndim == 1) return a.offset + i * a.stride[0];
  long long oa = a.offset;
#pragma unroll
  for (int k = DIMBA_MAX_DIMS - 1; k >= 0; --k) {
    if (k < d.ndim) {
      const long long q = i / d.size[k];
      const long long r = i - q * d.size[k];
      oa += r * a.stride[k];
      i = q;
    }
  }
  return oa;
}

__device__ __forceinline__ void offset2(long long i, const Dims& d, const Strides& a, const Strides& b,
    long long& oa, long long& ob) {
  if (d.ndim == 1) { oa = a.offset + i * a.stride[0]; ob = b.offset + i * b.stride[0]; return; }
  oa = a.offset;
  ob = b.offset;
#pragma unroll
  for (int k = DIMBA_MAX_DIMS - 1; k >= 0; --k) {
    if (k < d.ndim) {
      const long long q = i / d.size[k];
      const long long r = i - q * d.size[k];
      oa += r * a.stride[k];
      ob += r * b.stride[k];
      i = q;
    }
  }
}

__device__ __forceinline__ void offset3(long long i, const Dims& d, const Strides& a, const Strides& b,
    const Strides& c, long long& oa, long long& ob, long long& oc) {
  if (d.ndim == 1) {
    oa = a.offset + i * a.stride[0]; ob = b.offset + i * b.stride[0]; oc = c.offset + i * c.stride[0];
    return;
  }
  oa = a.offset;
  ob = b.offset;
  oc = c.offset;
#pragma unroll
  for (int k = DIMBA_MAX_DIMS - 1; k >= 0; --k) {
    if (k < d.ndim) {
      const long long q = i / d.size[k];
      const long long r = i - q * d.size[k];
      oa += r * a.stride[k];
      ob += r * b.stride[k];
      oc += r * c.stride[k];
      i = q;
    }
  }
}

// 32-bit indexing, chosen by the host (layout.ts planMap) when the element count and every
// operand's reachable offsets fit in int32. A 64-bit division costs ~70 instructions on the GPU,
// so divisions by a dim's size use a host-computed magic number instead (Granlund-Montgomery:
// q = (umulhi(n, magic) + n) >> shift, exact for n, d < 2^31; layout.ts fastDivisor). The magic
// sits in the low 32 bits of a word and the shift in the high bits.
__device__ __forceinline__ unsigned fast_div(unsigned n, long long magicShift) {
  return (__umulhi(n, (unsigned)magicShift) + n) >> (unsigned)(magicShift >> 32);
}

// One merged layout for up to four operands (operand 0 the output), 49 int64 words written by
// layout.ts putMap. Values are int32 here; the words are 64-bit only because the parameter
// writer packs int64 structs.
#define DIMBA_MAP_OPERANDS 4
struct Map {
  long long size[DIMBA_MAX_DIMS];
  long long magic[DIMBA_MAX_DIMS];
  long long stride[DIMBA_MAP_OPERANDS][DIMBA_MAX_DIMS];
  long long ndim;
};

// Element offsets in operands [0, N) of row-major index i over dims [0, nd) of L. Every index
// is a compile-time constant after unrolling, so the fields stay in the parameter bank (no copy
// of the struct to local memory). The outermost dim needs no division (i < size[0] there).
template <int N>
__device__ __forceinline__ void map_offsets(unsigned i, const Map& L, int nd, int (&o)[N]) {
#pragma unroll
  for (int j = 0; j < N; ++j) o[j] = 0;
#pragma unroll
  for (int k = DIMBA_MAX_DIMS - 1; k >= 1; --k) {
    if (k < nd) {
      const unsigned q = fast_div(i, L.magic[k]);
      const int r = (int)(i - q * (unsigned)L.size[k]);
#pragma unroll
      for (int j = 0; j < N; ++j) o[j] += r * (int)L.stride[j][k];
      i = q;
    }
  }
#pragma unroll
  for (int j = 0; j < N; ++j) o[j] += (int)i * (int)L.stride[j][0];
}

// Grid-stride loop over [0, n) with 32-bit indices (n < 2^31, so i + stride cannot wrap).
#define DIMBA_FOR_EACH32(i, n) \
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)(n); i += gridDim.x * blockDim.x)

// N elements moved by one 16-byte (or narrower) load or store; callers guarantee the alignment.
template <class T, int N> struct alignas(sizeof(T) * N) Pack { T v[N]; };

// The vector kernel's geometry (layout.ts putRows): the innermost dim splits into rowChunks
// chunks of VEC elements; a one-row layout ends in `tail` single elements; bit j of bcast marks
// operand j broadcast (stride 0) along the innermost dim.
struct Rows { long long rowMagic, rowChunks, chunks, tail, bcast; };

template <class T, int VEC>
__device__ __forceinline__ void load_pack(Pack<T, VEC>& v, const T* base, int col, bool bcast) {
  if (bcast) {
    const T x = base[0];
#pragma unroll
    for (int e = 0; e < VEC; ++e) v.v[e] = x;
  } else {
    v = *(const Pack<T, VEC>*)(base + col);
  }
}

// out = f(a, b, c) elementwise over a 32-bit layout with NIN inputs (absent ones are never read
// and reach f as zeros). f maps storage values to a storage value, so each kernel keeps its own
// per-element arithmetic and the result is the same whichever of these loops runs it.
//   map_rows     VEC consecutive elements of one row per step, 16-byte loads and stores (the host
//                checked that the innermost dim is contiguous or broadcast and aligned)
//   map_strided  one element per step at any strides
template <int NIN, int VEC, class O, class I1, class I2, class I3, class F>
__device__ __forceinline__ void map_rows(const F& f, const Map& L, const Rows& g, O* out, const I1* a, const I2* b, const I3* c) {
  const int nd = (int)L.ndim - 1;
  const int bc = (int)g.bcast;
  DIMBA_FOR_EACH32(t, g.chunks) {
    const unsigned row = fast_div(t, g.rowMagic);
    const int col = (int)(t - row * (unsigned)g.rowChunks) * VEC;
    int o[NIN + 1];
    map_offsets<NIN + 1>(row, L, nd, o);
    Pack<I1, VEC> x = {};
    Pack<I2, VEC> y = {};
    Pack<I3, VEC> z = {};
    if constexpr (NIN >= 1) load_pack(x, a + o[1], col, bc & 2);
    if constexpr (NIN >= 2) load_pack(y, b + o[2], col, bc & 4);
    if constexpr (NIN >= 3) load_pack(z, c + o[3], col, bc & 8);
    Pack<O, VEC> r;
#pragma unroll
    for (int e = 0; e < VEC; ++e) r.v[e] = f(x.v[e], y.v[e], z.v[e]);
    *(Pack<O, VEC>*)(out + o[0] + col) = r;
  }
  // A one-row layout (offsets 0, inner strides 0 or 1) whose length is not a multiple of VEC.
  const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < (unsigned)g.tail) {
    const int col = (int)g.chunks * VEC + (int)t;
    I1 x = {};
    I2 y = {};
    I3 z = {};
    if constexpr (NIN >= 1) x = a[bc & 2 ? 0 : col];
    if constexpr (NIN >= 2) y = b[bc & 4 ? 0 : col];
    if constexpr (NIN >= 3) z = c[bc & 8 ? 0 : col];
    out[col] = f(x, y, z);
  }
}

template <int NIN, class O, class I1, class I2, class I3, class F>
__device__ __forceinline__ void map_strided(const F& f, const Map& L, long long n, O* out, const I1* a, const I2* b, const I3* c) {
  const int nd = (int)L.ndim;
  DIMBA_FOR_EACH32(i, n) {
    int o[NIN + 1];
    map_offsets<NIN + 1>(i, L, nd, o);
    I1 x = {};
    I2 y = {};
    I3 z = {};
    if constexpr (NIN >= 1) x = a[o[1]];
    if constexpr (NIN >= 2) y = b[o[2]];
    if constexpr (NIN >= 3) z = c[o[3]];
    out[o[0]] = f(x, y, z);
  }
}

// Grid-stride loop over [0, n) with 64-bit indices.
#define DIMBA_FOR_EACH(i, n) \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// Math overloads for the two compute types.
#define DIMBA_MATH1(name, ff, df) \
  __device__ __forceinline__ float name(float x) { return ff(x); } \
  __device__ __forceinline__ double name(double x) { return df(x); }
DIMBA_MATH1(m_exp, expf, exp)
DIMBA_MATH1(m_log, logf, log)
DIMBA_MATH1(m_log1p, log1pf, log1p)
DIMBA_MATH1(m_sqrt, sqrtf, sqrt)
DIMBA_MATH1(m_abs, fabsf, fabs)
DIMBA_MATH1(m_tanh, tanhf, tanh)
DIMBA_MATH1(m_sin, sinf, sin)
DIMBA_MATH1(m_cos, cosf, cos)
DIMBA_MATH1(m_floor, floorf, floor)
DIMBA_MATH1(m_erf, erff, erf)
#undef DIMBA_MATH1
__device__ __forceinline__ float m_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double m_pow(double x, double y) { return pow(x, y); }
__device__ __forceinline__ float m_atan2(float y, float x) { return atan2f(y, x); }
__device__ __forceinline__ double m_atan2(double y, double x) { return atan2(y, x); }
template <class C> __device__ __forceinline__ bool m_isnan(C x) { return x != x; }

template <class C> __device__ __forceinline__ C neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double neg_inf<double>() { return __longlong_as_double(0xfff0000000000000ULL); }

// NaN-propagating max (a NaN anywhere in a row makes its max NaN, as on the CPU).
template <class C> __device__ __forceinline__ C nan_max(C a, C b) {
  if (a != a) return a;
  if (b != b) return b;
  return a > b ? a : b;
}

struct SumOp {
  template <class C> __device__ __forceinline__ C operator()(C a, C b) const { return a + b; }
};
struct MaxOp {
  template <class C> __device__ __forceinline__ C operator()(C a, C b) const { return nan_max(a, b); }
};

template <class C, class Op> __device__ __forceinline__ C warp_reduce(C v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Reduces over the whole block and gives every thread the result. `shm` holds 32 values;
// `identity` pads the partials of absent warps.
template <class C, class Op> __device__ __forceinline__ C block_reduce(C v, Op op, C identity, C* shm) {
  v = warp_reduce(v, op);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  __syncthreads();  // shm may still be read by a previous reduction
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = lane < warps ? shm[lane] : identity;
  return warp_reduce(v, op);
}

// Row kernels run a warp per row (WARP, short rows) or a block per row (long rows). These give
// the row this thread serves, its lane within the row group, and the group's width.
template <bool WARP> __device__ __forceinline__ long long group_row() {
  return WARP ? (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5) : (long long)blockIdx.x;
}
template <bool WARP> __device__ __forceinline__ int group_lane() { return WARP ? (threadIdx.x & 31) : threadIdx.x; }
template <bool WARP> __device__ __forceinline__ int group_width() { return WARP ? 32 : blockDim.x; }

template <bool WARP, class C, class Op> __device__ __forceinline__ C group_reduce(C v, Op op, C identity, C* shm) {
  if (WARP) return warp_reduce(v, op);
  return block_reduce(v, op, identity, shm);
}

// Index kernels record the first bad index here (mapped host memory the host checks after it
// synchronises): word 0 the op code, word 1 the index, word 2 the dimension size.
__device__ __forceinline__ void report_index_error(long long* err, long long code, long long index, long long size) {
  if (atomicCAS((unsigned long long*)err, 0ULL, (unsigned long long)code) == 0ULL) {
    err[1] = index;
    err[2] = size;
    __threadfence_system();
  }
}
