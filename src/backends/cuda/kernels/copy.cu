// Copies, casts, fills and ranges, in the logical row-major order of the (merged) shape; every
// operand may be strided. The host (layout.ts planCopy / planMap) picks the loop:
//   *_rows_*     32-bit indices, 16-byte vector loads/stores along a contiguous (or, for the
//                source, broadcast) innermost dim (common.cuh map_rows)
//   *_tile_*     32-bit indices, a 32x32 tile through shared memory for transposes: the source
//                is read along its unit-stride dim p and the destination written along its
//                unit-stride dim q, both coalesced (any sign of stride, so flips too)
//   *_strided_*  32-bit indices, one element per step at any strides (map_strided)
//   copy_<bytes>, cast, fill_<bytes>  64-bit indices (offsets past int32)
// Kernels:
//   copy_*<bytes>          src -> dst of one dtype, moving raw elements (exact for every dtype)
//   cast_{rows,tile}_<s>_<d>  float dtype s -> float dtype d (f32, f64, bf16, f16)
//   cast, cast_strided     any dtype -> any dtype by run-time codes
//   All casts convert through double (load_dyn/store_dyn, or cast_value: the same steps).
//   fill_*<bytes>          dst = a bit pattern the host encoded (so every dtype fills exactly as on the CPU)
//   arange_<dt>            contiguous out[i] = start + i * step, computed in double (no FMA), then stored
#include "common.cuh"

template <class E>
__device__ __forceinline__ void copy_body(const Dims& d, const Strides& s, const Strides& o, const E* src, E* dst, long long n) {
  DIMBA_FOR_EACH(i, n) {
    long long so, oo;
    offset2(i, d, s, o, so, oo);
    dst[oo] = src[so];
  }
}

#define DIMBA_COPY(bytes, E) \
  extern "C" __global__ void copy_##bytes(const Dims d, const Strides s, const Strides o, const E* src, E* dst, long long n) { \
    copy_body<E>(d, s, o, src, dst, n); \
  }
DIMBA_COPY(1, unsigned char)
DIMBA_COPY(2, unsigned short)
DIMBA_COPY(4, unsigned int)
DIMBA_COPY(8, unsigned long long)

extern "C" __global__ void cast(const Dims d, const Strides s, int srcType, const Strides o, int dstType,
    const void* src, void* dst, long long n) {
  DIMBA_FOR_EACH(i, n) {
    long long so, oo;
    offset2(i, d, s, o, so, oo);
    store_dyn(dst, dstType, oo, load_dyn(src, srcType, so));
  }
}

#define DIMBA_FILL(bytes, E) \
  extern "C" __global__ void fill_##bytes(const Dims d, const Strides o, E* dst, E value, long long n) { \
    DIMBA_FOR_EACH(i, n) dst[offset1(i, d, o)] = value; \
  }
DIMBA_FILL(1, unsigned char)
DIMBA_FILL(2, unsigned short)
DIMBA_FILL(4, unsigned int)
DIMBA_FILL(8, unsigned long long)

// start + i * step with two roundings, as JavaScript computes it: the explicit-rounding intrinsics
// keep the compiler from fusing them into one FMA (which can differ in the last bit).
template <class T>
__device__ __forceinline__ void arange_body(T* out, double start, double step, long long n) {
  DIMBA_FOR_EACH(i, n) out[i] = Ty<T>::store((typename Ty<T>::C)__dadd_rn(start, __dmul_rn((double)i, step)));
}

#define DIMBA_ARANGE(name, T) \
  extern "C" __global__ void arange_##name(T* out, double start, double step, long long n) { arange_body<T>(out, start, step, n); }
DIMBA_ARANGE(f32, float)
DIMBA_ARANGE(f64, double)
DIMBA_ARANGE(bf16, bf16)
DIMBA_ARANGE(f16, f16)
DIMBA_ARANGE(i32, int)
DIMBA_ARANGE(i64, long long)
DIMBA_ARANGE(bool, u8)

// ------------------------------------------------------------------------------------------
// 32-bit kernels.

// store_dyn's conversion from double, by static type.
template <class D> __device__ __forceinline__ D from_double(double v);
template <> __device__ __forceinline__ float from_double<float>(double v) { return (float)v; }
template <> __device__ __forceinline__ double from_double<double>(double v) { return v; }
template <> __device__ __forceinline__ bf16 from_double<bf16>(double v) { return Ty<bf16>::store((float)v); }
template <> __device__ __forceinline__ f16 from_double<f16>(double v) { return Ty<f16>::store((float)v); }

template <class E> struct CopyF {
  __device__ __forceinline__ E operator()(E x, u8, u8) const { return x; }
};

// load_dyn then store_dyn, as the run-time-typed cast does.
template <class S, class D> struct CastF {
  __device__ __forceinline__ D operator()(S x, u8, u8) const { return from_double<D>((double)Ty<S>::load(x)); }
};

template <class E> struct FillF {
  E value;
  __device__ __forceinline__ E operator()(u8, u8, u8) const { return value; }
};

// copy.ts putTile: the two tiled dims (p unit-stride in the source, q in the destination).
struct Tile { long long sizeP, sizeQ, srcP, srcQ, dstP, dstQ, tilesP, tilesQ, magicP, magicQ, tiles; };

#define DIMBA_TILE 32

