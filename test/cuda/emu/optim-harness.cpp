// Replays a trace of the multi-tensor optimizer launches (written by test/cuda/optim-emu.test.ts
// from kernels/optim.ts running against a fake CUDA runtime) on the CPU emulator (emu.h), with
// optim.cu compiled for the host. The fake runtime hands out device addresses inside a fixed
// range, which this program maps at the same address, so the tables' pointers need no
// translation. Each launch's arguments arrive tagged with the types the launcher wrote; they
// must match the kernel's parameter list here, so a launcher and a kernel that disagree about a
// parameter fail loudly.
//
// Trace (little-endian): u64 magic, u64 base, u64 bytes, then ops:
//   1 copy:   u64 dst, u64 n, n bytes (padded to 8)                 (host-to-device upload)
//   2 launch: u32 name length, name (padded to 8), u32 grid, u32 block, u32 args,
//             per arg u32 tag ('p' pointer, 'l' int64, 'i' int32, 'f' float32, 'd' float64), u64 bits
//   3 zones:  u64 count, count x (u64 address, u64 bytes): must still hold the fill byte at the end
//   0 end
// The mapping starts filled with 0xa5 (every allocation's contents until something writes them).
// On success the whole mapping is written to the output file.
//
// usage: optim-harness trace output
#include <sys/mman.h>
#include <map>
#include <string>

#include "optim.cu"

