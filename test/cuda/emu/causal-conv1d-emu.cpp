// Runs causal-conv1d.cu's kernels under the host SIMT emulation (simt.h) on operands written by
// test/cuda/causal-conv1d-emu.test.ts, with the launch geometry the TypeScript launcher computed,
// and writes every output back, so the kernels' indexing over strided views, time chunks, vector
// loads and partial-sum reductions are checked against the CPU backend without a GPU.
//
//   causal-conv1d-emu DIR   reads DIR/spec.txt and DIR/<operand>.bin (float64, little-endian),
//                           writes DIR/out.bin, gx.bin (whole base buffers), gw.bin, gbias.bin.
// The weight and bias are stored in their own dtypes (spec `params WTYPE BTYPE`, default the
// compute type), as the launcher passes them: the kernels convert them while loading.
#include <algorithm>
using std::min;
#include "simt.h"
#include "causal-conv1d.cu"
#include "harness-io.h"

#include <limits>
#include <map>

namespace {

struct View { long long size = 0, offset = 0, s[3] = {0, 0, 0}; };
struct Geo { int kind = 0, vec = 1, chunk = 0, bx = 0, groupBlocks = 0, chunkBlocks = 0, tiles = 0, blocks = 0, threads = 0, rows = 0; };

struct Spec {
  std::string type, wtype, btype;
  int B = 0, D = 0, L = 0, K = 0, silu = 0, hasBias = 0;
  std::map<std::string, View> views;
  Geo fwd, bwd;
};

Geo readGeo(std::istringstream& in) {
  Geo g;
  in >> g.kind >> g.vec >> g.chunk >> g.bx >> g.groupBlocks >> g.chunkBlocks >> g.tiles >> g.blocks >> g.threads >> g.rows;
  return g;
}

Spec readSpec() {
  Spec s;
  forEachSpecLine([&](const std::string& key, std::istringstream& in) {
    if (key == "type") in >> s.type;
    else if (key == "params") in >> s.wtype >> s.btype;
    else if (key == "dims") in >> s.B >> s.D >> s.L >> s.K >> s.silu >> s.hasBias;
    else if (key == "view") {
      std::string name;
      View v;
      in >> name >> v.size >> v.offset >> v.s[0] >> v.s[1] >> v.s[2];
      s.views[name] = v;
    } else if (key == "fwd") s.fwd = readGeo(in);
    else if (key == "bwd") s.bwd = readGeo(in);
  });
  return s;
}

// A weight or bias operand: its bytes in the stored dtype and that dtype's code (common.cuh's).
struct Param {
  std::vector<unsigned char> bytes;
  int code = 0;
  const void* data() const { return bytes.empty() ? nullptr : bytes.data(); }
};

template <class P> Param storeAs(const std::vector<double>& v, int code) {
  const std::vector<P> r = toStorage<P>(v);
  Param p;
  p.code = code;
  p.bytes.resize(r.size() * sizeof(P));
  std::memcpy(p.bytes.data(), r.data(), p.bytes.size());
  return p;
}

Param readParam(const std::string& name, const std::string& type) {
  const std::vector<double> v = readBin(name);
  if (type == "f32") return storeAs<float>(v, 0);
  if (type == "f64") return storeAs<double>(v, 1);
  if (type == "bf16") return storeAs<bf16>(v, 2);
  if (type == "f16") return storeAs<f16>(v, 3);
  throw std::runtime_error("unknown parameter type " + type);
}

template <class T, int K, int V> void walk(const Spec& s, const T* x, const View& vx, const Param& w,
    const Param* bias, const T* gy, const View& vg, T* out, const View& vo, T* gx, const View& vh,
    typename Ty<T>::C* partial, bool backward) {
  const Geo& g = backward ? s.bwd : s.fwd;
  emu::launch((unsigned)g.blocks, (unsigned)g.threads, [&] {
    if (!backward) {
      cc1d_fwd_walk<T, K, V>(x, vx.s[0], vx.s[1], vx.s[2], w.data(), w.code, bias ? bias->data() : nullptr,
          bias ? bias->code : 0, out, vo.s[0], vo.s[1], vo.s[2], s.D, s.L, g.chunk,
          g.bx, g.groupBlocks, g.chunkBlocks, s.silu);
    } else {
      cc1d_bwd_walk<T, K, V>(x, vx.s[0], vx.s[1], vx.s[2], w.data(), w.code, bias ? bias->data() : nullptr,
          bias ? bias->code : 0, gy, vg.s[0], vg.s[1], vg.s[2], gx, vh.s[0], vh.s[1],
          vh.s[2], partial, s.D, s.L, g.chunk, g.bx, g.groupBlocks, g.chunkBlocks, s.silu);
    }
  });
}

template <class T, int V> void walkK(const Spec& s, const T* x, const View& vx, const Param& w,
    const Param* bias, const T* gy, const View& vg, T* out, const View& vo, T* gx, const View& vh,
    typename Ty<T>::C* partial, bool backward) {
  switch (s.K) {
    case 1: walk<T, 1, V>(s, x, vx, w, bias, gy, vg, out, vo, gx, vh, partial, backward); break;
    case 2: walk<T, 2, V>(s, x, vx, w, bias, gy, vg, out, vo, gx, vh, partial, backward); break;
    case 3: walk<T, 3, V>(s, x, vx, w, bias, gy, vg, out, vo, gx, vh, partial, backward); break;
    case 4: walk<T, 4, V>(s, x, vx, w, bias, gy, vg, out, vo, gx, vh, partial, backward); break;
    default: throw std::runtime_error("walk with K > 4");
  }
}

template <class T> void run(const Spec& s) {
  typedef typename Ty<T>::C S;
  const View vx = s.views.at("x"), vo = s.views.at("out"), vg = s.views.at("gy"), vh = s.views.at("gx");
  auto xb = toStorage<T>(readBin("x"));
  auto gyb = toStorage<T>(readBin("gy"));
  const char* compute = sizeof(S) == 8 ? "f64" : "f32";
  const Param w = readParam("w", s.wtype.empty() ? compute : s.wtype);
  Param bias;
  if (s.hasBias) bias = readParam("bias", s.btype.empty() ? compute : s.btype);
  const Param* pb = s.hasBias ? &bias : nullptr;
  // NaN everywhere first: an element the kernels never write shows up.
  std::vector<T> outb = toStorage<T>(std::vector<double>(vo.size, std::numeric_limits<double>::quiet_NaN()));
  std::vector<T> gxb = toStorage<T>(std::vector<double>(vh.size, std::numeric_limits<double>::quiet_NaN()));
  const T* x = xb.data() + vx.offset;
  const T* gy = gyb.data() + vg.offset;
  T* out = outb.data() + vo.offset;
  T* gx = gxb.data() + vh.offset;

  if (s.fwd.kind == 0) {
    if (s.fwd.vec == 4) walkK<T, 4>(s, x, vx, w, pb, gy, vg, out, vo, gx, vh, nullptr, false);
    else if (s.fwd.vec == 2) walkK<T, 2>(s, x, vx, w, pb, gy, vg, out, vo, gx, vh, nullptr, false);
    else walkK<T, 1>(s, x, vx, w, pb, gy, vg, out, vo, gx, vh, nullptr, false);
  } else {
    const Geo& g = s.fwd;
    emu::launch((unsigned)g.blocks, (unsigned)g.threads, [&] {
      cc1d_fwd_direct<T>(x, vx.s[0], vx.s[1], vx.s[2], w.data(), w.code, pb ? pb->data() : nullptr, pb ? pb->code : 0,
          out, vo.s[0], vo.s[1], vo.s[2], s.D, s.L, s.K, g.tiles, s.silu);
    });
  }
  writeBin("out", fromStorage(outb));

  std::vector<S> partial((size_t)s.bwd.rows * s.D * (s.K + 1), std::numeric_limits<S>::quiet_NaN());
  if (s.bwd.kind == 0) {
    if (s.bwd.vec == 4) walkK<T, 4>(s, x, vx, w, pb, gy, vg, out, vo, gx, vh, partial.data(), true);
    else if (s.bwd.vec == 2) walkK<T, 2>(s, x, vx, w, pb, gy, vg, out, vo, gx, vh, partial.data(), true);
    else walkK<T, 1>(s, x, vx, w, pb, gy, vg, out, vo, gx, vh, partial.data(), true);
  } else {
    const Geo& g = s.bwd;
    emu::launch((unsigned)g.blocks, (unsigned)g.threads, [&] {
      cc1d_bwd_direct<T>(x, vx.s[0], vx.s[1], vx.s[2], w.data(), w.code, pb ? pb->data() : nullptr, pb ? pb->code : 0,
          gy, vg.s[0], vg.s[1], vg.s[2], gx, vh.s[0], vh.s[1], vh.s[2], partial.data(), s.D, s.L, s.K, g.tiles, s.silu);
    });
  }
  std::vector<S> gw((size_t)s.D * s.K, std::numeric_limits<S>::quiet_NaN()), gbias(s.D, std::numeric_limits<S>::quiet_NaN());
  const int n = s.D * (s.K + 1);
  emu::launch((unsigned)((n + 255) / 256), 256, [&] {
    cc1d_reduce<S>(partial.data(), s.bwd.rows, s.D, s.K, gw.data(), s.hasBias ? gbias.data() : nullptr);
  });
  writeBin("gx", fromStorage(gxb));
  writeBin("gw", std::vector<double>(gw.begin(), gw.end()));
  if (s.hasBias) writeBin("gbias", std::vector<double>(gbias.begin(), gbias.end()));
}

}  // namespace

int main(int argc, char** argv) {
  return harnessMain(argc, argv, "causal-conv1d-emu", [&] {
    const Spec s = readSpec();
    if (s.type == "f32") run<float>(s);
    else if (s.type == "f64") run<double>(s);
    else if (s.type == "bf16") run<bf16>(s);
    else if (s.type == "f16") run<f16>(s);
    else throw std::runtime_error("unknown type " + s.type);
  });
}
