// Host stand-in for src/backends/cuda/kernels/common.cuh when a kernel file is compiled with g++
// for the CPU emulation (see emu.h): the storage types and the subset of helpers the emulated
// kernels use, with the CUDA keywords and thread indices mapped onto emu fibers.
#pragma once
#include "emu.h"

struct bf16 { unsigned short bits; };
struct f16 { unsigned short bits; };

template <class T> struct Ty;
template <> struct Ty<float> {
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};
template <> struct Ty<bf16> {
  static float load(bf16 v) { return emu::bits_float((unsigned)v.bits << 16); }
  static bf16 store(float v) { return bf16{emu::float_to_bf16(v)}; }
};
template <> struct Ty<f16> {
  static float load(f16 v) { _Float16 h; std::memcpy(&h, &v.bits, 2); return (float)h; }
  static f16 store(float v) { return f16{emu::float_to_f16(v)}; }
};

template <class C> inline C neg_inf() { return -std::numeric_limits<C>::infinity(); }

struct SumOp {
  template <class C> C operator()(C a, C b) const { return a + b; }
};
template <class C, class Op> inline C warp_reduce(C v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

#define DIMBA_FOR_EACH(i, n) \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)