namespace {

const unsigned char FILL = 0xa5;

struct Reader {
  FILE* f;
  template <class T> T get() {
    T v;
    if (std::fread(&v, sizeof v, 1, f) != 1) emu::fail("trace ends early");
    return v;
  }
  void bytes(void* dst, size_t n) {
    if (n && std::fread(dst, 1, n, f) != n) emu::fail("trace ends early");
    const size_t pad = (8 - n % 8) % 8;
    char skip[8];
    if (pad && std::fread(skip, 1, pad, f) != pad) emu::fail("trace ends early");
  }
};

struct Arg { char tag; unsigned long long bits; };

struct Args {
  std::vector<Arg> v;
  template <class T> T* p(int i) const { return (T*)(uintptr_t)v[i].bits; }
  long long l(int i) const { return (long long)v[i].bits; }
  int i(int k) const { return (int)(unsigned)v[k].bits; }
  float f(int i) const { unsigned u = (unsigned)v[i].bits; float x; std::memcpy(&x, &u, 4); return x; }
  double d(int i) const { double x; std::memcpy(&x, &v[i].bits, 8); return x; }
};

struct Kernel {
  const char* signature;
  void (*call)(const Args&);
};

typedef const long long* Recs;

const std::map<std::string, Kernel> KERNELS = {
  {"adamw_step", {"ppilffifffff", [](const Args& a) {
    adamw_step(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.f(4), a.f(5), a.i(6), a.f(7), a.f(8), a.f(9),
        a.f(10), a.f(11));
  }}},
  {"ema_update", {"pilff", [](const Args& a) { ema_update(a.p<const long long>(0), a.i(1), a.l(2), a.f(3), a.f(4)); }}},
  {"sum_squares", {"ppilp", [](const Args& a) {
    sum_squares(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.p<double>(4));
  }}},
  {"sum_partials", {"pip", [](const Args& a) { sum_partials(a.p<const double>(0), a.i(1), a.p<float>(2)); }}},
  {"scale_tensors", {"ppild", [](const Args& a) {
    scale_tensors(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.d(4));
  }}},
  {"came_stats", {"ppilppf", [](const Args& a) {
    came_stats(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.p<float>(4), a.p<double>(5), a.f(6));
  }}},
  {"came_finish", {"pilppppiff", [](const Args& a) {
    came_finish(a.p<const long long>(0), a.i(1), a.l(2), a.p<const float>(3), a.p<const double>(4), a.p<float>(5), a.p<float>(6),
        a.i(7), a.f(8), a.f(9));
  }}},
  {"came_rms", {"ppilpppfff", [](const Args& a) {
    came_rms(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.p<const float>(4), a.p<const float>(5), a.p<double>(6),
        a.f(7), a.f(8), a.f(9));
  }}},
  {"came_update", {"ppilpppppffffff", [](const Args& a) {
    came_update(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.p<const float>(4), a.p<const float>(5),
        a.p<const double>(6), a.p<float>(7), a.p<double>(8), a.f(9), a.f(10), a.f(11), a.f(12), a.f(13), a.f(14));
  }}},
  {"came_apply", {"pilppff", [](const Args& a) {
    came_apply(a.p<const long long>(0), a.i(1), a.l(2), a.p<const float>(3), a.p<const float>(4), a.f(5), a.f(6));
  }}},
  // The captured-step twins: coefficients from device memory, a device skip flag (see optim.cu).
  {"adamw_step_ctl", {"ppilpp", [](const Args& a) {
    adamw_step_ctl(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.p<const float>(4), a.p<const int>(5));
  }}},
  {"ema_update_ctl", {"pilffp", [](const Args& a) { ema_update_ctl(a.p<const long long>(0), a.i(1), a.l(2), a.f(3), a.f(4), a.p<const int>(5)); }}},
  {"scale_tensors_ctl", {"ppilp", [](const Args& a) {
    scale_tensors_ctl(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.p<const double>(4));
  }}},
  {"grad_norm_check", {"ppdppp", [](const Args& a) {
    grad_norm_check(a.p<const float>(0), a.p<const float>(1), a.d(2), a.p<double>(3), a.p<double>(4), a.p<int>(5));
  }}},
  {"came_stats_ctl", {"ppilppfp", [](const Args& a) {
    came_stats_ctl(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.p<float>(4), a.p<double>(5), a.f(6), a.p<const int>(7));
  }}},
  {"came_finish_ctl", {"pilppppiffp", [](const Args& a) {
    came_finish_ctl(a.p<const long long>(0), a.i(1), a.l(2), a.p<const float>(3), a.p<const double>(4), a.p<float>(5), a.p<float>(6),
        a.i(7), a.f(8), a.f(9), a.p<const int>(10));
  }}},
  {"came_rms_ctl", {"ppilpppfffp", [](const Args& a) {
    came_rms_ctl(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.p<const float>(4), a.p<const float>(5), a.p<double>(6),
        a.f(7), a.f(8), a.f(9), a.p<const int>(10));
  }}},
  {"came_update_ctl", {"ppilpppppffffpp", [](const Args& a) {
    came_update_ctl(a.p<const long long>(0), a.p<const long long>(1), a.i(2), a.l(3), a.p<const float>(4), a.p<const float>(5),
        a.p<const double>(6), a.p<float>(7), a.p<double>(8), a.f(9), a.f(10), a.f(11), a.f(12), a.p<const float>(13), a.p<const int>(14));
  }}},
  {"came_apply_ctl", {"pilpppp", [](const Args& a) {
    came_apply_ctl(a.p<const long long>(0), a.i(1), a.l(2), a.p<const float>(3), a.p<const float>(4), a.p<const float>(5), a.p<const int>(6));
  }}},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) emu::fail("usage: optim-harness trace output");
  FILE* in = std::fopen(argv[1], "rb");
  if (!in) emu::fail("cannot open the trace");
  Reader r{in};
  if (r.get<unsigned long long>() != 0x554d454d4954504fULL) emu::fail("not an optim trace");
  const unsigned long long base = r.get<unsigned long long>();
  const unsigned long long bytes = r.get<unsigned long long>();
  void* mem = mmap((void*)(uintptr_t)base, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (mem == MAP_FAILED || (uintptr_t)mem != base) emu::fail("cannot map the fake device memory at its address");
  std::memset(mem, FILL, bytes);
  emu::add_region(mem, bytes, "fake device memory");
  auto inside = [&](unsigned long long a, unsigned long long n) { return a >= base && a + n <= base + bytes; };
  int launches = 0;
  for (;;) {
    const unsigned op = r.get<unsigned>();
    if (op == 0) break;
    if (op == 1) {
      const unsigned long long dst = r.get<unsigned long long>(), n = r.get<unsigned long long>();
      if (!inside(dst, n)) emu::fail("copy outside the fake device memory");
      r.bytes((void*)(uintptr_t)dst, n);
    } else if (op == 2) {
      const unsigned len = r.get<unsigned>();
      std::string name(len, '\0');
      r.bytes(name.data(), len);
      const unsigned grid = r.get<unsigned>(), block = r.get<unsigned>(), count = r.get<unsigned>();
      Args args;
      std::string sig;
      for (unsigned k = 0; k < count; ++k) {
        const char tag = (char)r.get<unsigned>();
        args.v.push_back(Arg{tag, r.get<unsigned long long>()});
        sig += tag;
      }
      const auto it = KERNELS.find(name);
      if (it == KERNELS.end()) { std::fprintf(stderr, "emu: unknown kernel %s\n", name.c_str()); return 3; }
      if (sig != it->second.signature) {
        std::fprintf(stderr, "emu: %s launched with arguments '%s', the kernel takes '%s'\n", name.c_str(), sig.c_str(), it->second.signature);
        return 3;
      }
      if (grid == 0 || block == 0) { std::fprintf(stderr, "emu: %s launched with grid %u, block %u\n", name.c_str(), grid, block); return 3; }
      for (unsigned b = 0; b < grid; ++b) emu::run_block(b, grid, block, 0, [&]() { it->second.call(args); });
      ++launches;
    } else if (op == 3) {
      const unsigned long long count = r.get<unsigned long long>();
      for (unsigned long long k = 0; k < count; ++k) {
        const unsigned long long a = r.get<unsigned long long>(), n = r.get<unsigned long long>();
        if (!inside(a, n)) emu::fail("zone outside the fake device memory");
        const unsigned char* p = (const unsigned char*)(uintptr_t)a;
        for (unsigned long long i = 0; i < n; ++i) {
          if (p[i] != FILL) {
            std::fprintf(stderr, "emu: a kernel wrote byte %llu past the allocation that ends at 0x%llx\n", i, a);
            return 3;
          }
        }
      }
    } else {
      emu::fail("bad trace op");
    }
  }
  std::fclose(in);
  FILE* out = std::fopen(argv[2], "wb");
  if (!out || std::fwrite(mem, 1, bytes, out) != bytes) emu::fail("cannot write the output");
  std::fclose(out);
  std::printf("{\"launches\": %d}\n", launches);
  return 0;
}
