// Host stand-in for src/backends/cuda/kernels/common.cuh when optim.cu is compiled with g++ for
// the CPU emulation (emu.h; optim-harness.cpp): storage types, the reductions and the IEEE
// float32 intrinsics optim.cu uses. Compiled with -ffp-contract=off, so the host's float
// arithmetic (SSE) rounds each operation as __fmul_rn and friends do on the GPU.
#pragma once
#include "emu.h"

#define __shared__ static

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

inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }

struct SumOp {
  template <class C> C operator()(C a, C b) const { return a + b; }
};

template <class C, class Op> inline C warp_reduce(C v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <class C, class Op> inline C block_reduce(C v, Op op, C identity, C* shm) {
  v = warp_reduce(v, op);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = lane < warps ? shm[lane] : identity;
  return warp_reduce(v, op);
}
