// Runs modulate.cu's kernels under the host SIMT emulation (simt.h) on operands written by
// test/cuda/modulate-emu.test.ts, with the geometry the TypeScript launcher computed
// (modulateGeometry), and writes the outputs back for comparison with the CPU backend.
//
//   modulate-emu DIR   reads DIR/spec.txt and DIR/<operand>.bin (float64, little-endian).
//   spec: "type f32|f64|bf16|f16", "op norm|gated", "dims G M C rms", "mods stride0 stride1",
//         "geo vec k threads P rowsPer", "eps E".
//   norm:  x, shift, scale ([G or 1, stride] bases), gy -> y, mean, rstd, gx, gshift, gscale
//   gated: x, gate, y, g -> out, gy, ggate
#include <algorithm>
using std::min;
#define __align__(n) alignas(n)
#include "simt.h"
#include "modulate.cu"
#include "harness-io.h"

#include <cstdlib>
#include <limits>

namespace {

struct Spec {
  std::string type, op;
  long long G = 0, M = 0, C = 0, stride0 = 0, stride1 = 0, P = 0, rowsPer = 0;
  int rms = 0, vec = 1, k = 1, threads = 32;
  double eps = 0;
};

Spec readSpec() {
  Spec s;
  forEachSpecLine([&](const std::string& key, std::istringstream& in) {
    if (key == "type") in >> s.type;
    else if (key == "op") in >> s.op;
    else if (key == "dims") in >> s.G >> s.M >> s.C >> s.rms;
    else if (key == "mods") in >> s.stride0 >> s.stride1;
    else if (key == "geo") in >> s.vec >> s.k >> s.threads >> s.P >> s.rowsPer;
    else if (key == "eps") in >> s.eps;
  });
  return s;
}

// 64-byte aligned storage (vector accesses need 16), NaN-filled where not loaded.
template <class T> struct Buf {
  T* p = nullptr;
  size_t n = 0;
  explicit Buf(size_t count) : n(count) {
    p = static_cast<T*>(std::aligned_alloc(64, ((count * sizeof(T) + 63) / 64) * 64 + 64));
    for (size_t i = 0; i < n; ++i) p[i] = Ty<T>::store((typename Ty<T>::C)std::numeric_limits<double>::quiet_NaN());
  }
  Buf(const Buf&) = delete;
  ~Buf() { std::free(p); }
  void load(const std::vector<double>& v) {
    if (v.size() != n) throw std::runtime_error("operand size mismatch");
    for (size_t i = 0; i < n; ++i) p[i] = Ty<T>::store((typename Ty<T>::C)v[i]);
  }
  std::vector<double> values() const {
    std::vector<double> r(n);
    for (size_t i = 0; i < n; ++i) r[i] = (double)Ty<T>::load(p[i]);
    return r;
  }
};

template <class T> Buf<T>* loaded(const std::string& name) {
  const auto v = readBin(name);
  auto* b = new Buf<T>(v.size());
  b->load(v);
  return b;
}

template <class T, int V, int K> void runVK(const Spec& s) {
  typedef typename Ty<T>::C Cm;
  const long long rows = s.G * s.M, n = rows * s.C;
  const unsigned blocks = (unsigned)(s.G * s.P);
  if (s.op == "norm") {
    Buf<T>* x = loaded<T>("x");
    Buf<T>* shift = loaded<T>("shift");
    Buf<T>* scale = loaded<T>("scale");
    Buf<T>* gy = loaded<T>("gy");
    Buf<T> y(n), gx(n), gshift(s.G * s.C), gscale(s.G * s.C);
    std::vector<float> mean(rows, NAN), rstd(rows, NAN);
    std::vector<Cm> part(2 * s.G * s.P * s.C, std::numeric_limits<Cm>::quiet_NaN());
    emu::launch(blocks, (unsigned)s.threads, [&] {
      norm_modulate_body<T, V, K>(s.rms, x->p, shift->p, s.stride0, scale->p, s.stride1, y.p, mean.data(), rstd.data(),
          s.M, s.C, s.P, s.rowsPer, s.eps);
    });
    emu::launch(blocks, (unsigned)s.threads, [&] {
      norm_modulate_backward_body<T, V, K>(s.rms, x->p, scale->p, s.stride1, mean.data(), rstd.data(), gy->p, gx.p,
          part.data(), s.G, s.M, s.C, s.P, s.rowsPer);
    });
    emu::launch(3, 64, [&] { modulate_colsum_body<T>(part.data(), gshift.p, gscale.p, s.G, s.P, s.C, 2); });
    writeBin("y", y.values());
    writeBin("gx", gx.values());
    writeBin("gshift", gshift.values());
    writeBin("gscale", gscale.values());
    writeBin("mean", std::vector<double>(mean.begin(), mean.end()));
    writeBin("rstd", std::vector<double>(rstd.begin(), rstd.end()));
    delete x; delete shift; delete scale; delete gy;
  } else {
    Buf<T>* x = loaded<T>("x");
    Buf<T>* gate = loaded<T>("gate");
    Buf<T>* y = loaded<T>("y");
    Buf<T>* g = loaded<T>("g");
    Buf<T> out(n), gyb(n), ggate(s.G * s.C);
    std::vector<Cm> part(s.G * s.P * s.C, std::numeric_limits<Cm>::quiet_NaN());
    emu::launch(blocks, (unsigned)s.threads, [&] {
      gated_residual_body<T, V, K>(x->p, gate->p, s.stride0, y->p, out.p, s.M, s.C, s.P, s.rowsPer);
    });
    emu::launch(blocks, (unsigned)s.threads, [&] {
      gated_residual_backward_body<T, V, K>(gate->p, s.stride0, y->p, g->p, gyb.p, part.data(), s.M, s.C, s.P, s.rowsPer);
    });
    emu::launch(2, 64, [&] { modulate_colsum_body<T>(part.data(), ggate.p, ggate.p, s.G, s.P, s.C, 1); });
    writeBin("out", out.values());
    writeBin("gy", gyb.values());
    writeBin("ggate", ggate.values());
    delete x; delete gate; delete y; delete g;
  }
}

template <class T, int V> void runV(const Spec& s) {
  switch (s.k) {
    case 1: runVK<T, V, 1>(s); break;
    case 2: runVK<T, V, 2>(s); break;
    case 4: runVK<T, V, 4>(s); break;
    case 8: runVK<T, V, 8>(s); break;
    default: throw std::runtime_error("k must be 1, 2, 4 or 8");
  }
}

template <class T, int WIDE> void run(const Spec& s) {
  if (s.vec == 1) runV<T, 1>(s);
  else if (s.vec == WIDE) runV<T, WIDE>(s);
  else throw std::runtime_error("vec must be 1 or 16 bytes of the type");
}

}  // namespace

int main(int argc, char** argv) {
  return harnessMain(argc, argv, "modulate-emu", [&] {
    const Spec s = readSpec();
    if (s.type == "f32") run<float, 4>(s);
    else if (s.type == "f64") run<double, 2>(s);
    else if (s.type == "bf16") run<bf16, 8>(s);
    else if (s.type == "f16") run<f16, 8>(s);
    else throw std::runtime_error("unknown type " + s.type);
  });
}
