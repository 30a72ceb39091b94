// A small CPU emulator for CUDA kernels written against a few warp primitives, so their index
// arithmetic (fragment layouts, tails, padding, barriers, cp.async groups) can be tested without a
// GPU. Every CUDA thread of a block is a ucontext fiber on one OS thread; fibers switch only at
// barriers and warp collectives, which run once all 32 lanes have arrived (the last to arrive
// computes every lane's result). Memory the kernels touch through the checked accessors must lie
// in a registered region, so out-of-bounds reads and writes abort with a message.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <math.h>
#include <random>
#include <ucontext.h>
#include <vector>

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

using std::max;
using std::min;

namespace emu {

struct Dim3 { unsigned x = 0, y = 1, z = 1; };

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "emu: %s\n", what);
  std::exit(3);
}

inline float bits_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned float_bits(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline unsigned short float_to_bf16(float v) {
  const unsigned u = float_bits(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline unsigned short float_to_f16(float v) {
  _Float16 h = (_Float16)v;
  unsigned short b;
  std::memcpy(&b, &h, 2);
  return b;
}

struct Region { const unsigned char* base; size_t bytes; const char* name; };

struct Copy { void* dst; const void* src; bool valid; };

struct Fiber {
  ucontext_t ctx;
  Dim3 tid;
  bool done = false;
  std::vector<char> stack;
  std::vector<Copy> open;
  std::vector<std::vector<Copy>> groups;
};

struct Warp {
  int arrived = 0;
  unsigned gen = 0;
  void* posts[32];
};

struct State {
  Dim3 block, blockDim, gridDim;
  std::vector<Fiber> fibers;
  int current = -1;
  ucontext_t sched;
  int bar_arrived = 0;
  unsigned bar_gen = 0;
  Warp warps[32];
  std::vector<unsigned char> smem;
  std::vector<Region> regions;
  // cp.async copies happen at issue (catches buffers overwritten while others still read them)
  // or at the wait that covers them (catches data read before its wait).
  bool early_copies = false;
  unsigned long long spins = 0;
  // Counts barrier arrivals, completed collectives and finished threads: the scheduler's sign
  // that running a warp got somewhere.
  unsigned long long progress = 0;
  std::mt19937_64 rng{1};
  std::function<void()> body;
};

inline State& S() {
  static State s;
  return s;
}

inline Fiber& cur() { return S().fibers[S().current]; }
inline const Dim3& cur_thread() { return cur().tid; }
inline const Dim3& cur_block() { return S().block; }
inline const Dim3& cur_block_dim() { return S().blockDim; }
inline const Dim3& cur_grid_dim() { return S().gridDim; }

inline void yield() {
  if (++S().spins > 200000000ULL) fail("no progress: a barrier or warp collective is never completed (deadlock)");
  Fiber& f = cur();
  swapcontext(&f.ctx, &S().sched);
}

inline void add_region(const void* base, size_t bytes, const char* name) {
  S().regions.push_back(Region{(const unsigned char*)base, bytes, name});
}
inline void clear_regions() { S().regions.clear(); }

inline bool in_smem(const void* p, size_t bytes) {
  const unsigned char* c = (const unsigned char*)p;
  return c >= S().smem.data() && c + bytes <= S().smem.data() + S().smem.size();
}

// Aborts unless [p, p + bytes) lies inside a registered region or the block's shared memory.
inline void check(const void* p, size_t bytes, size_t align, const char* what) {
  if (((uintptr_t)p) % align != 0) {
    std::fprintf(stderr, "emu: %s: address %p not %zu-byte aligned\n", what, p, align);
    std::exit(3);
  }
  if (in_smem(p, bytes)) return;
  const unsigned char* c = (const unsigned char*)p;
  for (const Region& r : S().regions) if (c >= r.base && c + bytes <= r.base + r.bytes) return;
  std::fprintf(stderr, "emu: %s: %zu bytes at %p outside every buffer (block %u, thread %u)\n", what, bytes, p,
      S().block.x, cur().tid.x);
  std::exit(3);
}

inline void check_smem(const void* p, size_t bytes, size_t align, const char* what) {
  if (!in_smem(p, bytes) || ((uintptr_t)p) % align != 0) {
    std::fprintf(stderr, "emu: %s: %zu bytes at %p not inside shared memory or misaligned (block %u, thread %u)\n", what,
        bytes, p, S().block.x, cur().tid.x);
    std::exit(3);
  }
}

inline void syncthreads() {
  State& s = S();
  ++s.progress;
  if (++s.bar_arrived == (int)s.fibers.size()) {
    s.bar_arrived = 0;
    ++s.bar_gen;
    s.spins = 0;
    return;
  }
  const unsigned gen = s.bar_gen;
  while (s.bar_gen == gen) yield();
}

// Runs `all(posts)` once every lane of the calling warp has posted; posts[l] is lane l's `mine`.
template <class F> inline void warp_collective(void* mine, F all) {
  State& s = S();
  const unsigned t = cur().tid.x;
  Warp& w = s.warps[t / 32];
  w.posts[t % 32] = mine;
  if (++w.arrived == 32) {
    ++s.progress;
    all(w.posts);
    w.arrived = 0;
    ++w.gen;
    s.spins = 0;
    return;
  }
  const unsigned gen = w.gen;
  while (w.gen == gen) yield();
}

inline void fiber_entry() {
  S().body();
  cur().done = true;
  ++S().progress;
  swapcontext(&cur().ctx, &S().sched);
}

// Runs `body` as every thread of block `block` of a 1-D grid, with `smem_bytes` of dynamic shared
// memory filled with 0xff bytes (NaN as bf16 and f16), so reads of never-written data show.
inline void run_block(unsigned block, unsigned grid, unsigned threads, size_t smem_bytes, std::function<void()> body) {
  State& s = S();
  if (threads % 32 != 0 || threads > 1024) fail("block size must be a multiple of 32 up to 1024");
  s.block.x = block;
  s.gridDim.x = grid;
  s.blockDim.x = threads;
  s.smem.assign(smem_bytes, 0xff);
  s.body = std::move(body);
  if (s.fibers.size() != threads) {
    s.fibers.clear();
    s.fibers.resize(threads);
  }
  s.bar_arrived = 0;
  for (Warp& w : s.warps) w.arrived = 0;
  for (unsigned i = 0; i < threads; ++i) {
    Fiber& f = s.fibers[i];
    f.tid.x = i;
    f.done = false;
    f.open.clear();
    f.groups.clear();
    if (f.stack.empty()) f.stack.resize(256 * 1024);
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.data();
    f.ctx.uc_stack.ss_size = f.stack.size();
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_entry, 0);
  }
  // One warp at a time, picked at random and kept with probability 7/8 while it makes progress, so
  // a warp runs far ahead of the others until a barrier stops it: a buffer refilled without a
  // barrier while other warps still read it then shows as wrong results.
  const unsigned warps = threads / 32;
  auto running = [&](unsigned w) {
    for (unsigned i = w * 32; i < w * 32 + 32; ++i) if (!s.fibers[i].done) return true;
    return false;
  };
  auto pick = [&]() -> int {
    std::vector<unsigned> live;
    for (unsigned w = 0; w < warps; ++w) if (running(w)) live.push_back(w);
    return live.empty() ? -1 : (int)live[s.rng() % live.size()];
  };
  for (int w = pick(); w >= 0;) {
    const unsigned long long before = s.progress;
    for (unsigned i = (unsigned)w * 32; i < (unsigned)w * 32 + 32; ++i) {
      if (s.fibers[i].done) continue;
      s.current = (int)i;
      swapcontext(&s.sched, &s.fibers[i].ctx);
    }
    if (s.progress == before || !running((unsigned)w) || s.rng() % 8 == 0) w = pick();
  }
  if (s.bar_arrived != 0) fail("block ended with threads waiting at __syncthreads");
  for (Fiber& f : s.fibers) {
    bool pending = !f.open.empty();
    for (const std::vector<Copy>& g : f.groups) pending = pending || !g.empty();
    if (pending) fail("block ended with cp.async copies never waited for");
  }
  s.current = -1;
}

}  // namespace emu

#define threadIdx (emu::cur_thread())
#define blockIdx (emu::cur_block())
#define blockDim (emu::cur_block_dim())
#define gridDim (emu::cur_grid_dim())

inline void __syncthreads() { emu::syncthreads(); }

template <class V> inline V __shfl_xor_sync(unsigned, V v, int mask) {
  struct Post { V in; V out; } mine{v, v};
  emu::warp_collective(&mine, [mask](void** posts) {
    V vals[32];
    for (int l = 0; l < 32; ++l) vals[l] = ((Post*)posts[l])->in;
    for (int l = 0; l < 32; ++l) ((Post*)posts[l])->out = vals[l ^ mask];
  });
  return mine.out;
}
