// Copies, casts, fills and ranges. One thread per element (grid-stride), in the logical
// row-major order of the (merged) shape; every operand may be strided.
//   copy_<bytes>   src -> dst of one dtype, moving raw elements (exact for every dtype)
//   cast           src dtype -> dst dtype through double (see load_dyn/store_dyn)
//   fill_<bytes>   dst = a bit pattern the host encoded (so every dtype fills exactly as on the CPU)
//   arange_<dt>    contiguous out[i] = start + i * step, computed in double (no FMA), then stored
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
