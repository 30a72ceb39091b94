// 2-D resampling of contiguous [planes, H, W] -> [planes, Ho, Wo] with per-axis taps the host
// computes once with the CPU kernel's rules (src/backends/cpu/kernels/interpolate.ts, PyTorch's
// index mapping): out[oh, ow] = Σ wh[oh] ww[ow] x[ih, iw] over the two taps of each axis.
//   interp_nearest_<bytes>   one tap per axis; a raw element move, so every dtype is exact
//   interp_bilinear_<T>      four taps, summed in the compute type S as the CPU does
//   interp_backward_<S>      the adjoint, scattered with atomicAdd into a compute-type accumulator
//                            (nearest: one tap per output pixel)
// Taps: ih0/ih1 [Ho], iw0/iw1 [Wo] (int), wh0/wh1 [Ho], ww0/ww1 [Wo] (S). One thread per output element.
#include "common.cuh"

struct InterpTaps {
  const int* i0h; const int* i1h; const int* i0w; const int* i1w;
  const void* w0h; const void* w1h; const void* w0w; const void* w1w;
};

template <class E>
__device__ void interp_nearest_body(const E* x, E* out, const int* ih, const int* iw, long long h, long long w,
    long long ho, long long wo, long long n) {
  DIMBA_FOR_EACH(i, n) {
    const long long ow = i % wo;
    const long long q = i / wo;
    const long long oh = q % ho;
    const long long p = q / ho;
    out[i] = x[(p * h + ih[oh]) * w + iw[ow]];
  }
}

template <class T>
__device__ void interp_bilinear_body(const T* x, T* out, InterpTaps tp, long long h, long long w, long long ho,
    long long wo, long long n) {
  typedef typename Ty<T>::C S;
  const S* w0h = (const S*)tp.w0h; const S* w1h = (const S*)tp.w1h;
  const S* w0w = (const S*)tp.w0w; const S* w1w = (const S*)tp.w1w;
  DIMBA_FOR_EACH(i, n) {
    const long long ow = i % wo;
    const long long q = i / wo;
    const long long oh = q % ho;
    const long long p = q / ho;
    const T* a = x + (p * h + tp.i0h[oh]) * w;
    const T* b = x + (p * h + tp.i1h[oh]) * w;
    const int c0 = tp.i0w[ow], c1 = tp.i1w[ow];
    const S wa = w0w[ow], wb = w1w[ow];
    const S va = wa * Ty<T>::load(a[c0]) + wb * Ty<T>::load(a[c1]);
    const S vb = wa * Ty<T>::load(b[c0]) + wb * Ty<T>::load(b[c1]);
    out[i] = Ty<T>::store(w0h[oh] * va + w1h[oh] * vb);
  }
}

template <class T>
__device__ void interp_backward_body(const T* gy, typename Ty<T>::C* acc, InterpTaps tp, int nearest, long long h,
    long long w, long long ho, long long wo, long long n) {
  typedef typename Ty<T>::C S;
  const S* w0h = (const S*)tp.w0h; const S* w1h = (const S*)tp.w1h;
  const S* w0w = (const S*)tp.w0w; const S* w1w = (const S*)tp.w1w;
  DIMBA_FOR_EACH(i, n) {
    const long long ow = i % wo;
    const long long q = i / wo;
    const long long oh = q % ho;
    const long long p = q / ho;
    const S g = Ty<T>::load(gy[i]);
    S* a = acc + (p * h + tp.i0h[oh]) * w;
    const int c0 = tp.i0w[ow];
    if (nearest) {
      atomicAdd(&a[c0], g);
      continue;
    }
    S* b = acc + (p * h + tp.i1h[oh]) * w;
    const int c1 = tp.i1w[ow];
    const S wa = w0w[ow] * g, wb = w1w[ow] * g;
    const S ha = w0h[oh], hb = w1h[oh];
    atomicAdd(&a[c0], ha * wa);
    atomicAdd(&a[c1], ha * wb);
    atomicAdd(&b[c0], hb * wa);
    atomicAdd(&b[c1], hb * wb);
  }
}

#define DIMBA_INTERP_WIDTH(bytes, E) \
  extern "C" __global__ void interp_nearest_##bytes(const E* x, E* out, const int* ih, const int* iw, long long h, \
      long long w, long long ho, long long wo, long long n) { \
    interp_nearest_body<E>(x, out, ih, iw, h, w, ho, wo, n); \
  }
DIMBA_INTERP_WIDTH(1, unsigned char)
DIMBA_INTERP_WIDTH(2, unsigned short)
DIMBA_INTERP_WIDTH(4, unsigned int)
DIMBA_INTERP_WIDTH(8, unsigned long long)

#define DIMBA_INTERP(name, T) \
  extern "C" __global__ void interp_bilinear_##name(const T* x, T* out, const InterpTaps tp, long long h, long long w, \
      long long ho, long long wo, long long n) { \
    interp_bilinear_body<T>(x, out, tp, h, w, ho, wo, n); \
  } \
  extern "C" __global__ void interp_backward_##name(const T* gy, Ty<T>::C* acc, const InterpTaps tp, int nearest, \
      long long h, long long w, long long ho, long long wo, long long n) { \
    interp_backward_body<T>(gy, acc, tp, nearest, h, w, ho, wo, n); \
  }
DIMBA_INTERP(f32, float)
DIMBA_INTERP(f64, double)
DIMBA_INTERP(bf16, bf16)
DIMBA_INTERP(f16, f16)
