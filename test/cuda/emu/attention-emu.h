// Host versions of the primitives attention.cu uses (ldmatrix, mma.sync m16n8k16, cp.async,
// packed conversions, vector reductions), with the layouts of the PTX ISA, for the CPU emulation.
#pragma once
#include "emu.h"

inline unsigned char* dyn_smem() { return emu::S().smem.data(); }

inline void cp_async16(void* dst, const void* src, bool valid) {
  emu::check_smem(dst, 16, 16, "cp.async destination");
  if (valid) emu::check(src, 16, 16, "cp.async source");
  emu::Copy c{dst, src, valid};
  auto perform = [](const emu::Copy& c) {
    if (c.valid) std::memcpy(c.dst, c.src, 16);
    else std::memset(c.dst, 0, 16);
  };
  if (emu::S().early_copies) perform(c);
  else emu::cur().open.push_back(c);
}
inline void cp_async_commit() {
  emu::Fiber& f = emu::cur();
  f.groups.push_back(std::move(f.open));
  f.open.clear();
}
template <int N> inline void cp_async_wait() {
  emu::Fiber& f = emu::cur();
  while (f.groups.size() > (size_t)N) {
    for (const emu::Copy& c : f.groups.front()) {
      if (c.valid) std::memcpy(c.dst, c.src, 16);
      else std::memset(c.dst, 0, 16);
    }
    f.groups.erase(f.groups.begin());
  }
}

namespace emu {
struct LdsmPost { const unsigned short* row; unsigned* out; };
// Lane l gives the row address of matrix l / 8, row l % 8. Without trans, lane l receives
// (row l / 4, columns 2 (l % 4) and + 1) of each matrix; with trans, (rows 2 (l % 4) and + 1,
// column l / 4).
inline void ldsm(unsigned (&r)[4], const void* p, bool trans) {
  check_smem(p, 16, 16, trans ? "ldmatrix.trans row" : "ldmatrix row");
  LdsmPost mine{(const unsigned short*)p, r};
  warp_collective(&mine, [trans](void** posts) {
    const unsigned short* rows[32];
    for (int l = 0; l < 32; ++l) rows[l] = ((LdsmPost*)posts[l])->row;
    for (int l = 0; l < 32; ++l) {
      for (int i = 0; i < 4; ++i) {
        unsigned lo, hi;
        if (!trans) {
          const unsigned short* row = rows[i * 8 + (l >> 2)];
          lo = row[2 * (l & 3)];
          hi = row[2 * (l & 3) + 1];
        } else {
          lo = rows[i * 8 + 2 * (l & 3)][l >> 2];
          hi = rows[i * 8 + 2 * (l & 3) + 1][l >> 2];
        }
        ((LdsmPost*)posts[l])->out[i] = lo | (hi << 16);
      }
    }
  });
}

template <class T> inline float half_value(unsigned short bits);
template <> inline float half_value<bf16>(unsigned short bits) { return Ty<bf16>::load(bf16{bits}); }
template <> inline float half_value<f16>(unsigned short bits) { return Ty<f16>::load(f16{bits}); }

struct MmaPost { unsigned a[4]; unsigned b[2]; float* c; };
}  // namespace emu

inline void ldsm_x4(unsigned (&r)[4], const void* p) { emu::ldsm(r, p, false); }
inline void ldsm_x4_trans(unsigned (&r)[4], const void* p) { emu::ldsm(r, p, true); }

// D = A B + C for A 16x16 (row), B 16x8 (col): A element (r, k) is half k % 2 of register
// (r >= 8) + 2 (k >= 8) of lane (r % 8) * 4 + (k % 8) / 2; B element (k, n) is half k % 2 of
// register (k >= 8) of lane n * 4 + (k % 8) / 2; lane l holds C/D (l / 4, 2 (l % 4) + {0, 1}) and
// (l / 4 + 8, same columns).
template <class T> inline void mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  emu::MmaPost mine{{a[0], a[1], a[2], a[3]}, {b0, b1}, c};
  emu::warp_collective(&mine, [](void** posts) {
    float A[16][16], B[16][8];
    for (int r = 0; r < 16; ++r)
      for (int k = 0; k < 16; ++k) {
        const emu::MmaPost* p = (emu::MmaPost*)posts[(r % 8) * 4 + (k % 8) / 2];
        const unsigned reg = p->a[(r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)];
        A[r][k] = emu::half_value<T>((unsigned short)(k % 2 ? reg >> 16 : reg & 0xffff));
      }
    for (int k = 0; k < 16; ++k)
      for (int n = 0; n < 8; ++n) {
        const emu::MmaPost* p = (emu::MmaPost*)posts[n * 4 + (k % 8) / 2];
        const unsigned reg = p->b[k >= 8 ? 1 : 0];
        B[k][n] = emu::half_value<T>((unsigned short)(k % 2 ? reg >> 16 : reg & 0xffff));
      }
    for (int l = 0; l < 32; ++l) {
      float* c = ((emu::MmaPost*)posts[l])->c;
      for (int i = 0; i < 4; ++i) {
        const int r = l / 4 + (i >= 2 ? 8 : 0);
        const int n = 2 * (l % 4) + (i % 2);
        float acc = c[i];
        for (int k = 0; k < 16; ++k) acc += A[r][k] * B[k][n];
        c[i] = acc;
      }
    }
  });
}

template <class T> inline unsigned pack2(float lo, float hi);
template <> inline unsigned pack2<bf16>(float lo, float hi) {
  return (unsigned)emu::float_to_bf16(lo) | ((unsigned)emu::float_to_bf16(hi) << 16);
}
template <> inline unsigned pack2<f16>(float lo, float hi) {
  return (unsigned)emu::float_to_f16(lo) | ((unsigned)emu::float_to_f16(hi) << 16);
}

inline void red_add2(float* p, float a, float b) {
  emu::check(p, 8, 8, "red.global.add.v2.f32");
  p[0] += a;
  p[1] += b;
}
template <class T> inline void st_pair(T* p, unsigned packed) {
  emu::check(p, 4, 4, "paired store");
  std::memcpy(p, &packed, 4);
}
template <class T> inline float ld_elem(const T* p) {
  emu::check(p, sizeof(T), sizeof(T), "element load");
  return Ty<T>::load(*p);
}
inline float ld_f32(const float* p) {
  emu::check(p, 4, 4, "float load");
  return *p;
}
inline void st_f32(float* p, float v) {
  emu::check(p, 4, 4, "float store");
  *p = v;
}