// dst = f(src) through 32x32 tiles, 256 threads (8 rows of 32). L holds the other ("batch") dims,
// operand 0 the destination and 1 the source. The tile row is padded so that it spans an odd
// number of 4-byte banks: reading a column back then hits 32 different banks.
template <class S, class D, class F>
__device__ __forceinline__ void tile_body(const F& f, const Map& L, const Tile& g, D* dst, const S* src) {
  constexpr int PAD = sizeof(S) >= 4 ? 1 : 4 / (int)sizeof(S);
  __shared__ S tile[DIMBA_TILE][DIMBA_TILE + PAD];
  const int tx = threadIdx.x & 31;
  const int ty = threadIdx.x >> 5;
  const int sizeP = (int)g.sizeP, sizeQ = (int)g.sizeQ;
  const int srcP = (int)g.srcP, srcQ = (int)g.srcQ, dstP = (int)g.dstP, dstQ = (int)g.dstQ;
  for (unsigned t = blockIdx.x; t < (unsigned)g.tiles; t += gridDim.x) {
    const unsigned pq = fast_div(t, g.magicQ);
    const int q0 = (int)(t - pq * (unsigned)g.tilesQ) * DIMBA_TILE;
    const unsigned batch = fast_div(pq, g.magicP);
    const int p0 = (int)(pq - batch * (unsigned)g.tilesP) * DIMBA_TILE;
    int o[2];
    map_offsets<2>(batch, L, (int)L.ndim, o);
#pragma unroll
    for (int k = 0; k < DIMBA_TILE / 8; ++k) {
      const int r = ty + 8 * k;
      const int p = p0 + tx, q = q0 + r;
      if (p < sizeP && q < sizeQ) tile[r][tx] = src[o[1] + p * srcP + q * srcQ];
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < DIMBA_TILE / 8; ++k) {
      const int r = ty + 8 * k;
      const int p = p0 + r, q = q0 + tx;
      if (p < sizeP && q < sizeQ) dst[o[0] + p * dstP + q * dstQ] = f(tile[tx][r], 0, 0);
    }
    __syncthreads();  // the next tile overwrites what slower warps may still read
  }
}

#define DIMBA_VEC2(S, D) (16 / (int)(sizeof(S) > sizeof(D) ? sizeof(S) : sizeof(D)))

#define DIMBA_COPY32(bytes, E) \
  extern "C" __global__ void copy_rows_##bytes(const Map L, const Rows g, E* dst, const E* src) { \
    const u8* none = 0; \
    map_rows<1, DIMBA_VEC2(E, E)>(CopyF<E>(), L, g, dst, src, none, none); \
  } \
  extern "C" __global__ void copy_strided_##bytes(const Map L, long long n, E* dst, const E* src) { \
    const u8* none = 0; \
    map_strided<1>(CopyF<E>(), L, n, dst, src, none, none); \
  } \
  extern "C" __global__ void __launch_bounds__(256) copy_tile_##bytes(const Map L, const Tile g, E* dst, const E* src) { \
    tile_body<E, E>(CopyF<E>(), L, g, dst, src); \
  } \
  extern "C" __global__ void fill_rows_##bytes(const Map L, const Rows g, E* dst, E value) { \
    const u8* none = 0; \
    map_rows<0, DIMBA_VEC2(E, E)>(FillF<E>{value}, L, g, dst, none, none, none); \
  } \
  extern "C" __global__ void fill_strided_##bytes(const Map L, long long n, E* dst, E value) { \
    const u8* none = 0; \
    map_strided<0>(FillF<E>{value}, L, n, dst, none, none, none); \
  }
DIMBA_COPY32(1, unsigned char)
DIMBA_COPY32(2, unsigned short)
DIMBA_COPY32(4, unsigned int)
DIMBA_COPY32(8, unsigned long long)

#define DIMBA_CAST32(sname, S, dname, D) \
  extern "C" __global__ void cast_rows_##sname##_##dname(const Map L, const Rows g, D* dst, const S* src) { \
    const u8* none = 0; \
    map_rows<1, DIMBA_VEC2(S, D)>(CastF<S, D>(), L, g, dst, src, none, none); \
  } \
  extern "C" __global__ void __launch_bounds__(256) cast_tile_##sname##_##dname(const Map L, const Tile g, D* dst, const S* src) { \
    tile_body<S, D>(CastF<S, D>(), L, g, dst, src); \
  }
#define DIMBA_CAST32_FROM(sname, S) \
  DIMBA_CAST32(sname, S, f32, float) DIMBA_CAST32(sname, S, f64, double) \
  DIMBA_CAST32(sname, S, bf16, bf16) DIMBA_CAST32(sname, S, f16, f16)
DIMBA_CAST32_FROM(f32, float)
DIMBA_CAST32_FROM(f64, double)
DIMBA_CAST32_FROM(bf16, bf16)
DIMBA_CAST32_FROM(f16, f16)

extern "C" __global__ void cast_strided(const Map L, long long n, void* dst, int dstType, const void* src, int srcType) {
  const int nd = (int)L.ndim;
  DIMBA_FOR_EACH32(i, n) {
    int o[2];
    map_offsets<2>(i, L, nd, o);
    store_dyn(dst, dstType, o[0], load_dyn(src, srcType, o[1]));
  }
}
