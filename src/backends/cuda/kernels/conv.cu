// conv2d helpers around cuBLAS GEMMs (launcher and the GEMM layout: kernels/conv.ts; reference:
// src/backends/cpu/kernels/conv.ts). x [N, C, H, W], out [N, Co, Ho, Wo], contiguous.
//   im2col_<bytes>   cols [ns, groups, K, L] for samples s0 .. s0+ns and output rows r0 .. r1:
//                    K = (c, i, j) over C/groups * kh * kw, L = (oh - r0, ow); taps outside the
//                    input are 0. Raw element moves, so one kernel per element width.
//   col2im_<S>       the adjoint: every input pixel of rows [ih0, ih1) gathers the gcols entries
//                    that read it (no atomics) and adds the sum to acc (S = float or double).
//   bias_fill_<bytes> out[s, o, p] = bias[o], before a GEMM that adds onto it (beta = 1).
// One thread per element (grid-stride).
#include "common.cuh"

struct ConvGeom {
  long long c, h, w;      // input channels and size
  long long co, ho, wo;   // output channels and size
  long long kh, kw, sh, sw, ph, pw, dh, dw, groups;
};

template <class E>
__device__ void im2col_body(const E* x, E* cols, ConvGeom g, long long s0, long long ns, long long r0, long long r1) {
  const long long cg = g.c / g.groups;
  const long long L = (r1 - r0) * g.wo;
  const long long K = cg * g.kh * g.kw;
  const long long n = ns * g.groups * K * L;
  DIMBA_FOR_EACH(idx, n) {
    long long q = idx;
    const long long ow = q % g.wo; q /= g.wo;
    const long long oh = r0 + q % (r1 - r0); q /= (r1 - r0);
    const long long j = q % g.kw; q /= g.kw;
    const long long i = q % g.kh; q /= g.kh;
    const long long c = q % g.c;  // (group, channel in group) together: the input channel
    const long long s = s0 + q / g.c;
    const long long ih = oh * g.sh - g.ph + i * g.dh;
    const long long iw = ow * g.sw - g.pw + j * g.dw;
    E v;
    if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) v = x[((s * g.c + c) * g.h + ih) * g.w + iw];
    else v = (E)0;
    cols[idx] = v;
  }
}

template <class S>
__device__ void col2im_body(const S* gcols, S* acc, ConvGeom g, long long s0, long long ns, long long r0, long long r1,
    long long ih0, long long ih1) {
  const long long cg = g.c / g.groups;
  const long long L = (r1 - r0) * g.wo;
  const long long K = cg * g.kh * g.kw;
  const long long rowsIn = ih1 - ih0;
  const long long n = ns * g.c * rowsIn * g.w;
  DIMBA_FOR_EACH(idx, n) {
    long long q = idx;
    const long long iw = q % g.w; q /= g.w;
    const long long ih = ih0 + q % rowsIn; q /= rowsIn;
    const long long c = q % g.c;
    const long long sl = q / g.c;  // sample within the chunk
    const long long grp = c / cg;
    const S* gc = gcols + ((sl * g.groups + grp) * K + (c - grp * cg) * g.kh * g.kw) * L;
    S sum = (S)0;
    for (long long i = 0; i < g.kh; ++i) {
      const long long ohs = ih + g.ph - i * g.dh;
      if (ohs < 0 || ohs % g.sh != 0) continue;
      const long long oh = ohs / g.sh;
      if (oh < r0 || oh >= r1) continue;
      for (long long j = 0; j < g.kw; ++j) {
        const long long ows = iw + g.pw - j * g.dw;
        if (ows < 0 || ows % g.sw != 0) continue;
        const long long ow = ows / g.sw;
        if (ow >= g.wo) continue;
        sum += gc[(i * g.kw + j) * L + (oh - r0) * g.wo + ow];
      }
    }
    acc[(((s0 + sl) * g.c + c) * g.h + ih) * g.w + iw] += sum;
  }
}

template <class E>
__device__ void bias_fill_body(const E* bias, E* out, long long channels, long long plane, long long n) {
  DIMBA_FOR_EACH(i, n) out[i] = bias[(i / plane) % channels];
}

#define DIMBA_CONV_WIDTH(bytes, E) \
  extern "C" __global__ void im2col_##bytes(const E* x, E* cols, const ConvGeom g, long long s0, long long ns, \
      long long r0, long long r1) { \
    im2col_body<E>(x, cols, g, s0, ns, r0, r1); \
  } \
  extern "C" __global__ void bias_fill_##bytes(const E* bias, E* out, long long channels, long long plane, long long n) { \
    bias_fill_body<E>(bias, out, channels, plane, n); \
  }
DIMBA_CONV_WIDTH(2, unsigned short)
DIMBA_CONV_WIDTH(4, unsigned int)
DIMBA_CONV_WIDTH(8, unsigned long long)

#define DIMBA_COL2IM(name, S) \
  extern "C" __global__ void col2im_##name(const S* gcols, S* acc, const ConvGeom g, long long s0, long long ns, \
      long long r0, long long r1, long long ih0, long long ih1) { \
    col2im_body<S>(gcols, acc, g, s0, ns, r0, r1, ih0, ih1); \
  }
DIMBA_COL2IM(f32, float)
DIMBA_COL2IM(f64, double)
