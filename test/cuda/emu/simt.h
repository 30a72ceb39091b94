// Host emulation of the subset of CUDA that scan.cu uses, so its kernels can run on a machine
// without a GPU (test/cuda/scan-emulated.test.ts). Every CUDA thread of a block is an OS thread;
// __syncthreads, __syncwarp and warp shuffles are barriers over the block or the warp. Blocks run
// one after another, so `__shared__` (a function-local static here) is the running block's.
// Numerics are the host's: exp2f stands in for the MUFU ex2 the kernels use on the device.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

// The high 32 bits of a 32 x 32-bit product (common.cuh's fast_div divides with it).
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }

struct EmuDim3 { unsigned x = 0, y = 0, z = 0; };
inline thread_local EmuDim3 threadIdx, blockIdx;
inline EmuDim3 blockDim, gridDim;

namespace emu {
struct Block {
  std::unique_ptr<std::barrier<>> all;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<double> slots;  // one shuffle slot per thread
};
inline Block block;

// Runs body once per thread of each block in turn.
inline void launch(unsigned blocks, unsigned threads, const std::function<void()>& body) {
  if (threads % 32 != 0) throw "emu: blocks must be whole warps";
  blockDim.x = threads;
  gridDim.x = blocks;
  block.all = std::make_unique<std::barrier<>>(threads);
  block.warps.clear();
  for (unsigned w = 0; w < threads / 32; ++w) block.warps.push_back(std::make_unique<std::barrier<>>(32));
  block.slots.assign(threads, 0.0);
  for (unsigned b = 0; b < blocks; ++b) {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([b, t, &body] {
        blockIdx.x = b;
        threadIdx.x = t;
        body();
      });
    }
    for (auto& th : pool) th.join();
  }
}
}  // namespace emu

inline void __syncthreads() { emu::block.all->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::block.warps[threadIdx.x / 32]->arrive_and_wait(); }

template <class T> inline T __shfl_xor_sync(unsigned, T v, int mask) {
  const unsigned me = threadIdx.x;
  const unsigned base = me & ~31u;
  emu::block.slots[me] = (double)v;
  __syncwarp();
  const T r = (T)emu::block.slots[base + ((me - base) ^ (unsigned)mask)];
  __syncwarp();
  return r;
}

template <class T> inline T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long cmp, unsigned long long v) {
  std::atomic_ref<unsigned long long>(*p).compare_exchange_strong(cmp, v);
  return cmp;
}
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }

// IEEE half <-> float with round to nearest even (for the f16 storage type).
inline float emu_half_to_float(unsigned short h) {
  const unsigned s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
  float v;
  if (e == 0) v = std::ldexp((float)m, -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp((float)(m | 1024), (int)e - 25);
  return s ? -v : v;
}
inline unsigned short emu_float_to_half(float f) {
  const unsigned u = __float_as_uint(f);
  const unsigned short sign = (unsigned short)((u >> 16) & 0x8000);
  const float a = std::fabs(f);
  if (a != a) return (unsigned short)(sign | 0x7e00);
  if (a >= 65520.0f) return (unsigned short)(sign | 0x7c00);
  if (a < 6.103515625e-05f) {  // subnormal: units of 2^-24, ties to even
    return (unsigned short)(sign | (unsigned short)std::nearbyint(a * 16777216.0f));
  }
  int e;
  const float m = std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
  unsigned q = (unsigned)std::nearbyint(m * 2048.0f);  // 11 significant bits
  if (q == 2048) { q = 1024; ++e; }
  if (e + 14 >= 31) return (unsigned short)(sign | 0x7c00);
  return (unsigned short)(sign | ((unsigned)(e + 14) << 10) | (q - 1024));
}
